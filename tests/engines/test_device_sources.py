"""Issue 22 points 5 and 7: frame sources (image, folder, video file made here with OpenCV, V4L2, CSI, streams),
``Classifier.stream`` with smoothing and threshold, ``classify`` on paths and PIL images, ``--backend auto``
falling back to ONNX Runtime (and saying so), and the ``classify`` command on them."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from snp_edge.engines import Classifier
from snp_edge.engines.classify import StreamFilter, softmax
from snp_edge.engines.common.errors import MissingPrerequisite, UserError
from snp_edge.engines.preprocess import load_image
from snp_edge.engines.sources import csi_pipeline, open_source, open_sources

from tests.engines.device_fixtures import REPO, make_bundle
from tests.engines.test_device_cli import run

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (the test extra) makes the videos")

PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.png")


def write_video(path, size=(320, 240), repeat=3, fps=10):
    """An MJPG .avi of the reference photographs, ``repeat`` frames each; returns the frames (BGR) as decoded."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for name in PHOTOS:
        rgb = np.asarray(Image.open(REPO / "export" / "reference" / name).convert("RGB").resize(size))
        for _ in range(repeat):
            writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))
    writer.release()
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    bundle = make_bundle(root / "bundle", with_images=True)
    folder = root / "photos"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(REPO / "export" / "reference" / name, folder / name)
    (folder / "notes.txt").write_text("not an image")
    video = root / "clip.avi"
    frames = write_video(video)
    return bundle, folder, video, frames


def test_sources_video_folder_image(media):
    _, folder, video, frames = media
    got = list(open_source(video))
    assert [f.index for f in got] == list(range(12)) and len(frames) == 12
    assert all(f.color == "bgr" and f.source == str(video) and np.array_equal(f.image, frames[f.index]) for f in got)
    assert [f.index for f in open_source(video, every=5)] == [0, 5, 10]
    assert [f.index for f in open_source(video, every=3, max_frames=2)] == [0, 3]
    photos = list(open_source(folder))
    assert [os.path.basename(f.name) for f in photos] == sorted(PHOTOS) and photos[0].color == "rgb"
    assert np.array_equal(photos[0].image, load_image(str(folder / sorted(PHOTOS)[0])))
    both = list(open_sources([str(folder / "rocket.png"), video], max_frames=2))
    assert [(f.source, f.index) for f in both] == [(str(folder / "rocket.png"), 0), (str(video), 0), (str(video), 1)]


def test_source_errors(media, tmp_path):
    _, folder, _, _ = media
    (tmp_path / "empty").mkdir()
    for spec, error, message in [
        (str(tmp_path / "missing.mp4"), UserError, "no such file, folder or device"),
        (str(tmp_path / "empty"), UserError, "no image files"),
        ("/dev/video99", UserError, "no such camera: /dev/video99"),
        ("csi://x", UserError, "csi://N with N the sensor id"),
        ("csi://0", MissingPrerequisite, "built without GStreamer"),  # pip's OpenCV has none
    ]:
        with pytest.raises(error, match=message):
            list(open_source(spec))
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(UserError, match="cannot open .*broken.mp4 as a video file"):
        list(open_source(bad))
    with pytest.raises(UserError, match="every must be a positive integer"):
        list(open_source(folder, every=0))


def test_csi_pipeline():
    assert csi_pipeline("csi://1?width=1920&height=1080&fps=60") == (
        "nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM), width=1920, height=1080, framerate=60/1, "
        "format=NV12 ! nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
        "appsink drop=true max-buffers=1")
    assert "sensor-id=0" in csi_pipeline("csi://0") and "width=1280, height=720, framerate=30/1" in csi_pipeline("csi://0")
    with pytest.raises(UserError, match="bad option 'zoom=2'"):
        csi_pipeline("csi://0?zoom=2")


def test_classifier_paths_pil_auto_and_stream(media):
    bundle, folder, video, frames = media
    path = str(folder / "coffee.png")
    with Classifier(bundle, threads=1) as clf:  # backend="auto": no TensorRT here
        info = clf.describe()
        assert info["backend"] == "onnxruntime" and "ONNX Runtime instead" in info["auto"]
        assert info["preprocess"] == "exact"
        want = clf.classify(load_image(path))
        assert clf.classify(path) == want and clf.classify(folder / "coffee.png") == want
        assert clf.classify(Image.open(path)) == want and clf.classify(Image.open(path).convert("L").convert("RGB"))
        assert clf.classify([path, load_image(path)]) == want * 2
        streamed = list(clf.stream(video, top_k=3))
        assert [f.index for f, _ in streamed] == list(range(12))
        for frame, result in streamed:
            assert result == clf.classify(frames[frame.index], top_k=3, color="bgr")[0]
        # smoothing: an exponential average of the probabilities over the frames of one source
        logits = [clf.logits(clf.preprocess(f, "bgr")) for f in frames[:4]]
        smoothed = softmax(logits[0])[0]
        for x in logits[1:]:
            smoothed = 0.5 * smoothed + 0.5 * softmax(x)[0]
        last = list(clf.stream(video, top_k=10, max_frames=4, smoothing=0.5))[-1][1]
        assert np.allclose([p for _, p, _ in last], np.sort(smoothed)[::-1], atol=1e-12)
        kept = list(clf.stream(video, top_k=10, max_frames=1, threshold=0.1))[0][1]
        assert kept and all(p >= 0.1 for _, p, _ in kept) and len(kept) < 10
    with pytest.raises(UserError, match="backend must be one of auto, tensorrt, onnxruntime"):
        Classifier(bundle, backend="trtexec")
    for bad in ({"smoothing": 1.0}, {"threshold": 1.5}):
        with pytest.raises(UserError):
            StreamFilter(**bad)


@pytest.mark.slow
def test_classify_command_on_sources(media, tmp_path):
    bundle, folder, video, _ = media
    res = run(["classify", bundle, video, folder / "rocket.png", "--every", "4", "--max-frames", "2",
               "--json-lines", "--top-k", "2"])
    assert res.returncode == 0, res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(r["source"], r["frame"]) for r in records] == [(str(video), 0), (str(video), 4),
                                                             (str(folder / "rocket.png"), 0)]
    assert all(r["backend"] == "onnxruntime" and len(r["top_k"]) == 2 for r in records)
    assert res.stderr.startswith("backend: onnxruntime (the TensorRT Python bindings do not import; ONNX Runtime")
    res = run(["classify", bundle, folder, "--json", "--preprocess", "fast", "--smoothing", "0.5"])
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert [r["frame"] for r in doc["results"]] == [0, 1, 2, 3] and doc["backend"]["preprocess"] == "fast"
    help_text = run(["classify", "--help"]).stdout
    assert "{auto,tensorrt,onnxruntime}" in help_text and "trtexec" not in help_text
    for args, status, message in [
        ([video, "--smoothing", "1"], 2, "python3 -m engines classify: error: argument --smoothing: 1 is outside [0.0, 1.0)"),
        (["csi://0"], 3, "error: csi://0: this OpenCV"),
        (["/dev/video99"], 2, "error: no such camera"),
    ]:
        res = run(["classify", bundle, *args])
        assert res.returncode == status and res.stderr.splitlines()[-1].startswith(message), res.stderr


def test_without_opencv_video_is_a_missing_prerequisite(media, tmp_path):
    """Where cv2 does not import (a package that raises ImportError stands in for its absence), a video exits
    3 naming OpenCV; image files still classify (Pillow only)."""
    bundle, folder, video, _ = media
    (tmp_path / "cv2").mkdir()
    (tmp_path / "cv2" / "__init__.py").write_text("raise ImportError('No module named cv2')\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")
    cmd = [sys.executable, "-m", "engines", "classify", str(bundle)]
    res = subprocess.run(cmd + [str(video)], env=env, capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert res.returncode == 3
    assert res.stderr.splitlines()[-1].startswith("error: OpenCV (cv2) does not import (No module named cv2): a "
                                                  "video file needs it; JetPack ships it")
    res = subprocess.run(cmd + [str(folder / "rocket.png"), "--preprocess", "fast"], env=env, capture_output=True,
                         text=True, timeout=60, cwd=str(REPO))
    assert res.returncode == 0, res.stderr
