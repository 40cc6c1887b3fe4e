"""Bundle flavours and Polygraphy data: each bundle passes its own checks here with the runtimes' real tools
where they run (the polygraphy CLI with ONNX Runtime, Triton's model-configuration schema from tritonclient),
and the DeepStream and jetson-inference files carry values derived from the manifest and checked by ONNX
Runtime against PyTorch. TensorRT, jetson-inference, DeepStream and a Triton server do not run here."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from snp_edge.engines.common.ort import ort_session, run_logits
from snp_edge.engines.common.targets import TARGETS
from snp_edge.export.bundle import check_bundle, make_bundle
from snp_edge.export.deepstream import deepstream_labels, nvinfer_preprocess
from snp_edge.export.flavors import FLAVORS, check_flavors, writer
from snp_edge.export.jetson_inference import jetson_preprocess, preprocessing_agreement
from snp_edge.export.normalize import InputForm

from snp_edge.cli import main
from snp_edge.errors import SnpEdgeError
from snp_edge.models import load_model

SMALL = {"img_size": 32, "patch_size": 8}
POLYGRAPHY = Path(sys.executable).with_name("polygraphy")


def photos():
    """Real photographs shipped inside scikit-image (name, HxWx3 uint8 RGB)."""
    import skimage.data

    return [(n, getattr(skimage.data, n)()) for n in ("astronaut", "coffee", "chelsea", "rocket")]


@pytest.fixture(scope="module")
def deit():
    return load_model("deit_tiny_patch16_224", "random", SMALL)


@pytest.fixture(scope="module")
def nano(deit, tmp_path_factory):
    """A Jetson Nano bundle with every Nano flavour, model.onnx taking 0..255 pixels."""
    return make_bundle(deit, "jetson-nano", tmp_path_factory.mktemp("nano") / "b", input_form=InputForm.raw(255),
                       flavors=["jetson-inference", "deepstream"], photos=photos())


@pytest.fixture(scope="module")
def rtx(deit, tmp_path_factory):
    """An RTX 3090 bundle with every RTX flavour, model.onnx normalised (the default)."""
    return make_bundle(deit, "rtx3090", tmp_path_factory.mktemp("rtx") / "b", flavors=["triton", "deepstream"])


def readme_block(bundle: Path, starts: str) -> str:
    """The line of the bundle README's code blocks that starts with ``starts``."""
    lines = [line for line in (bundle / "README.md").read_text().splitlines() if line.startswith(starts)]
    assert len(lines) >= 1, starts
    return lines[0]


# -- registry ---------------------------------------------------------------------------------------------------

def test_registry_is_the_one_place():
    assert list(FLAVORS) == ["jetson-inference", "deepstream", "triton"]
    for flavor in FLAVORS.values():
        assert set(flavor.targets) <= set(TARGETS) and callable(writer(flavor))
    jetsons = ("jetson-nano", "jetson-orin", "jetson-orin-nano", "jetson-orin-jp5")
    assert FLAVORS["triton"].targets == ("rtx3090",) and FLAVORS["jetson-inference"].targets == jetsons
    assert FLAVORS["deepstream"].targets == (*jetsons, "rtx3090")
    assert [f.name for f in check_flavors(["jetson-inference", "deepstream"], "jetson-orin")] == ["jetson-inference",
                                                                                                  "deepstream"]
    with pytest.raises(SnpEdgeError, match="--flavor triton is for rtx3090, not --target jetson-orin"):
        check_flavors(["triton"], "jetson-orin")
    assert [f.name for f in check_flavors(["triton", "deepstream", "triton"], "rtx3090")] == ["triton", "deepstream"]
    with pytest.raises(SnpEdgeError, match="--flavor triton is for rtx3090, not --target jetson-nano"):
        check_flavors(["triton"], "jetson-nano")
    with pytest.raises(SnpEdgeError, match="unknown flavor 'tensorflow'"):
        check_flavors(["tensorflow"], "rtx3090")


def test_cli_refuses_a_flavor_for_another_target_before_any_work(tmp_path, capsys):
    argv = ["bundle", "--model", "deit_tiny_patch16_224", "--weights", "random", "--target", "jetson-nano",
            "--flavor", "triton", "--out", str(tmp_path / "b")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--flavor triton is for rtx3090, not --target jetson-nano" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    assert main([*argv[:-4], "--flavor", "coreml", "--out", str(tmp_path / "b")]) == 2
    assert "argument --flavor: invalid choice: 'coreml'" in capsys.readouterr().err


def test_every_flavor_file_is_hashed_and_listed(nano, rtx):
    for bundle, names in ((nano, {"jetson-inference", "deepstream"}), (rtx, {"triton", "deepstream"})):
        manifest = check_bundle(bundle)
        assert set(manifest["flavors"]) == names
        on_disk = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file() and p.name != "manifest.json"}
        assert set(manifest["files"]) == on_disk
        for entry in manifest["flavors"].values():
            graph = onnx.load(bundle / entry["onnx"])
            dims = [d.dim_value or -1 for d in graph.graph.input[0].type.tensor_type.shape.dim]
            assert graph.graph.input[0].name == entry["input"]["name"] and dims == entry["input"]["shape"]
            assert graph.graph.output[0].name == entry["output"]["name"]


# -- Polygraphy ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("which", ["nano", "rtx"])
def test_polygraphy_onnxrt_command_from_the_readme_passes(which, request, tmp_path):
    """The README's host line, run by the real polygraphy CLI in the bundle folder, passes; the same line with
    one golden logit changed by 0.01 fails, so the comparison has teeth."""
    bundle = request.getfixturevalue(which)
    line = readme_block(bundle, "polygraphy run model.onnx --onnxrt")
    assert line == ("polygraphy run model.onnx --onnxrt --load-inputs golden/polygraphy_inputs.json "
                    "--load-outputs golden/polygraphy_outputs.json")
    run = subprocess.run([str(POLYGRAPHY), *line.split()[1:]], cwd=bundle, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0 and "PASSED" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]

    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json

    feeds = load_json(str(bundle / "golden/polygraphy_inputs.json"))
    assert np.array_equal(feeds[0]["input"], np.load(bundle / "golden/inputs.npy"))
    results = RunResults.load(str(bundle / "golden/polygraphy_outputs.json"))
    (_, iterations), = results.items()
    logits = iterations[0]["logits"]
    assert np.array_equal(logits, np.load(bundle / "golden/outputs.npy"))
    logits[3, 7] += 0.01
    iterations[0]["logits"] = logits
    results.save(str(tmp_path / "bad.json"))
    bad = line.replace("golden/polygraphy_outputs.json", str(tmp_path / "bad.json"))
    run = subprocess.run([str(POLYGRAPHY), *bad.split()[1:]], cwd=bundle, capture_output=True, text=True, timeout=240)
    assert run.returncode != 0 and "FAILED" in run.stdout + run.stderr


def test_polygraphy_tensorrt_line_uses_the_verify_tolerance(rtx):
    """The device line (not run here: no TensorRT) builds a profile covering the golden batch and gates at
    0.02 x the largest golden logit, as ``engines verify`` does for FP16."""
    line = readme_block(rtx, "polygraphy run model.onnx --trt --fp16")
    outputs = np.load(rtx / "golden/outputs.npy")
    atol = float(re.search(r"--atol (\S+)", line).group(1))
    assert atol == pytest.approx(0.02 * max(np.abs(outputs).max(), 1.0), rel=2e-3)
    n = len(outputs)  # the golden batch: the 4 reference photographs
    assert f"--trt-opt-shapes input:[{n},3,32,32] --trt-max-shapes input:[{n},3,32,32]" in line
    assert n == 4 and line.endswith("--rtol 0")


# -- Triton -------------------------------------------------------------------------------------------------------

def test_triton_model_names_are_directory_names():
    from snp_edge.export.triton import model_name

    assert model_name("deit_small_patch16_224 (SNP, deit_s_snp13)") == "deit_small_patch16_224_SNP_deit_s_snp13"
    assert model_name("deit_tiny_patch16_224") == "deit_tiny_patch16_224" and model_name("../") == "model"


def triton_types():
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2, {onnx.TensorProto.FLOAT: model_config_pb2.TYPE_FP32}


def test_triton_configs_parse_against_tritons_schema(rtx):
    from google.protobuf import text_format

    pb2, onnx_to_triton = triton_types()
    manifest = json.loads((rtx / "manifest.json").read_text())
    entry, spec = manifest["flavors"]["triton"], TARGETS["rtx3090"]
    root = rtx / "triton" / entry["model_name"]
    graph = onnx.load(root / "1" / "model.onnx")
    assert (root / "1" / "model.onnx").read_bytes() == (rtx / "model.onnx").read_bytes()
    onnx_in, onnx_out = graph.graph.input[0], graph.graph.output[0]
    for path, platform in ((root / "config.pbtxt", "onnxruntime_onnx"), (root / "configs" / "plan.pbtxt", "tensorrt_plan")):
        config = text_format.Parse(path.read_text(), pb2.ModelConfig())
        assert config.name == root.name and config.platform == platform
        assert config.max_batch_size == spec.max_batch
        (inp,), (out,) = config.input, config.output
        assert inp.name == onnx_in.name and out.name == onnx_out.name
        assert list(inp.dims) == [d.dim_value for d in onnx_in.type.tensor_type.shape.dim][1:]
        assert list(out.dims) == [d.dim_value for d in onnx_out.type.tensor_type.shape.dim][1:]
        assert onnx_in.type.tensor_type.shape.dim[0].dim_param  # Triton's batch dimension is the ONNX's dynamic one
        assert inp.data_type == onnx_to_triton[onnx_in.type.tensor_type.elem_type]
        assert out.data_type == onnx_to_triton[onnx_out.type.tensor_type.elem_type]
        assert list(config.dynamic_batching.preferred_batch_size) == [spec.opt_batch]
        assert [g.kind for g in config.instance_group] == [pb2.ModelInstanceGroup.KIND_GPU]
        labels = (root / out.label_filename).read_text().splitlines()
        assert labels == (rtx / "labels.txt").read_text().splitlines()
    accel = text_format.Parse((root / "config.pbtxt").read_text(), pb2.ModelConfig()).optimization
    (trt,) = accel.execution_accelerators.gpu_execution_accelerator
    assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == "FP16"
    with pytest.raises(text_format.ParseError):  # the schema has teeth: an unknown field is refused
        text_format.Parse((root / "config.pbtxt").read_text() + "dynamic_batching { max_batch: 4 }\n", pb2.ModelConfig())
    assert "--model-config-name=plan" in (rtx / "README.md").read_text()


# -- DeepStream ---------------------------------------------------------------------------------------------------

def nvinfer_config(bundle: Path) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read_string((bundle / "deepstream" / "config_infer_primary.txt").read_text())
    return dict(parser["property"])


@pytest.fixture(scope="module")
def orin(deit, tmp_path_factory):
    """A Jetson Orin (JetPack 6, opset 17) bundle with the Jetson flavours, model.onnx taking 0..1 pixels."""
    return make_bundle(deit, "jetson-orin", tmp_path_factory.mktemp("orin") / "b", input_form=InputForm.raw(1),
                       flavors=["jetson-inference", "deepstream"])


@pytest.mark.parametrize("which,target", [("nano", "jetson-nano"), ("rtx", "rtx3090"),
                                          pytest.param("orin", "jetson-orin", marks=pytest.mark.slow)])
def test_deepstream_config_is_derived_from_the_manifest(which, target, request):
    bundle = request.getfixturevalue(which)
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry, cfg = manifest["flavors"]["deepstream"], nvinfer_config(bundle)
    folder = bundle / "deepstream"
    assert (folder / cfg["onnx-file"]).is_file() and f"deepstream/{cfg['onnx-file']}" == entry["onnx"]
    assert cfg["model-engine-file"] == f"{cfg['onnx-file']}_b{cfg['batch-size']}_gpu{cfg['gpu-id']}_fp16.engine"
    assert int(cfg["batch-size"]) == TARGETS[manifest["target"]].opt_batch and manifest["target"] == target
    assert cfg["infer-dims"] == ";".join(str(d) for d in manifest["onnx"]["input"]["shape"][1:])
    assert cfg["network-mode"] == "2" and cfg["network-type"] == "1" and cfg["model-color-format"] == "0"
    assert cfg["output-blob-names"] == entry["output"]["name"] == "probs"
    labels = (folder / cfg["labelfile-path"]).read_text().rstrip("\n").split(";")
    assert labels == (bundle / "labels.txt").read_text().splitlines() and len(labels) == manifest["num_classes"]
    assert float(cfg["net-scale-factor"]) == 1.0 and cfg["offsets"] == "0;0;0"


def test_deepstream_preprocessing_is_exact(nano, deit):
    """nvinfer's y = net-scale-factor * (x - offsets) on 0..255 pixels, fed to the flavour's ONNX, gives the
    model's probabilities on timm-normalised pixels (ORT against PyTorch, max abs <= 1e-4)."""
    cfg = nvinfer_config(nano)
    nsf, offsets = float(cfg["net-scale-factor"]), np.array([float(o) for o in cfg["offsets"].split(";")])
    x = np.random.default_rng(3).integers(0, 256, (5, 3, 32, 32)).astype(np.float32)
    y = (nsf * (x - offsets[:, None, None])).astype(np.float32)
    probs = run_logits(ort_session(str(nano / "deepstream" / "model.onnx")), y, output_name="probs")
    mean, std = torch.tensor(deit.data_config["mean"]), torch.tensor(deit.data_config["std"])
    with torch.no_grad():
        ref = torch.softmax(deit.model((torch.from_numpy(x) / 255 - mean[:, None, None]) / std[:, None, None]), -1)
    assert np.abs(probs - ref.numpy()).max() <= 1e-4 and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_nvinfer_cannot_express_per_channel_std():
    assert nvinfer_preprocess(InputForm.raw(255)) == (1.0, [0.0, 0.0, 0.0])
    assert nvinfer_preprocess(InputForm.raw(1)) == (1 / 255, [0.0, 0.0, 0.0])
    nsf, offsets = nvinfer_preprocess(InputForm(1.0, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    assert nsf == pytest.approx(2 / 255) and offsets == [127.5] * 3
    with pytest.raises(SnpEdgeError, match="one net-scale-factor for all channels"):
        nvinfer_preprocess(InputForm.external((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))


def test_deepstream_labels_format():
    assert deepstream_labels(["cat", "dog, puppy", "bird"]) == "cat;dog, puppy;bird\n"
    with pytest.raises(SnpEdgeError, match=r"label 1 \('a;b'\) contains ';', DeepStream's label separator"):
        deepstream_labels(["cat", "a;b"])


# -- jetson-inference -----------------------------------------------------------------------------------------------

def jetson_inference_label_rule(path: Path) -> list[str]:
    """imageNet::LoadClassLabels' rule (c/imageNet.cpp): a line 'nXXXXXXXX desc' (9-character synset, then a
    space) yields desc, any other line is the description itself."""
    out = []
    for line in path.read_text().splitlines():
        out.append(line[10:] if len(line) > 9 and line[0] == "n" and line[9] == " " else line)
    return out


def test_jetson_inference_files(nano):
    manifest = json.loads((nano / "manifest.json").read_text())
    entry = manifest["flavors"]["jetson-inference"]
    graph = onnx.load(nano / entry["onnx"])
    assert [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 32, 32]
    assert [d.dim_value for d in graph.graph.output[0].type.tensor_type.shape.dim] == [1, 1000]
    assert graph.graph.output[0].name == "probs" and graph.graph.node[-1].op_type == "Softmax"
    assert entry["input"]["normalization"] == {"in_graph": True, "pixel_scale": 1.0, "mean": [0.485, 0.456, 0.406],
                                               "std": [0.229, 0.224, 0.225]}
    command = ("imagenet.py --model=jetson-inference/model.onnx --labels=jetson-inference/labels.txt "
               "--input-blob=input --output-blob=probs input.jpg output.jpg")
    assert entry["command"] == command and readme_block(nano, "imagenet.py ") == command
    labels = (nano / "labels.txt").read_text().splitlines()
    assert jetson_inference_label_rule(nano / "jetson-inference" / "labels.txt") == labels
    assert "notebook, notebook computer" in labels  # a label jetson-inference would cut without the prefix
    report = entry["preprocessing_agreement"]
    assert report["images"] == ["astronaut", "coffee", "chelsea", "rocket"]
    readme = (nano / "README.md").read_text()
    assert f"top-1 agreement between jetson-inference's preprocessing and timm's transform **{report['top1_agreement']:.0%}**" in readme
    assert f"max probability difference **{report['max_prob_diff']:.3g}**" in readme
    assert "NOTICE: random weights" in readme


def test_jetson_preprocess_follows_the_kernel():
    """Nearest-neighbour stretch: a frame already at the network size is taken pixel for pixel, a frame twice as
    wide takes every second column; then [0, 1] and ImageNet mean/std."""
    rgb = np.random.default_rng(0).integers(0, 256, (32, 64, 3), dtype=np.uint8)
    out = jetson_preprocess(rgb, 32)
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    want = ((rgb[:, ::2].astype(np.float32) * np.float32(1 / 255) - mean) / std).transpose(2, 0, 1)
    assert out.shape == (3, 32, 32) and np.array_equal(out, want)
    rgb = rgb[:, :48]  # 48 -> 32: x * 1.5 truncated: 0, 1, 3, 4, 6, ...
    cols = [int(x * np.float32(1.5)) for x in range(32)]
    want = (rgb[0, cols, 0].astype(np.float32) * np.float32(1 / 255) - mean[0]) / std[0]
    assert np.array_equal(jetson_preprocess(rgb, 32)[0, 0], want)


def test_jetson_inference_onnx_on_its_own_tensor_is_the_model(deit, nano):
    """What jetson-inference feeds (its stretch, [0, 1], ImageNet mean/std) through the flavour's ONNX gives the
    model's probabilities on the same pixels normalised the model's way: only the resize differs from timm."""
    rgb = np.random.default_rng(1).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    fed = jetson_preprocess(rgb, 32)[None]
    probs = run_logits(ort_session(str(nano / "jetson-inference" / "model.onnx")), fed, output_name="probs")
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    pixels = fed * std[:, None, None] + mean[:, None, None]  # back to [0, 1]
    dmean, dstd = np.array(deit.data_config["mean"]), np.array(deit.data_config["std"])
    with torch.no_grad():
        ref = torch.softmax(deit.model(torch.from_numpy(((pixels - dmean[:, None, None]) / dstd[:, None, None])
                                                         .astype(np.float32))), -1).numpy()
    assert np.abs(probs - ref).max() <= 1e-4


def test_preprocessing_agreement_report(deit, nano):
    report = preprocessing_agreement(deit, nano / "jetson-inference" / "model.onnx", photos()[:2])
    agree = np.mean(np.array(report["top1_timm"]) == np.array(report["top1_jetson_inference"]))
    assert report["images"] == ["astronaut", "coffee"] and report["top1_agreement"] == agree
    assert 0 < report["max_prob_diff"] <= 1 and max(report["top1_prob_diff"]) <= report["max_prob_diff"]
    assert report["accuracy_meaningful"] is False
    assert 0.05 < report["input_mean_abs_diff"] < 2  # stretch + nearest neighbour against resize + crop: not equal


@pytest.mark.slow
def test_flavors_leave_the_plain_bundle_alone(rtx, deit, tmp_path):
    """A bundle without --flavor has no flavour folders and no flavors field; its model.onnx is the same graph."""
    plain = make_bundle(deit, "rtx3090", tmp_path / "plain")
    manifest = check_bundle(plain)
    assert "flavors" not in manifest and not (plain / "triton").exists() and not (plain / "deepstream").exists()
    assert (plain / "model.onnx").read_bytes() == (rtx / "model.onnx").read_bytes()
    assert manifest["golden"]["polygraphy_inputs"] == "golden/polygraphy_inputs.json"
