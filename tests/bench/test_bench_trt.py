"""TensorRT engines: metadata from the enclosing bundle (runs anywhere), live timing and device JSON
(needs TensorRT and a GPU)."""

import importlib.util
import json

import pytest
from snp_edge.bench.candidates import from_spec
from snp_edge.bench.schema import validate

from tests.bench.bench_testutils import TINY_ARGS

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
MODEL_ARGS = [a for k, v in TINY_ARGS.items() for a in ("--model-arg", f"{k}={v}")]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Device bundles (rtx3090 target) of the tiny ViT at two widths, made by ``snp-edge bundle``."""
    from snp_edge.cli import main

    root = tmp_path_factory.mktemp("bundles")
    for name, width in (("wide", 192), ("narrow", 96)):
        assert main(["bundle", "vit_tiny_patch16_224", *MODEL_ARGS, "--model-arg", f"embed_dim={width}",
                     "--target", "rtx3090", "--out", str(root / name)]) == 0
    return root / "wide", root / "narrow"


def test_engine_takes_model_facts_from_its_bundle(bundles, cli, tmp_path):
    engine = bundles[0] / "trt-cache" / "not-built.engine"
    engine.parent.mkdir(exist_ok=True)
    engine.write_bytes(b"\0")  # a file where engines are cached; its contents are never read here
    c = from_spec(str(engine))
    assert (c.label, c.kind, c.role, c.params) == ("wide", "engine", "unpruned", 932554)
    assert c.gmacs == pytest.approx(0.0159, rel=1e-3) and c.accuracy_meaningful is False
    rc, _, err = cli("bench", engine, "--backend", "trt", "--quick", "--out", tmp_path / "out")
    last = err.strip().splitlines()[-1]  # after the "preparing" progress line
    assert rc == 2 and last.startswith("snp-edge bench: error: ") and "not-built.engine has no sidecar" in last
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.trt
@pytest.mark.skipif(not HAS_TRT, reason="needs TensorRT and a GPU")
def test_trt_live_and_device_json(bundles, cli, tmp_path):
    from snp_edge.engines.cli import main as engines_main

    engines, device_json = [], []
    for bundle in bundles:
        assert engines_main(["build", str(bundle), "--precision", "fp32"]) == 0
        engines.append(next((bundle / "trt-cache").glob("*.engine")))
        device_json.append(tmp_path / f"{bundle.name}.json")
        assert engines_main(["bench", str(bundle), "--precision", "fp32", "--warmup", "10", "--runs", "30",
                             "--json", str(device_json[-1])]) == 0
    rc, _, err = cli("bench", *engines, "--backend", "trt", "--quick", "--out", tmp_path / "live")
    assert rc == 0, err
    live = json.loads((tmp_path / "live" / "results.json").read_text())
    validate(live)
    assert [c["label"] for c in live["candidates"]] == ["wide", "narrow"]
    assert all(c["latency_ms"]["n"] == 30 and c["settings"]["precision"] == "fp32" for c in live["candidates"])
    rc, _, err = cli("bench", *device_json, "--out", tmp_path / "device")
    assert rc == 0, err
    device = json.loads((tmp_path / "device" / "results.json").read_text())
    validate(device)
    assert device["candidates"][1]["gmacs"] < device["candidates"][0]["gmacs"]
