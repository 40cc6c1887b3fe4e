"""The torch backend on CPU with a timm model name and a pruned-model folder; GPU variants when present."""

import json

import pytest
import torch
from snp_edge.bench.schema import validate

from tests.bench.bench_testutils import TINY_ARGS

MODEL_ARGS = [a for k, v in TINY_ARGS.items() for a in ("--model-arg", f"{k}={v}")]


@pytest.fixture(scope="module")
def pruned_dir(tmp_path_factory):
    """vit_tiny at 32x32 pruned by SNP to half its MACs, saved as a pruned-model folder."""
    from snp_edge import load_model, prune, save_pruned

    handle = load_model("vit_tiny_patch16_224", "random", TINY_ARGS)
    out = tmp_path_factory.mktemp("pruned") / "half"
    save_pruned(prune(handle, target_gmacs=handle.gmacs / 2).handle, out)
    return out


@pytest.mark.slow
def test_torch_cpu(cli, tmp_path, pruned_dir):
    rc, stdout, err = cli("bench", "vit_tiny_patch16_224", pruned_dir, *MODEL_ARGS, "--backend", "torch",
                          "--quick", "--threads", "1", "--out", tmp_path)
    assert rc == 0, err
    doc = json.loads((tmp_path / "results.json").read_text())
    validate(doc)
    base, pruned = doc["candidates"]
    assert (base["role"], pruned["role"]) == ("unpruned", "pruned")
    assert pruned["gmacs"] == pytest.approx(base["gmacs"] / 2, rel=0.05)
    assert base["settings"] == {"device": "cpu", "precision": "fp32", "torch_threads": 1, "inference_mode": True,
                                "timer": "perf_counter"}
    assert all(c["latency_ms"]["n"] == 30 for c in doc["candidates"])
    assert doc["notice"].startswith("random weights")  # on every output
    assert "random weights" in (tmp_path / "results.md").read_text()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("fp16", [False, True])
def test_torch_cuda(cli, tmp_path, fp16):
    rc, _, err = cli("bench", "vit_tiny_patch16_224", *MODEL_ARGS, "--backend", "torch", "--device", "cuda",
                     *(["--fp16"] if fp16 else []), "--quick", "--out", tmp_path)
    assert rc == 0, err
    settings = json.loads((tmp_path / "results.json").read_text())["candidates"][0]["settings"]
    assert settings["timer"] == "cuda_events" and settings["precision"] == ("fp16" if fp16 else "fp32")
