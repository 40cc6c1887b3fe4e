"""Issue 20 #2 and issue 22 #1: the places a bundle declares writable (``manifest.json`` ``writable``). Each
flavour's runtime, run as its README documents (stand-in engine files of the names it writes), leaves a bundle
that ``verify`` and ``Classifier`` accept; anything else added there (another name, code, a link) is refused
with status 2 and one line, under the host Python and CPython 3.6."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.engines.device_fixtures import make_bundle

from .conftest import assert_one_line_error, snapshot


@pytest.fixture(scope="module")
def flavoured(tmp_path_factory):
    """``{target: bundle}``: a Nano bundle with jetson-inference and DeepStream, an RTX one with Triton."""
    from snp_edge.export.bundle import make_bundle as host_bundle

    from snp_edge.models import load_model

    handle = load_model("deit_tiny_patch16_224", "random", {"img_size": 32, "patch_size": 8})
    root = tmp_path_factory.mktemp("flavoured")
    return {"jetson-nano": host_bundle(handle, "jetson-nano", root / "nano", flavors=["jetson-inference", "deepstream"]),
            "rtx3090": host_bundle(handle, "rtx3090", root / "rtx", flavors=["triton"])}


def _copy(bundle: Path, work: Path) -> Path:
    dest = work / bundle.name
    shutil.copytree(bundle, dest)
    return dest


def _deepstream(bundle: Path, manifest: dict) -> list[Path]:
    """nvinfer: builds the engine the config names (model-engine-file) beside the ONNX."""
    config = (bundle / manifest["flavors"]["deepstream"]["config"]).read_text()
    engine = re.search(r"^model-engine-file=(.+)$", config, re.M).group(1)
    return [bundle / "deepstream" / engine]


def _jetson_inference(bundle: Path, manifest: dict) -> list[Path]:
    """imagenet.py from the bundle root: engine + checksum beside the ONNX, the output image in the cwd."""
    command = manifest["flavors"]["jetson-inference"]["command"].split()
    model = bundle / command[1].split("=", 1)[1]
    return [model.with_name(model.name + ".1.1.8201.GPU.FP16.engine"),
            model.with_name(model.name + ".1.1.8201.GPU.FP16.engine.sha256sum"), bundle / command[-1]]


def _triton(bundle: Path, manifest: dict) -> list[Path]:
    """Triton's ONNX Runtime backend with the TensorRT EP cache the config enables; the README's trtexec plan."""
    entry = manifest["flavors"]["triton"]
    config = (bundle / entry["configs"][0]).read_text()
    cache = re.search(r'key: "trt_engine_cache_path" value: "([^"]+)"', config).group(1)
    assert 'key: "trt_engine_cache_enable" value: "true"' in config
    assert cache.startswith("/models/")  # the README mounts $PWD/triton at /models
    folder = bundle / "triton" / cache[len("/models/"):]
    return [folder / "TensorrtExecutionProvider_TRTKernel_graph_main_1234_0_0_sm86.engine",
            folder / "TensorrtExecutionProvider_TRTKernel_graph_main_1234_0_0_sm86.profile",
            folder / "TensorrtExecutionProvider_cache_sm86.timing", bundle / "triton" / entry["model_name"] / "1" /
            "model.plan"]


FLAVOURS = {"deepstream": ("jetson-nano", _deepstream), "jetson-inference": ("jetson-nano", _jetson_inference),
            "triton": ("rtx3090", _triton)}


@pytest.mark.slow
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_flavour_runtime_writes_keep_the_bundle_valid(engines, flavoured, work, flavour):
    target, writes = FLAVOURS[flavour]
    bundle = _copy(flavoured[target], work)
    manifest = json.loads((bundle / "manifest.json").read_text())
    written = writes(bundle, manifest)
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"stand-in for what the runtime writes")
    result = engines("verify", bundle, "--backend", "onnxruntime")
    assert result.status == 0 and "PASS" in result.out, result.err
    from snp_edge.engines.classify import Classifier

    with Classifier(str(bundle), backend="onnxruntime") as clf:
        assert len(clf.classify([__import__("numpy").zeros((8, 8, 3), "uint8")])[0]) == 5
    # the same places refuse anything else: another name, code, a link
    folder = written[0].parent
    for name, message in (("notes.txt", "a file manifest.json does not list"), ("evil.py", "a file manifest.json does not list"),
                          ("x.engine.pyc", "Python byte code")):
        (folder / name).write_bytes(b"x")
        before = snapshot(bundle)
        rel = (folder / name).relative_to(bundle)
        assert_one_line_error(engines("verify", bundle, "--backend", "onnxruntime"), 2, f"bundle entry {rel}: {message}")
        assert snapshot(bundle) == before
        (folder / name).unlink()
    written[0].unlink()
    written[0].symlink_to("/etc/passwd")
    assert_one_line_error(engines("verify", bundle, "--backend", "onnxruntime"), 2,
                          f"bundle entry {written[0].relative_to(bundle)}: a symbolic link")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["link", "unknown-name", "subfolder", "code"])
def test_trt_cache_is_checked(python, work, case):
    """Issue 20 #2: ``ln -s /etc/passwd b/trt-cache/x.engine`` passed verify with exit 0."""
    bundle = make_bundle(work / "bundle", with_code=True)
    cache = bundle / "trt-cache"
    cache.mkdir()
    path, message = {"link": ("x.engine", "bundle entry trt-cache/x.engine: a symbolic link"),
                     "unknown-name": ("x.bin", "bundle entry trt-cache/x.bin: a file manifest.json does not list"),
                     "subfolder": ("sub/x.engine", "bundle entry trt-cache/sub/: a folder manifest.json does not list"),
                     "code": ("sitecustomize.py", "bundle entry trt-cache/sitecustomize.py: a file manifest.json")}[case]
    if case == "link":
        (cache / path).symlink_to("/etc/passwd")
    else:
        (cache / path).parent.mkdir(exist_ok=True)
        (cache / path).write_bytes(b"x")
    before = snapshot(work)
    res = subprocess.run([python, "-I", "-B", str(bundle / "engines" / "__main__.py"), "verify", str(bundle),
                          "--backend", "onnxruntime"], capture_output=True, text=True, timeout=120, cwd=str(work),
                         env=dict(os.environ))
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], \
        res.stderr
    assert snapshot(work) == before


@pytest.mark.parametrize("writable,message", [
    ({"../outside": ["*.engine"]}, "field writable['../outside']: expected '.' or a relative folder"),
    ({"trt-cache": ["*.py"]}, "field writable['trt-cache']: expected a list of file-name patterns"),
    ({"trt-cache": ["sub/*.engine"]}, "field writable['trt-cache']: expected a list of file-name patterns"),
    ({"trt-cache": []}, "field writable['trt-cache']: expected a list of file-name patterns"),
    ({"engines/__pycache__": ["*.x"]}, "field writable['engines/__pycache__']: expected '.' or a relative folder"),
    ({".": ["manifest.json"]}, "field writable['.']: expected a list of file-name patterns"),
    ([], "field writable: expected an object"),
])
def test_writable_schema(engines, work, writable, message):
    bundle = make_bundle(work / "bundle")
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["writable"] = writable
    (bundle / "manifest.json").write_text(json.dumps(doc))
    assert_one_line_error(engines("info", bundle), 2, message)
