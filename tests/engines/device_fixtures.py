"""Real bundles on disk for the device-side tests: a tiny ONNX classifier (Flatten, MatMul, a LayerNorm
decomposed the way the exporter writes it at opset 13 with ``/norm/...`` node names, MatMul), golden inputs,
ONNX Runtime FP32 golden logits, and a manifest written with ``engines.manifest.hash_files``."""

import json
import shutil
from pathlib import Path

import numpy as np
from snp_edge.engines.manifest import MANIFEST_NAME, SCHEMA_VERSION, hash_files
from snp_edge.engines.preprocess import default_spec

REPO = Path(__file__).resolve().parents[2]
C, HW, HIDDEN, CLASSES = 3, 4, 16, 10


def tiny_onnx_bytes(seed=0):
    """A (N, 3, 4, 4) -> (N, 10) float32 ONNX model, opset 13, dynamic batch, LayerNorm in 9 nodes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def const(name, value):
        return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)

    inits = [const("w1", rng.standard_normal((C * HW * HW, HIDDEN)) * 0.3), const("two", 2.0),
             const("eps", 1e-6), const("gamma", 1 + 0.1 * rng.standard_normal(HIDDEN)),
             const("beta", 0.1 * rng.standard_normal(HIDDEN)), const("w2", rng.standard_normal((HIDDEN, CLASSES)))]
    n = helper.make_node
    nodes = [
        n("Flatten", ["input"], ["flat"], name="/Flatten", axis=1),
        n("MatMul", ["flat", "w1"], ["h"], name="/fc1/MatMul"),
        n("ReduceMean", ["h"], ["mu"], name="/norm/ReduceMean", axes=[-1], keepdims=1),
        n("Sub", ["h", "mu"], ["xc"], name="/norm/Sub"),
        n("Pow", ["xc", "two"], ["sq"], name="/norm/Pow"),
        n("ReduceMean", ["sq"], ["var"], name="/norm/ReduceMean_1", axes=[-1], keepdims=1),
        n("Add", ["var", "eps"], ["var_eps"], name="/norm/Add"),
        n("Sqrt", ["var_eps"], ["std"], name="/norm/Sqrt"),
        n("Div", ["xc", "std"], ["normed"], name="/norm/Div"),
        n("Mul", ["normed", "gamma"], ["scaled"], name="/norm/Mul"),
        n("Add", ["scaled", "beta"], ["ln"], name="/norm/Add_1"),
        n("MatMul", ["ln", "w2"], ["logits"], name="/head/MatMul"),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", C, HW, HW])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="snp-edge-tests")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model.SerializeToString()


def manifest_dict(target="jetson-nano", files=None):
    """A valid manifest for the tiny model (``files`` filled in by :func:`make_bundle`)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "target": target,
        "created": "2025-01-31T12:00:00Z",
        "model": {"base_model": "tiny-test", "pruned": True, "gmacs": 0.001, "params": 928,
                  "widths": {"hidden": HIDDEN}, "accuracy_meaningful": False, "notice": "random weights"},
        "onnx": {"file": "model.onnx", "opset": 13,
                 "input": {"name": "input", "shape": [-1, C, HW, HW], "layout": "NCHW", "dtype": "float32"},
                 "output": {"name": "logits", "shape": [-1, CLASSES]}, "fp16_safe": False},
        "preprocess": default_spec([0.485, 0.456, 0.406], [0.229, 0.224, 0.225], HW, HW, "bicubic"),
        "num_classes": CLASSES,
        "golden": {"inputs": "golden/inputs.npy", "outputs": "golden/outputs.npy"},
        "versions": {"torch": "2.14.1", "timm": "1.0.9", "onnx": "1.16", "onnxruntime": "1.18",
                     "snp_edge": "0.1.0"},
        "files": files or {},
    }


def top_k_of(logits, k=5):
    """``golden.top_k`` for (N, classes) logits (float64 softmax)."""
    x = logits.astype(np.float64)
    probs = np.exp(x - x.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    ids = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return {"k": k, "class_ids": ids.tolist(), "probs": np.take_along_axis(probs, ids, 1).tolist(),
            "source": "test fixture: softmax of the ONNX Runtime logits"}


def make_bundle(root, target="jetson-nano", with_code=False, with_images=False):
    """Write a complete bundle under ``root``; returns its path. ``with_code`` copies engines/ and scripts/
    the way ``snp-edge bundle`` does; ``with_images`` puts two reference photographs first in the golden
    inputs (preprocessed by the device code itself: for CLI tests, not for checking preprocessing)."""
    import onnxruntime as ort
    from snp_edge.engines.preprocess import load_image, preprocess

    root = Path(root)
    (root / "golden").mkdir(parents=True)
    model = tiny_onnx_bytes()
    (root / "model.onnx").write_bytes(model)
    inputs = np.random.default_rng(1).standard_normal((8, C, HW, HW)).astype(np.float32)
    names = []
    if with_images:
        (root / "reference" / "images").mkdir(parents=True)
        for name in ("chelsea.png", "coffee.png"):
            shutil.copy(REPO / "export" / "reference" / name, root / "reference" / "images" / name)
            names.append(f"reference/images/{name}")
        spec = manifest_dict()["preprocess"]
        inputs[:2] = preprocess([load_image(str(root / n)) for n in names], spec)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    outputs = session.run(["logits"], {"input": inputs})[0].astype(np.float32)
    np.save(root / "golden" / "inputs.npy", inputs)
    np.save(root / "golden" / "outputs.npy", outputs)
    (root / "labels.txt").write_text("".join(f"label {i}\n" for i in range(CLASSES)))
    if with_code:
        shutil.copytree(REPO / "engines", root / "engines", ignore=shutil.ignore_patterns("__pycache__", "scripts"))
        shutil.copytree(REPO / "engines" / "scripts", root / "scripts")
    manifest = manifest_dict(target, hash_files(str(root)))
    manifest["golden"]["top_k"] = top_k_of(outputs)
    manifest["labels"], manifest["labels_source"] = "labels.txt", "test fixture"
    if names:
        manifest["golden"]["images"] = names
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    return root


# ---- stand-ins for what this machine lacks: trtexec (TensorRT) and a GPU to identify ---------------------------

NANO_IDENTITY = {"trt_version": "8.2.1", "gpu_name": "NVIDIA Tegra X1", "compute_capability": "5.3",
                 "cuda_backend": "test"}
ORIN_IDENTITY = {"trt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7", "cuda_backend": "test"}
FAKE_TRTEXEC = Path(__file__).resolve().parent / "fake_trtexec.py"


def fake_trtexec(folder, python=None):
    """An executable ``trtexec`` in ``folder`` running fake_trtexec.py with ``python`` (default: this one)."""
    import sys

    path = Path(folder) / "trtexec"
    path.write_text(f"#!/bin/sh\nexec {python or sys.executable} {FAKE_TRTEXEC} \"$@\"\n")
    path.chmod(0o755)
    return path


def gpu_python(folder, python=None, identity=None):
    """A ``python3`` for the bundle scripts ($PYTHON) that runs the isolated launcher with the GPU identity
    of a Jetson Nano, or ``identity`` (this machine has no GPU for engines.envinfo.device_identity to find)."""
    import sys

    identity = identity or NANO_IDENTITY
    path = Path(folder) / "python3"
    path.write_text(f"""#!{python or sys.executable}
import importlib, importlib.util, os, sys
args = [a for a in sys.argv[1:] if a not in ("-I", "-B")]
here = os.path.dirname(os.path.abspath(args[0]))
import types
boot = types.ModuleType("engines._bootstrap")  # the launcher's first step: the bootstrap, from source
boot.__file__ = os.path.join(here, "_bootstrap.py")
exec(compile(open(boot.__file__, "rb").read(), boot.__file__, "exec"), boot.__dict__)
sys.modules["engines._bootstrap"] = boot
try:
    boot.enter(here)
except boot.BundleIntegrityError as exc:
    print("error: " + str(exc), file=sys.stderr)
    boot.deploy_refusal_status(args[1:], str(exc))
    sys.exit(2)
spec = importlib.util.spec_from_file_location("engines", os.path.join(here, "__init__.py"),
                                              submodule_search_locations=[here])
pkg = importlib.util.module_from_spec(spec)
sys.modules["engines"] = pkg
spec.loader.exec_module(pkg)
envinfo = importlib.import_module("engines.envinfo")
envinfo.device_identity = lambda trt_version=None: dict({identity!r}, trt_version=trt_version or {identity["trt_version"]!r})
sys.argv = args
sys.exit(importlib.import_module("engines.cli").main(args[1:]))
""")
    path.chmod(0o755)
    return path
