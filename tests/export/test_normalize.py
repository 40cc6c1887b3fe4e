"""Normalisation folded into the patch embedding: the exact weights, parity on raw pixels, no extra node, the
manifest's record of the input form, and the command line."""

from __future__ import annotations

import collections
import json

import numpy as np
import onnx
import pytest
import torch
from snp_edge.engines.common.errors import ManifestError
from snp_edge.engines.common.ort import ort_session, run_logits
from snp_edge.engines.manifest import validate_manifest
from snp_edge.export.normalize import InputForm, fold_into_patch_embed
from snp_edge.export.onnx_export import export_onnx
from snp_edge.export.prepare import export_copy

from snp_edge.cli import main
from snp_edge.errors import SnpEdgeError
from snp_edge.models import load_model

SMALL = {"img_size": 32, "patch_size": 8}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def deit():
    return load_model("deit_tiny_patch16_224", "random", SMALL)


def pixels(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Raw RGB in [0, 1], (n, 3, size, size) float32."""
    return np.random.default_rng(seed).random((n, 3, size, size), dtype=np.float32)


@pytest.mark.parametrize("scale", [1, 255])
def test_fold_follows_the_formula(deit, scale):
    """W' = W / (std * scale) per input channel, b' = b - sum(W' * mean * scale), computed here in float64 the
    slow way: the folded weights are exactly the float32 rounding of W', the bias agrees to float32 precision."""
    model = export_copy(deit.model)
    w = model.patch_embed.proj.weight.detach().double().clone()
    b = model.patch_embed.proj.bias.detach().double().clone()
    fold_into_patch_embed(model, InputForm.raw(scale), IMAGENET_MEAN, IMAGENET_STD)
    std, mean = torch.tensor(IMAGENET_STD, dtype=torch.float64), torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
    w_ref = torch.empty_like(w)
    for c in range(3):
        w_ref[:, c] = w[:, c] / (std[c] * scale)
    b_ref = b - (w_ref * (mean * scale)[None, :, None, None]).sum(dim=(1, 2, 3))
    assert torch.equal(model.patch_embed.proj.weight, w_ref.float())
    assert torch.allclose(model.patch_embed.proj.bias.double(), b_ref, rtol=0, atol=1e-6)
    assert not torch.equal(model.patch_embed.proj.weight, w.float())  # it did change


def test_folding_a_form_onto_itself_changes_nothing(deit):
    """The model's own form, and jetson-inference's ImageNet mean/std on a DeiT (the same values), fold to the
    identity: a = 1 and b = 0 exactly, so the weights stay bit for bit."""
    for form in (InputForm.external(IMAGENET_MEAN, IMAGENET_STD), InputForm(1.0, IMAGENET_MEAN, IMAGENET_STD)):
        model = export_copy(deit.model)
        fold_into_patch_embed(model, form, IMAGENET_MEAN, IMAGENET_STD)
        assert torch.equal(model.patch_embed.proj.weight, deit.model.patch_embed.proj.weight)
        assert torch.equal(model.patch_embed.proj.bias, deit.model.patch_embed.proj.bias)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [1, 255])
def test_folded_model_on_raw_pixels_equals_the_original_on_normalised(deit, tmp_path, scale):
    """ORT(folded ONNX, raw x) against PyTorch(original, (x - mean) / std) at max abs <= 1e-4; the export's own
    parity gate agrees; the graph has exactly the nodes of the unfolded export."""
    result = export_onnx(deit, tmp_path / "folded.onnx", input_form=InputForm.raw(scale))
    assert all(p.max_abs <= 1e-4 for p in result.parity) and [p.batch for p in result.parity] == [1, 8]
    x = pixels(6, 32, seed=scale)
    normalised = (torch.from_numpy(x) - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    with torch.no_grad():
        ref = deit.model(normalised).numpy()
    out = run_logits(ort_session(str(tmp_path / "folded.onnx")), x * scale)
    assert np.abs(out - ref).max() <= 1e-4
    assert np.abs(out - ref).max() < 1e-2 * np.abs(ref).max()  # a real comparison: logits are not all tiny
    export_onnx(deit, tmp_path / "plain.onnx")
    ops = [collections.Counter(n.op_type for n in onnx.load(tmp_path / f).graph.node) for f in ("folded.onnx", "plain.onnx")]
    assert ops[0] == ops[1]
    # feeding the folded ONNX normalised data instead is wrong by far more than the gate: the test can fail
    wrong = run_logits(ort_session(str(tmp_path / "folded.onnx")), normalised.numpy())
    assert np.abs(wrong - ref).max() > 1e-2


@pytest.mark.slow
def test_any_runtime_normalisation_folds_exactly(tmp_path):
    """A model trained with mean = std = 0.5 fed jetson-inference's ImageNet-normalised tensor: the fold maps
    one to the other, checked by ORT against the original on the same pixels."""
    vit = load_model("vit_tiny_patch16_224", "random", SMALL)
    assert tuple(vit.data_config["mean"]) == (0.5, 0.5, 0.5)
    form = InputForm(1.0, IMAGENET_MEAN, IMAGENET_STD)
    result = export_onnx(vit, tmp_path / "m.onnx", input_form=form)
    assert all(p.max_abs <= 1e-4 for p in result.parity)
    x = pixels(4, 32)
    ji = (x - np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]) / np.asarray(IMAGENET_STD, np.float32)[:, None, None]
    with torch.no_grad():
        ref = vit.model(torch.from_numpy((x - 0.5) / 0.5)).numpy()
    assert np.abs(run_logits(ort_session(str(tmp_path / "m.onnx")), ji) - ref).max() <= 1e-4


def test_bad_forms_are_refused(deit):
    with pytest.raises(SnpEdgeError, match="--input-scale must be one of"):
        InputForm.raw(128)
    with pytest.raises(SnpEdgeError, match="1 channels, the model takes 3"):
        fold_into_patch_embed(export_copy(deit.model), InputForm(1.0, (0.0,), (1.0,)), IMAGENET_MEAN, IMAGENET_STD)


@pytest.mark.slow
def test_manifest_records_the_input_form(tmp_path):
    base = ["bundle", "--model", "deit_tiny_patch16_224", "--model-arg", "img_size=32", "--model-arg",
            "patch_size=8", "--weights", "random", "--target", "jetson-nano"]
    assert main([*base, "--normalize-in-graph", "--input-scale", "255", "--out", str(tmp_path / "b")]) == 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    norm = manifest["onnx"]["input"]["normalization"]
    assert norm == {"in_graph": True, "pixel_scale": 255.0, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    inputs = np.load(tmp_path / "b" / "golden" / "inputs.npy")
    outputs = np.load(tmp_path / "b" / "golden" / "outputs.npy")
    assert np.abs(run_logits(ort_session(str(tmp_path / "b" / "model.onnx")), inputs) - outputs).max() == 0
    assert "RGB pixels in 0..255" in (tmp_path / "b" / "README.md").read_text()

    def refused(change, message):
        bad = json.loads(json.dumps(manifest))
        change(bad["onnx"]["input"]["normalization"])
        with pytest.raises(ManifestError, match=message):
            validate_manifest(bad)

    refused(lambda n: n.update(in_graph=False), "onnx.input.normalization: expected pixel_scale 1 and preprocess")
    refused(lambda n: n.update(std=[1.0, 0.0, 1.0]), "onnx.input.normalization.std: expected a list of 3 positive")
    refused(lambda n: n.update(pixel_scale="255"), "onnx.input.normalization.pixel_scale: expected a number > 0")
    refused(lambda n: n.pop("in_graph"), "missing field onnx.input.normalization.in_graph")
    plain = json.loads(json.dumps(manifest))
    plain["onnx"]["input"]["normalization"] = {"in_graph": False, "pixel_scale": 1, "mean": plain["preprocess"]["mean"],
                                               "std": plain["preprocess"]["std"]}
    validate_manifest(plain)  # the unfolded form is valid
    del plain["onnx"]["input"]["normalization"]
    validate_manifest(plain)  # and so is a bundle from before the field existed


@pytest.mark.slow
def test_cli_export_normalize_in_graph(tmp_path, capsys):
    base = ["export", "--model", "deit_tiny_patch16_224", "--model-arg", "img_size=32", "--model-arg", "patch_size=8",
            "--weights", "random"]
    assert main([*base, "--input-scale", "255", "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "--input-scale applies to --normalize-in-graph only" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()
    assert main([*base, "--normalize-in-graph", "--out", str(tmp_path / "m.onnx"), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert report["input_form"] == {"in_graph": True, "pixel_scale": 1.0, "mean": [0.0] * 3, "std": [1.0] * 3}
    assert "RGB in [0, 1], NCHW float32 (normalisation folded into the graph)" in captured.err
    assert all(p["max_abs"] <= 1e-4 for p in report["parity"])
