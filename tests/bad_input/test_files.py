"""Inputs from files: one schema per file snp-edge reads (model.json, pruning configs, measurement files, ONNX,
weights, calibration arrays and images), checked before anything is allocated, the offending field named; NaN
and infinities refused wherever a number is read."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest

from .conftest import TINY, assert_one_line_error, edit_json, snapshot


def _block0(key, value):
    return lambda d: d["arch"]["blocks"][0].__setitem__(key, value)


MODEL_JSON_CASES = {
    # id: (change to model.json, message)
    "mlp-50M": (_block0("mlp", 50_000_000), "field arch.blocks[0].mlp: expected an integer in [0, 1048576], got "
                                            "50000000"),
    "mlp-above-base": (_block0("mlp", 300), "field arch.blocks[0].mlp: expected an integer in [0, 256], got 300"),
    "mlp-negative": (_block0("mlp", -4), "field arch.blocks[0].mlp: expected an integer in [0, 1048576], got -4"),
    "attention-half-removed": (_block0("heads", 0), "field arch.blocks[0]: expected heads, qk and v all above 0, "
                                                     "or all 0 (attention removed), got 'heads 0, qk"),
    "mlp-string": (_block0("mlp", "wide"), "field arch.blocks[0].mlp: expected an integer"),
    "mlp-bool": (_block0("mlp", True), "field arch.blocks[0].mlp: expected an integer in [0, 1048576], got True"),
    "mlp-float": (_block0("mlp", 40.5), "field arch.blocks[0].mlp"),
    "qk-nan": (_block0("qk", float("nan")), "field arch.blocks[0].qk: expected a finite number, got nan"),
    "v-inf": (_block0("v", float("inf")), "field arch.blocks[0].v: expected a finite number, got inf"),
    "embed-above-base": (lambda d: d["arch"].__setitem__("embed", 65), "field arch.embed: expected an integer in "
                                                                       "[1, 64], got 65"),
    "index-repeated": (lambda d: d["arch"]["blocks"][1].__setitem__("index", 0), "field arch.blocks[1].index"),
    "index-out-of-range": (lambda d: d["arch"]["blocks"][1].__setitem__("index", 7), "field arch.blocks[1].index"),
    "head-dim-not-base": (lambda d: d["arch"].__setitem__("head_dim", 16), "field arch.head_dim: expected 32 (the "
                                                                           "base model's), got 16"),
    "depth-not-base": (lambda d: d["arch"].__setitem__("depth", 12), "field arch.depth: expected 2"),
    "blocks-not-list": (lambda d: d["arch"].__setitem__("blocks", {"0": 1}), "field arch.blocks: expected a list"),
    "heads-kept-bad": (lambda d: d["arch"]["heads_kept"].__setitem__(0, [1, 1]), "field arch.heads_kept[0]"),
    "img-size-huge": (lambda d: d["model_args"].__setitem__("img_size", 10 ** 9), "field model_args.img_size: "
                                                                                "expected an integer in [1, 8192]"),
    "model-arg-unknown": (lambda d: d["model_args"].__setitem__("drop_rate", 0.5), "unknown field "
                                                                                  "model_args.drop_rate"),
    "base-model-number": (lambda d: d.__setitem__("base_model", 5), "field base_model: expected a non-empty string"),
    "format-version": (lambda d: d.__setitem__("format_version", 99), "has format_version 99; this snp-edge reads "
                                                                      "versions 1, 2"),
    "no-arch": (lambda d: d.pop("arch"), "missing field arch"),
    "sha-malformed": (lambda d: d.__setitem__("weights_sha256", "abc"), "field weights_sha256: expected a "
                                                                         "lowercase sha256 hex digest"),
    "summary-gmacs-nan": (lambda d: d["summary"].__setitem__("gmacs_after", float("nan")),
                          "field summary.gmacs_after: expected a finite number, got nan"),
}


@pytest.mark.parametrize("case", MODEL_JSON_CASES)
def test_model_json_schema(snp, work, pruned_copy, case):
    """export reads model.json: every bad field is named, before the model (and its memory) exists."""
    change, message = MODEL_JSON_CASES[case]
    edit_json(pruned_copy / "model.json", change)
    before = snapshot(work)
    result = snp("export", pruned_copy, "--out", work / "m.onnx", "--no-verify")
    assert_one_line_error(result, 2, message, "export")
    assert snapshot(work) == before


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, message", [
    (lambda p: _flip_byte(p / "model.safetensors"), "does not match the sha256 recorded in"),
    (lambda p: p.joinpath("model.safetensors").write_bytes(p.joinpath("model.safetensors").read_bytes() + b"\0"),
     "does not match the sha256 recorded in"),
    (lambda p: p.joinpath("model.safetensors").unlink(), "has no model.safetensors"),
    (lambda p: p.joinpath("model.json").write_text("[" * 100_000 + "]" * 100_000), "JSON nested too deeply"),
    (lambda p: p.joinpath("model.json").write_bytes(b"\xff\xfe{"), "not valid JSON"),
    (lambda p: p.joinpath("model.json").write_text('{"format": "something-else"}'),
     "is not an snp-edge pruned model description"),
], ids=["flipped-byte", "extended", "no-weights", "deep-json", "not-utf8", "other-format"])
def test_pruned_folder_integrity(snp, work, pruned_copy, damage, message):
    damage(pruned_copy)
    before = snapshot(work)
    result = snp("export", pruned_copy, "--out", work / "m.onnx")
    assert_one_line_error(result, 2, message, "export")
    assert snapshot(work) == before


def test_nan_weight_refused(snp, work, pruned_copy):
    """A NaN in one weight (model.json's sha256 updated to match): refused on load, naming the tensor."""
    from safetensors.torch import load_file, save_file
    from snp_edge.engines.manifest import sha256_file

    state = load_file(str(pruned_copy / "model.safetensors"))
    state["blocks.1.mlp.fc2.weight"][0, 0] = float("nan")
    save_file(state, str(pruned_copy / "model.safetensors"))
    edit_json(pruned_copy / "model.json",
              lambda d: d.__setitem__("weights_sha256", sha256_file(str(pruned_copy / "model.safetensors"))))
    before = snapshot(work)
    result = snp("export", pruned_copy, "--out", work / "m.onnx")
    assert_one_line_error(result, 2, "tensor blocks.1.mlp.fc2.weight holds NaN or infinite values", "export")
    assert snapshot(work) == before


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("summary"), "model.json has no summary"),
    (lambda d: d["summary"].pop("widths"), "missing field summary.widths"),
    (lambda d: d["summary"]["widths"]["blocks"][0].__setitem__("mlp", "x"), "field summary.widths.blocks[0].mlp"),
], ids=["no-summary", "summary-no-widths", "summary-bad-width"])
def test_info_summary(snp, work, pruned_copy, change, message):
    edit_json(pruned_copy / "model.json", change)
    assert_one_line_error(snp("info", pruned_copy), 2, message, "info")


CONFIG_CASES = {
    "width-nan": ("qk: .nan\n", "field qk: expected a finite number, got nan"),
    "width-inf": ("mlp: [.inf, 100]\n", "field mlp[0]: expected a finite number, got inf"),
    "ratio-nan": ("ratios: {mlp: .nan}\n", "field ratios.mlp: expected a finite number, got nan"),
    "json-nan": ('{"embed": NaN}', "field embed: expected a finite number, got nan"),
    "width-string": ("qk: wide\n", "config qk[0]: expected a finite number, got 'wide'"),
    "width-bool": ("mlp: true\n", "config mlp[0]: expected a finite number, got True"),
    "width-above": ("mlp: 1000\n", "config mlp[0] keeps 1000 but the model has only 256"),
    "drop-bool": ("drop_blocks: [true]\n", "drop_blocks must list block indices in [0, 2)"),
    "unknown-key": ("mpl: 10\n", "unknown keys ['mpl']"),
    "deep": ("[" * 1500 + "]" * 1500 + "\n", "cannot parse config"),
    "not-mapping": ("- 1\n- 2\n", "must be a mapping"),
    "yaml-python-object": ("!!python/object/apply:os.system ['echo pwned']\n", "cannot parse config"),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_config_schema(snp, work, case):
    text, message = CONFIG_CASES[case]
    config = work / ("cfg.json" if text.startswith("{") else "cfg.yaml")
    config.write_text(text)
    before = snapshot(work)
    result = snp("prune", *TINY, "--config", config, "--criterion", "l1", "--out", work / "out", "--json")
    assert_one_line_error(result, 2, message, "prune")
    assert snapshot(work) == before


def _nan_calibration(path):
    images = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    images[2, 1, 5, 5] = np.nan
    np.save(path, images)


@pytest.mark.parametrize("command", ["prune", "export"])
def test_nan_calibration_array(snp, work, tiny_pruned, command):
    """NaN calibration images would end in a Cholesky traceback (prune) or pass parity (export): refused."""
    _nan_calibration(work / "calib.npy")
    source = [*TINY, "--target-gmacs", "0.004"] if command == "prune" else [tiny_pruned]
    before = snapshot(work)
    result = snp(command, *source, "--calib", work / "calib.npy", "--calib-images", "4",
                 "--out", work / ("out" if command == "prune" else "m.onnx"), "--json")
    assert_one_line_error(result, 2, "holds NaN or infinite values (image 2 of those drawn)", command)
    assert snapshot(work) == before


def png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims ``width`` x ``height`` (what a decompression bomb looks like to a
    decoder that checks sizes first: Pillow does, on open)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR data starts after signature, length and type
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _image_folder(root, bad_name=None, bad_bytes=b""):
    from PIL import Image

    for c in range(10):
        (root / f"c{c}").mkdir(parents=True)
        Image.new("RGB", (40, 40), (c * 20, 0, 0)).save(root / f"c{c}" / "a.png")
    if bad_name:
        (root / "c3" / bad_name).write_bytes(bad_bytes)
    return root


IMAGE_CASES = {
    "bomb-error": ("bomb.png", png_claiming(15000, 15000), "is too large to decode safely"),
    "bomb-warning": ("big.png", png_claiming(10000, 10000), "is too large to decode safely"),
    "corrupt": ("bad.png", b"\x89PNG\r\n\x1a\n not really", "corrupt or unreadable"),
    "truncated-jpeg": ("bad.jpg", b"\xff\xd8\xff\xe0 truncated", "corrupt or unreadable"),
}


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_bad_image_in_calibration(snp, work, case):
    name, data, message = IMAGE_CASES[case]
    calib = _image_folder(work / "calib", name, data)
    before = snapshot(work)
    result = snp("prune", *TINY, "--target-gmacs", "0.004", "--calib", calib, "--calib-images", "64",
                 "--out", work / "out", "--json")
    assert_one_line_error(result, 2, message, "prune")
    assert f"c3/{name}" in result.err and snapshot(work) == before


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_bad_image_in_eval_data(snp, work, tiny_pruned, case):
    name, data, message = IMAGE_CASES[case]
    data_dir = _image_folder(work / "data", name, data)
    result = snp("eval", tiny_pruned, "--data", data_dir, "--workers", "0", "--batch-size", "4")
    assert_one_line_error(result, 2, message, "eval")
    assert f"c3/{name}" in result.err.splitlines()[-1]


@pytest.mark.slow
def test_bad_image_in_a_dataloader_worker(snp, work, tiny_pruned):
    """eval reads images in DataLoader workers: the worker's error comes back as the same one line (slow: torch
    takes 10 s to stop workers after one failed, when the loader is collected)."""
    import gc

    data_dir = _image_folder(work / "data", "bomb.png", png_claiming(15000, 15000))
    result = snp("eval", tiny_pruned, "--data", data_dir, "--workers", "2", "--batch-size", "4")
    assert_one_line_error(result, 2, "is too large to decode safely", "eval")
    assert "c3/bomb.png" in result.err.splitlines()[-1] and "worker" not in result.err
    gc.collect()


def _device_bench(**changes):
    doc = {"schema": "snp-edge-device-bench/2", "created": "2025-02-01T10:11:12Z", "engine": "/b/m.engine",
           "target": "jetson-nano", "precision": "fp16", "batch": 1, "timer": "cuda events per run",
           "warmup": {"warmup_runs": 200}, "latencies_ms": [3.0, 3.1, 2.9, 3.2], "trtexec_summary": None,
           "model": {"base_model": "deit_small_patch16_224", "pruned": True, "gmacs": 1.3, "params": 6_000_000,
                     "accuracy_meaningful": False}, "env": {}}
    for key, value in changes.items():
        if key.startswith("model_"):
            doc["model"][key[6:]] = value
        else:
            doc[key] = value
    return json.dumps(doc)


TRTEXEC_LOG = ("[I] === Performance summary ===\n[I] GPU Compute Time: min = {min} ms, max = 1.3 ms, mean = 1.0 ms, "
               "median = 0.98 ms, percentile(99%) = 1.2 ms\n")

MEASUREMENT_CASES = {
    "computeMs-string": ("t.json", '[{"computeMs": 2.0}, {"computeMs": "x"}]',
                         "field [1].computeMs: expected a finite number in (0, 3600000.0], got 'x'"),
    "computeMs-nan": ("t.json", '[{"computeMs": NaN}]', "field [0].computeMs: expected a finite number, got nan"),
    "computeMs-negative": ("t.json", '[{"computeMs": -500}]', "field [0].computeMs: expected a finite number in "
                                                             "(0, 3600000.0], got -500"),
    "export-times-empty": ("t.json", "[]", "a list of 1 to 10000000 trtexec --exportTimes records"),
    "model-number": ("d.json", _device_bench(model=5), "field model: expected an object or a model name, got 5"),
    "gmacs-string": ("d.json", _device_bench(model_gmacs="lots"), "field model.gmacs: expected a finite number"),
    "params-negative": ("d.json", _device_bench(model_params=-1), "field model.params: expected an integer >= 1"),
    "batch-string": ("d.json", _device_bench(batch="eight"), "field batch: expected an integer in [1, 1048576], "
                                                             "got 'eight'"),
    "batch-zero": ("d.json", _device_bench(batch=0), "field batch: expected an integer in [1, 1048576], got 0"),
    "latency-nan": ("d.json", _device_bench(latencies_ms=[3.0, float("nan")]), "field latencies_ms[1]: expected a "
                                                                               "finite number, got nan"),
    "latency-negative": ("d.json", _device_bench(latencies_ms=[3.0, -500.0]), "field latencies_ms[1]: expected a "
                                                                              "finite number in (0, 3600000.0]"),
    "latency-inf": ("d.json", _device_bench(latencies_ms=[float("inf")]), "expected a finite number, got inf"),
    "latency-missing": ("d.json", _device_bench(latencies_ms=[]), "field latencies_ms: expected a list of 1 to"),
    "log-nan": ("m.log", TRTEXEC_LOG.format(min="nan"), "field min: expected a finite number"),
    "log-negative": ("m.log", TRTEXEC_LOG.format(min="-2.0"), "field min: expected a finite number in (0, "),
    "not-a-measurement": ("m.json", '{"hello": 1}', "expected `engines bench --json` output"),
    "deep": ("m.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("case", MEASUREMENT_CASES)
def test_measurement_file_schema(snp, work, case):
    """bench reads device measurements: every field checked; NaN ms or -500 img/s never reach a report."""
    name, text, message = MEASUREMENT_CASES[case]
    (work / name).write_text(text)
    before = snapshot(work)
    result = snp("bench", work / name, "--out", work / "report")
    assert_one_line_error(result, 2, message, "bench")
    assert str(work / name) in result.err and snapshot(work) == before


def test_report_refuses_non_finite_numbers(tmp_path):
    """The last gate before results.json: whatever computed the document, NaN or negative numbers stop it."""
    from snp_edge.bench.report import write_report

    from snp_edge.errors import SnpEdgeError

    doc = {"schema_version": 1, "tool": "t", "created": "now", "partial": False, "notice": None,
           "protocol": {"backend": "trt", "batch": 1, "baseline": "a", "interleaved": False}, "environment": {},
           "candidates": [{"label": "a", "source": "a", "kind": "measured", "role": "unknown", "gmacs": None,
                           "params": None, "top1": None, "accuracy_meaningful": None,
                           "latency_ms": {"mean": 1.0, "median": 1.0, "min": 1.0, "max": 1.0},
                           "throughput_ips": float("nan"), "speedup_median": 1.0, "speedup_mean": 1.0,
                           "kernel_efficiency": None, "times_ms": [1.0]}]}
    with pytest.raises(SnpEdgeError, match=r"bad numbers: results: field candidates\[0\].throughput_ips: "
                                           "expected a finite number, got nan"):
        write_report(doc, tmp_path / "r")
    doc["candidates"][0]["throughput_ips"] = -500.0
    with pytest.raises(SnpEdgeError, match="candidates/0/throughput_ips: -500.0 is less than the minimum of 0"):
        write_report(doc, tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "is not an ONNX model (no graph, inputs, outputs or opset)"),
    (b"\x08\x07garbage", "cannot read ONNX file"),
], ids=["empty", "garbage"])
def test_bad_onnx_file(snp, work, content, message):
    (work / "m.onnx").write_bytes(content)
    before = snapshot(work)
    result = snp("bench", work / "m.onnx", "--quick", "--out", work / "report")
    assert_one_line_error(result, 2, message, "bench")
    assert snapshot(work) == before


class Payload:
    """Pickled into a checkpoint: unpickling it would run this module's code."""


def test_pickled_checkpoint_message(snp, work):
    """A .pth holding pickled objects is never unpickled, and the message does not suggest weights_only=False."""
    import torch

    torch.save({"model": Payload()}, work / "w.pth")
    before = snapshot(work)
    result = snp("export", "--model", "deit_tiny_patch16_224", "--weights", work / "w.pth", "--out", work / "m.onnx")
    last = assert_one_line_error(result, 2, "holds pickled Python objects (tests.bad_input.test_files.Payload)",
                                 "export")
    assert "weights_only" not in result.err and "save a state_dict" in last
    assert snapshot(work) == before


def test_onnx_external_data_outside_the_folder(snp, work):
    """An ONNX initializer whose external data points outside its folder is not read (bench: onnx; eval: ORT)."""
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [2, 2], vals=[0.0] * 4)
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="../../../../../etc/passwd")
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["logits"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), work / "m.onnx")
    before = snapshot(work)
    assert_one_line_error(snp("bench", work / "m.onnx", "--quick", "--out", work / "r"), 2, "points outside the "
                                                                                           "directory", "bench")
    (work / "data" / "c0").mkdir(parents=True)
    assert_one_line_error(snp("eval", work / "m.onnx", "--data", work / "data"), 2, "External data path", "eval")
    assert {k: v for k, v in snapshot(work).items() if not k.startswith("data")} == before
