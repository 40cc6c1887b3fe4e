"""Issue 22's device commands under the real CPython 3.6 (JetPack 4.6) and 3.10 (JetPack 6) with the device's
library versions (tests/engines/device_python.py), on bundles made by the host pipeline: deploy with ONNX
Runtime and its status on a usage error, classify with ``--backend auto`` on files, a folder and a video made
here with OpenCV (one result per frame), the fast preprocessing. Skipped with the reason where that Python is
not found."""

import json
import shutil

import numpy as np
import pytest

from tests.engines.device_python import DEVICE_TARGETS, device_venv, launch

pytestmark = pytest.mark.slow

VERSIONS = ("3.6", "3.10")


@pytest.fixture(params=VERSIONS, ids=lambda v: "py" + v.replace(".", ""))
def device(request, host_bundles, tmp_path):
    """(device python, its version, a copy of the host-made bundle for its target, photo)."""
    version = request.param
    bundle, _, photo = host_bundles(DEVICE_TARGETS[version])
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    return device_venv(version), version, copy, photo


def _last_json(res):
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_deploy_onnxruntime_and_usage_status(device, tmp_path):
    python, version, bundle, _ = device
    status = tmp_path / "status.json"
    res = launch(python, bundle, "deploy", bundle, "--backend", "onnxruntime", "--no-prompt", "--status-file", status,
                 "--json")
    assert res.returncode == 0, res.stderr
    doc = _last_json(res)
    assert doc["status"] == "ok" and [s["name"] for s in doc["steps"]] == ["bundle", "onnxruntime", "cpu", "power", "verify"]
    assert doc["env"]["python"].startswith(version + ".") and doc == json.loads(status.read_text())
    res = launch(python, bundle, "deploy", bundle, "--max-batch", "0", "--status-file", status, "--json")
    assert res.returncode == 2 and "--max-batch" in res.stderr.splitlines()[-1]
    doc = json.loads(status.read_text())
    assert doc["exit_code"] == 2 and doc["failed_step"] == "usage" and _last_json(res) == doc


def _video(path, frames_rgb):
    import cv2

    h, w = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for frame in frames_rgb:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return path


def test_classify_video_exact_and_fast(device, tmp_path):
    """A 640x480 video of the reference photographs (OpenCV, MJPG), classified under the device's Python with
    --backend auto (ONNX Runtime here) by both preprocessing paths: one result per frame, the exact path's
    the host's, the fast path's close to it."""
    pytest.importorskip("cv2")
    from PIL import Image
    from snp_edge.engines import Classifier

    python, version, bundle, _ = device
    photos = [Image.open(bundle / "reference" / "images" / n).convert("RGB").resize((640, 480))
              for n in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.png")]
    video = _video(tmp_path / "clip.avi", [np.asarray(p) for p in photos for _ in range(2)])
    out = {}
    for mode in ("exact", "fast"):
        res = launch(python, bundle, "classify", bundle, video, "--preprocess", mode, "--json-lines")
        assert res.returncode == 0, res.stderr
        out[mode] = [json.loads(line) for line in res.stdout.splitlines()]
        assert [r["frame"] for r in out[mode]] == list(range(8)) and {r["backend"] for r in out[mode]} == {"onnxruntime"}
        assert res.stderr.startswith("backend: onnxruntime (the TensorRT Python bindings do not import")
    with Classifier(bundle, backend="onnxruntime") as clf:
        host = [row for _, row in clf.stream(str(video))]
    for rec, want in zip(out["exact"], host, strict=True):
        assert [t["class_id"] for t in rec["top_k"]] == [c for c, _, _ in want]
        assert np.allclose([t["prob"] for t in rec["top_k"]], [p for _, p, _ in want], atol=1e-4)
    # the fast path's top-5 probabilities stay near the exact ones (this model has random weights: its
    # probabilities are all about 1/1000 and its top-1 is a coin toss, so the top-1 is not compared here)
    for a, b in zip(out["exact"], out["fast"], strict=True):
        fast_probs = {t["class_id"]: t["prob"] for t in b["top_k"]}
        assert all(abs(t["prob"] - fast_probs.get(t["class_id"], 0.0)) < 0.01 for t in a["top_k"])


def test_manifest_and_readme_carry_the_fast_agreement(device):
    _, _, bundle, _ = device
    fast = json.loads((bundle / "manifest.json").read_text())["preprocess"]["fast"]
    assert set(fast["agreement"]) == {"pil/photos", "pil/camera_frames", "opencv/photos", "opencv/camera_frames"}
    assert fast["agreement"]["pil/photos"]["n"] == 4 and fast["agreement"]["pil/camera_frames"]["n"] == 8
    assert all(0 <= a["max_top5_prob_diff"] <= 1 for a in fast["agreement"].values())
    readme = (bundle / "README.md").read_text()
    a = fast["agreement"]["pil/photos"]
    assert f"| pil/photos | 4 | {100 * a['top1_agreement']:.1f}% | {a['max_top5_prob_diff']:.4f} |" in readme
    for text in ("## On the device", "clf = Classifier(\".\")", "python3 -m engines classify . photo.jpg",
                 "scripts/bench.sh", "scripts/deploy.sh --backend onnxruntime", "| 3 | a prerequisite is missing"):
        assert text in readme, text


def test_preprocess_speed_benchmark_runs(device, tmp_path):
    """benchmarks/preprocess_speed.py under the device's Python: the machine named, min/median/max per path and
    frame size, the exact/fast ratio (its numbers are for reading, not asserting: this machine is shared)."""
    import subprocess

    from tests.engines.device_fixtures import REPO

    python, version, bundle, _ = device
    out = tmp_path / "speed.json"
    res = subprocess.run([str(python), str(REPO / "benchmarks" / "preprocess_speed.py"), "--runs", "3", "--warmup",
                          "1", "--bundle", str(bundle), "--json-file", str(out)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert doc["versions"]["python"].startswith(version + ".") and doc["machine"]["cores"] >= 1
    assert set(doc["frames"]) == {"640x480", "1920x1080"}
    for rows in doc["frames"].values():
        assert set(rows) == {"exact", "fast-pil", "fast-opencv"}
        assert all(r["wall_ms"]["min"] <= r["wall_ms"]["median"] <= r["wall_ms"]["max"] for r in rows.values())
        assert rows["fast-pil"]["speedup_wall"] > 0
    assert res.stdout.startswith("machine: ") and "exact/fast" in res.stdout


def test_info_and_power_mode_off_a_jetson(device):
    """Issue 22 point 8: info names onnxruntime, Pillow and OpenCV versions; power-mode off a Jetson says so."""
    from tests.engines.device_python import DEVICE_PYTHONS

    python, _, bundle, _ = device
    pins = dict(p.split("==") for p in DEVICE_PYTHONS[device[1]].pins)
    res = launch(python, bundle, "info", bundle)
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    assert f"numpy {pins['numpy']}  onnxruntime {pins['onnxruntime']}  Pillow {pins['Pillow']}" in first
    assert "OpenCV 4." in first and res.stdout.splitlines()[1].startswith("os: ")
    res = launch(python, bundle, "power-mode", env={"PATH": "/usr/bin:/bin", "SNP_EDGE_NVPMODEL": ""})
    assert res.returncode == 0 and res.stdout.startswith("no Jetson power modes here: nvpmodel not found"), res.stdout


def test_sigterm_to_a_stage_script(device, tmp_path):
    """Issue 22 point 2 under the device's Python: SIGTERM to bench.sh's PID ends Python and its tegrastats."""
    from tests.engines.test_device_signals import sigterm_ends_the_stage

    (tmp_path / "sigterm").mkdir()
    sigterm_ends_the_stage(tmp_path / "sigterm", device[0])
