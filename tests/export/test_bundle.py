"""Device bundles: self-contained, hashed, validated, refused when tampered with."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile

import numpy as np
import onnx
import pytest
import torch
from snp_edge.export.bundle import check_bundle, make_bundle
from snp_edge.export.reference import REFERENCE_IMAGES, reference_inputs

from snp_edge import prune
from snp_edge.cli import main
from snp_edge.errors import SnpEdgeError


@pytest.fixture(scope="module")
def pruned_tiny():
    return prune("deit_tiny_patch16_224", weights="random", model_args={"img_size": 64}, preset="deit_t_0.6g",
                 criteria="l1").handle


@pytest.mark.parametrize("target,opset", [("jetson-nano", 13), ("rtx3090", 17), ("jetson-orin", 17),
                                          ("jetson-orin-jp5", 13)])
@pytest.mark.slow
def test_bundle_per_target(pruned_tiny, tmp_path, target, opset):
    out = make_bundle(pruned_tiny, target, tmp_path / "b")
    manifest = check_bundle(out)
    assert manifest["target"] == target and manifest["onnx"]["opset"] == opset
    assert manifest["onnx"]["input"]["shape"] == [-1, 3, 64, 64]
    assert manifest["model"]["pruned"] and "meaningless" in manifest["model"]["notice"]
    listed = set(manifest["files"])
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert listed == on_disk
    for needed in ("model.onnx", "golden/inputs.npy", "golden/outputs.npy", "engines/manifest.py",
                   "engines/build.py", "scripts/build.sh", "scripts/verify.sh", "scripts/bench.sh",
                   "docker/Dockerfile.jetson", "docker/Dockerfile.trt-x86", "docker/Dockerfile.jetson-orin",
                   "docker/Dockerfile.jetson-orin-jp5", "docker/run-jetson.sh"):
        assert needed in listed, needed
    inputs, outputs = np.load(out / "golden/inputs.npy"), np.load(out / "golden/outputs.npy")
    # golden inputs: the 4 reference photographs through timm's eval transform, not noise
    assert inputs.shape == (4, 3, 64, 64) and outputs.shape == (4, 1000) and outputs.dtype == np.float32
    assert manifest["golden"]["images"] == [f"reference/images/{n}" for n in REFERENCE_IMAGES]
    expected = reference_inputs(pruned_tiny).numpy()
    assert np.array_equal(inputs, expected)
    with torch.no_grad():
        probs = torch.softmax(pruned_tiny.model.eval()(torch.from_numpy(inputs)).double(), 1)
    top = manifest["golden"]["top_k"]
    assert top["k"] == 5 and top["class_ids"] == torch.topk(probs, 5).indices.tolist()
    assert np.allclose(top["probs"], torch.topk(probs, 5).values.numpy(), atol=1e-8)
    assert manifest["schema_version"] == 2 and manifest["preprocess"]["resize_mode"] == "shorter_side"


@pytest.mark.slow
def test_alignment_is_recorded_and_misalignment_warned(pruned_tiny, tmp_path, recwarn):
    """The paper's odd widths on a tensor-core target: one warning citing the measurement; 8-aligned widths
    (``--round-to 8``) and the Nano (no tensor cores): none. The manifest records the alignment either way."""
    from snp_edge.export.bundle import model_alignment

    from snp_edge.summary import widths_of

    w = widths_of(pruned_tiny)
    odd = [w["embed"]] + [b[k] for b in w["blocks"] for k in ("qk", "v", "mlp")]
    assert model_alignment(pruned_tiny) == np.gcd.reduce(odd) and model_alignment(pruned_tiny) % 8
    manifest = check_bundle(make_bundle(pruned_tiny, "jetson-orin", tmp_path / "orin"))
    assert manifest["model"]["width_alignment"] == model_alignment(pruned_tiny)
    texts = [str(w.message) for w in recwarn.list]
    assert len(texts) == 1 and "not of 8: jetson-orin's FP16 tensor cores will run them slowly" in texts[0]
    assert "0.68-0.82x" in texts[0] and "1.38-1.47x" in texts[0] and texts[0].endswith("prune with --round-to 8")
    recwarn.clear()
    make_bundle(pruned_tiny, "jetson-nano", tmp_path / "nano")
    aligned = prune("deit_tiny_patch16_224", weights="random", model_args={"img_size": 64}, preset="deit_t_0.6g",
                    criteria="l1", round_to=8).handle
    manifest = check_bundle(make_bundle(aligned, "jetson-orin", tmp_path / "orin8"))
    assert manifest["model"]["width_alignment"] % 8 == 0 and not recwarn.list


@pytest.mark.slow
def test_orin_bundle_from_the_command_line(tmp_path, capsys):
    """`snp-edge bundle SRC --target jetson-orin --out DIR`: checks pass; the odd widths warned in one line."""
    src = tmp_path / "pruned"
    tiny = ["--model-arg", "img_size=64", "--weights", "random"]
    assert main(["prune", "--model", "deit_tiny_patch16_224", *tiny, "--preset", "deit_t_0.6g", "--criterion", "l1",
                 "--out", str(src)]) == 0
    capsys.readouterr()
    assert main(["bundle", str(src), "--target", "jetson-orin", "--out", str(tmp_path / "orin")]) == 0
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
    assert len(warned) == 1 and warned[0].startswith("snp-edge bundle: warning: ")
    assert warned[0].endswith("prune with --round-to 8")
    manifest = check_bundle(tmp_path / "orin")
    assert manifest["target"] == "jetson-orin" and manifest["onnx"]["opset"] == 17
    ops = {n.op_type for n in onnx.load(str(tmp_path / "orin" / "model.onnx")).graph.node}
    assert "LayerNormalization" in ops  # TensorRT 10.3 parses it: not decomposed as for the Nano


@pytest.mark.slow
def test_archive_unpacks_and_verifies_without_the_repository(pruned_tiny, tmp_path):
    archive = make_bundle(pruned_tiny, "jetson-nano", tmp_path / "nano", archive=True)
    assert archive.name == "nano.tar.gz" and not (tmp_path / "nano").exists()
    dest = tmp_path / "device"
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    bundle = dest / "nano"
    # -S: no site-packages, -I: isolated (no repo on the path): only the bundle and the standard library
    code = ("from engines.manifest import load_manifest, verify_files; "
            "m = load_manifest('.'); print(len(verify_files('.', m)))")
    proc = subprocess.run([sys.executable, "-S", "-I", "-c", f"import sys; sys.path.insert(0, '.'); {code}"],
                          cwd=bundle, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == len(json.loads((bundle / "manifest.json").read_text())["files"])


@pytest.mark.slow
def test_tampered_file_is_named(pruned_tiny, tmp_path):
    out = make_bundle(pruned_tiny, "rtx3090", tmp_path / "b")
    golden = out / "golden" / "outputs.npy"
    golden.write_bytes(golden.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(SnpEdgeError, match="golden/outputs.npy: sha256 mismatch"):
        check_bundle(out)


@pytest.mark.slow
def test_bad_manifest_field_is_named(pruned_tiny, tmp_path):
    out = make_bundle(pruned_tiny, "rtx3090", tmp_path / "b")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SnpEdgeError, match="schema_version"):
        check_bundle(out)


@pytest.mark.slow
def test_cli_bundle_errors(capsys, tmp_path):
    base = ["bundle", "--model", "deit_tiny_patch16_224", "--model-arg", "img_size=64", "--weights", "random"]
    assert main([*base, "--target", "jetson-nano", "--opset", "17", "--out", str(tmp_path / "b")]) == 2
    assert "opset 17 cannot be parsed by trt8.2" in capsys.readouterr().err
    assert main([*base, "--target", "rtx3090", "--out", str(tmp_path / "b"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["target"] == "rtx3090"
    assert main([*base, "--target", "rtx3090", "--out", str(tmp_path / "b")]) == 2
    assert "--force" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


@pytest.mark.slow
def test_labels_ship_with_the_bundle(tmp_path):
    from snp_edge.engines.manifest import load_manifest

    tiny = ["bundle", "--model", "deit_tiny_patch16_224", "--model-arg", "img_size=32", "--model-arg",
            "patch_size=8", "--weights", "random", "--target", "jetson-nano"]
    assert main([*tiny, "--out", str(tmp_path / "imagenet")]) == 0
    labels = (tmp_path / "imagenet" / "labels.txt").read_text().splitlines()
    assert len(labels) == 1000 and labels[0] == "tench, Tinca tinca" and labels[999].startswith("toilet tissue")
    manifest = load_manifest(str(tmp_path / "imagenet"))
    assert manifest["labels"] == "labels.txt" and "labels.txt" in manifest["files"]
    assert manifest["labels_source"] == "timm ImageNetInfo(imagenet-1k)"

    ten = [*tiny, "--model-arg", "num_classes=3"]
    assert main([*ten, "--out", str(tmp_path / "numbered")]) == 0
    assert (tmp_path / "numbered" / "labels.txt").read_text() == "class_0\nclass_1\nclass_2\n"
    (tmp_path / "mine.txt").write_text("cat\ndog\nbird\n\n")
    assert main([*ten, "--labels", str(tmp_path / "mine.txt"), "--out", str(tmp_path / "mine")]) == 0
    assert (tmp_path / "mine" / "labels.txt").read_text() == "cat\ndog\nbird\n"
    (tmp_path / "short.txt").write_text("cat\ndog\n")
    assert main([*ten, "--labels", str(tmp_path / "short.txt"), "--out", str(tmp_path / "short")]) == 2
    assert not (tmp_path / "short").exists()


@pytest.mark.slow
def test_device_pipeline_on_a_bundle_with_normalisation_in_the_graph(pruned_tiny, tmp_path):
    """With --normalize-in-graph --input-scale 255 the golden inputs are pixels: the device preprocessing
    follows the manifest's input form, and verify (ONNX Runtime) passes every gate end to end."""
    from snp_edge.engines import Classifier
    from snp_edge.engines.cli import main as engines_main
    from snp_edge.engines.preprocess import load_image
    from snp_edge.export.normalize import InputForm

    pixels = make_bundle(pruned_tiny, "jetson-nano", tmp_path / "pixels", input_form=InputForm.raw(255))
    normal = make_bundle(pruned_tiny, "jetson-nano", tmp_path / "normal")
    inputs = np.load(pixels / "golden" / "inputs.npy")
    assert -1e-3 <= inputs.min() and inputs.max() <= 255.001  # pixels (up to float rounding), not normalised
    assert engines_main(["verify", str(pixels), "--backend", "onnxruntime", "--json-file", str(tmp_path / "v.json")]) == 0
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["preprocessing"]["max_abs_err"] < 1e-3 and report["preprocessing"]["atol"] == pytest.approx(1.0)
    frame = load_image(str(pixels / "reference" / "images" / "coffee.png"))
    with Classifier(pixels, backend="onnxruntime") as a, Classifier(normal, backend="onnxruntime") as b:
        top_a, top_b = a.classify(frame)[0], b.classify(frame)[0]
    assert [c for c, _, _ in top_a] == [c for c, _, _ in top_b]
    assert np.allclose([p for _, p, _ in top_a], [p for _, p, _ in top_b], atol=1e-5)
