"""The application API (``Classifier``) and ``engines classify`` with the ONNX Runtime backend, on real
bundles: results, labels, batches, BGR frames, the thread-safety contract with real threads, bad input."""

import json
import threading

import numpy as np
import pytest
from snp_edge.engines import Classifier
from snp_edge.engines.common.errors import UserError, VerificationFailed
from snp_edge.engines.preprocess import load_image

from tests.engines.device_fixtures import REPO, make_bundle
from tests.engines.test_device_cli import run


@pytest.fixture(scope="module")
def image_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("classify") / "bundle", with_images=True)


def _photos():
    return [load_image(str(REPO / "export" / "reference" / n)) for n in ("chelsea.png", "coffee.png", "rocket.png")]


def _expected(bundle, frames, k):
    """Top-k from ONNX Runtime directly on the device preprocessing (softmax in float64)."""
    import onnxruntime as ort
    from snp_edge.engines.manifest import load_manifest
    from snp_edge.engines.preprocess import preprocess, spec_from_manifest

    spec = spec_from_manifest(load_manifest(str(bundle)))
    x = preprocess(frames, spec)
    logits = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        ["logits"], {"input": x})[0].astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return [[(int(c), float(p[c])) for c in np.argsort(-p, kind="stable")[:k]] for p in probs]


def test_classify_frames_batches_and_bgr(image_bundle):
    frames = _photos()
    with Classifier(image_bundle, backend="onnxruntime") as clf:
        rows = clf.classify(frames, top_k=3)
        single = clf.classify(frames[0], top_k=3)
        bgr = clf.classify(np.ascontiguousarray(frames[0][:, :, ::-1]), top_k=3, color="bgr")
        stacked = clf.classify(np.stack([frames[0], frames[0]]), top_k=3)
        assert clf.describe()["backend"] == "onnxruntime"
    expected = _expected(image_bundle, frames, 3)
    for row, want in zip(rows, expected, strict=True):
        assert [c for c, _, _ in row] == [c for c, _ in want]
        assert np.allclose([p for _, p, _ in row], [p for _, p in want], atol=1e-6)
        assert [label for _, _, label in row] == [f"label {c}" for c, _ in want]
    assert single == [rows[0]] and bgr == [rows[0]] and stacked == [rows[0], rows[0]]


def test_thread_safety_contract_with_real_threads(image_bundle):
    """One Classifier shared by 6 threads, 5 calls each: every result equals the sequential one."""
    frames = _photos()
    clf = Classifier(image_bundle, backend="onnxruntime", threads=1)
    sequential = [clf.classify(f, top_k=5)[0] for f in frames]
    results, errors = [], []

    def worker(i):
        try:
            for j in range(5):
                n = (i + j) % len(frames)
                results.append((n, clf.classify(frames[n], top_k=5)[0]))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    clf.close()
    assert not errors and len(results) == 30
    assert all(row == sequential[n] for n, row in results)
    with pytest.raises(Exception, match="closed"):
        clf.classify(frames[0])


@pytest.mark.parametrize("frame,message", [
    (np.zeros((10, 10, 3), dtype=np.float32), "frames must be uint8"),
    (np.zeros((10, 10, 2), dtype=np.uint8), "a frame must be"),
    (np.zeros((0, 10, 3), dtype=np.uint8), "a frame must be"),
])
def test_bad_frames_are_refused(image_bundle, frame, message):
    with Classifier(image_bundle, backend="onnxruntime") as clf:
        with pytest.raises(UserError, match=message):
            clf.classify(frame)
        with pytest.raises(UserError, match="top_k must be a positive integer"):
            clf.classify(_photos()[0], top_k=0)


def test_nan_logits_never_become_a_class(image_bundle):
    with Classifier(image_bundle, backend="onnxruntime") as clf:
        clf.backend.run = lambda batch: np.full((len(batch), 10), np.nan, dtype=np.float32)
        with pytest.raises(VerificationFailed, match="NaN or Inf logits"):
            clf.classify(_photos()[0])


def test_classify_cli_json(image_bundle):
    images = [str(REPO / "export" / "reference" / n) for n in ("chelsea.png", "rocket.png")]
    res = run(["classify", image_bundle] + images + ["--backend", "onnxruntime", "--top-k", "2", "--json"])
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert [r["image"] for r in doc["results"]] == images
    expected = _expected(image_bundle, [load_image(p) for p in images], 2)
    for result, want in zip(doc["results"], expected, strict=True):
        assert [t["class_id"] for t in result["top_k"]] == [c for c, _ in want]
        assert [t["label"] for t in result["top_k"]] == [f"label {c}" for c, _ in want]
        assert all(abs(t["prob"] - p) < 1e-6 for t, (_, p) in zip(result["top_k"], want, strict=True))
