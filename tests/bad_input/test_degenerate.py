"""Issue 20 #4 and #7: degenerate results fail their gates. A weight outside FP16's range (named), outputs that
do not depend on the input or carry no information (export parity, golden data, device verify, prune before
scoring), and calibration values around 1e30 (status 2, one line, never a traceback)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.engines.device_fixtures import make_bundle

from .conftest import TINY, TINY_ARGS, assert_one_line_error, edit_json, snapshot


def _scale_weight(folder, name, factor):
    from safetensors.torch import load_file, save_file
    from snp_edge.engines.manifest import sha256_file

    state = load_file(str(folder / "model.safetensors"))
    state[name] = state[name] * factor
    save_file(state, str(folder / "model.safetensors"))
    edit_json(folder / "model.json",
              lambda d: d.__setitem__("weights_sha256", sha256_file(str(folder / "model.safetensors"))))


@pytest.mark.slow
def test_weight_outside_fp16_range_is_refused_by_bundle(snp, work, pruned_copy):
    """A pruned model with one weight scaled by 1e38 bundled with exit 0 and all-zero golden outputs."""
    _scale_weight(pruned_copy, "blocks.1.mlp.fc2.weight", 1e38)
    before = snapshot(work)
    result = snp("bundle", pruned_copy, "--target", "jetson-nano", "--out", work / "b")
    assert_one_line_error(result, 2, "model weight blocks.1.mlp.fc2.weight: max |value| ", "bundle")
    assert "outside FP16's range (65504)" in result.err
    assert snapshot(work) == before


@pytest.mark.slow
def test_degenerate_outputs_fail_export_parity(snp, work, pruned_copy):
    """The same model through `export` (no target): its outputs carry no information; parity refuses them."""
    _scale_weight(pruned_copy, "blocks.1.mlp.fc2.weight", 1e38)
    before = snapshot(work)
    result = snp("export", pruned_copy, "--out", work / "m.onnx")
    last = assert_one_line_error(result, 2, "", "export")
    assert "degenerate" in last or "nan or inf" in last.lower(), last
    assert snapshot(work) == before


@pytest.mark.slow
def test_prune_refuses_degenerate_unpruned_outputs(snp, work):
    """`prune --weights` with qkv scaled by 1e30 exited 0."""
    from safetensors.torch import save_file

    from snp_edge.models import load_model

    handle = load_model("deit_tiny_patch16_224", "random", {"img_size": 32, "patch_size": 4, "depth": 2,
                                                            "embed_dim": 64, "num_heads": 2, "num_classes": 10})
    state = {k: v.clone().contiguous() for k, v in handle.model.state_dict().items()}
    for key in [k for k in state if k.endswith("attn.qkv.weight")]:
        state[key] = state[key] * 1e30
    save_file(state, str(work / "w.safetensors"))
    args = ["--model", "deit_tiny_patch16_224", *TINY_ARGS]
    args[args.index("random")] = str(work / "w.safetensors")
    before = snapshot(work)
    result = snp("prune", *args, "--target-gmacs", "0.004", "--criterion", "l1", "--out", work / "out")
    assert_one_line_error(result, 2, "the unpruned model's outputs on the calibration images are degenerate",
                          "prune")
    assert snapshot(work) == before


@pytest.mark.slow
def test_calibration_values_around_1e30(snp, work):
    """`prune --calib` with finite values around 1e30 ended in a linalg.svd traceback with exit 1."""
    np.save(work / "calib.npy", np.full((4, 3, 32, 32), 1e30, dtype=np.float32))
    before = snapshot(work)
    result = snp("prune", *TINY, "--target-gmacs", "0.004", "--calib", work / "calib.npy", "--calib-images", "4",
                 "--out", work / "out")
    assert_one_line_error(result, 2, "holds values up to 1e+30; preprocessed images lie within +-10000", "prune")
    assert snapshot(work) == before


@pytest.mark.parametrize("kind,message", [
    ("zeros", "all 10 logits of input 0 are equal (0): uniform probabilities"),
    ("constant", "the same logits for all 8 inputs"),
])
def test_device_verify_refuses_degenerate_golden_outputs(engines, work, kind, message):
    bundle = make_bundle(work / "bundle")
    outputs = np.load(bundle / "golden" / "outputs.npy")
    outputs[:] = 0.0 if kind == "zeros" else outputs[0]
    np.save(bundle / "golden" / "outputs.npy", outputs)
    from snp_edge.engines.manifest import hash_files

    doc = json.loads((bundle / "manifest.json").read_text())
    doc["files"] = hash_files(str(bundle))
    (bundle / "manifest.json").write_text(json.dumps(doc))
    before = snapshot(work)
    assert_one_line_error(engines("verify", bundle, "--backend", "onnxruntime"), 2,
                          f"golden outputs golden/outputs.npy: {message}")
    assert snapshot(work) == before


def test_degenerate_engine_outputs_fail_verification():
    from snp_edge.engines.verify import Tolerance, compare_logits

    golden = np.random.default_rng(0).standard_normal((4, 10))
    report = compare_logits(np.zeros_like(golden), golden, Tolerance(atol_frac=1e9, min_top1=0.0, prob_atol=1.0))
    assert not report["passed"] and report["failures"][0].startswith("engine outputs are degenerate: all 10 logits")
