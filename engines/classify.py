"""The application API: classify camera frames with a bundle, in three lines::

    from engines import Classifier                       # on the host: from snp_edge.engines import Classifier
    clf = Classifier("bundle-nano", backend="tensorrt")  # or backend="onnxruntime"
    print(clf.classify(frame, color="bgr")[0])           # [(class_id, probability, label), ...] top 5

``Classifier(bundle)`` checks the bundle (manifest, sha256 of every file, nothing unlisted), reads its
preprocessing spec and labels, and opens the backend: for TensorRT it finds the engine in the bundle's
``trt-cache/`` (or ``cache_dir``) with the same cache key as ``python3 -m engines build``, and builds it there
when missing (minutes on a Jetson Nano; pass ``build=False`` to refuse instead).

``classify(frames, top_k=5, color="rgb")`` takes one HWC uint8 frame, a (N, H, W, C) batch or a list of
frames of any sizes (see :mod:`engines.preprocess`), applies the manifest's preprocessing exactly as timm's
eval transform does on the host, runs the model in batches the engine accepts, and returns per frame a list
of ``(class_id, probability, label)`` tuples, most probable first (softmax over all classes). Non-finite
logits raise :class:`engines.errors.VerificationFailed` rather than return a class.

Thread safety: one Classifier may be shared by threads. Preprocessing runs in the calling thread, in
parallel; inference is serialised by a lock held by each Classifier (a TensorRT execution context, its CUDA
stream and buffers serve one inference at a time). For inference in parallel, give each thread its own
Classifier (each TensorRT one has its own execution context and buffers; they share the engine file).
"""

import os
import threading

from .errors import EnginesError, ManifestError, UserError, VerificationFailed
from .inference import APP_BACKENDS, EngineOptions, make_backend
from .manifest import open_bundle
from .preprocess import preprocess, spec_from_manifest


def read_labels(bundle_dir, manifest):
    """The class labels (list of str, index = class id): labels.txt, or ``class_<i>`` for a bundle without."""
    n = manifest["num_classes"]
    if "labels" not in manifest:
        return ["class_{}".format(i) for i in range(n)]
    path = os.path.join(bundle_dir, manifest["labels"])
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError("cannot read {}: {}".format(manifest["labels"], exc)) from None
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) != n:
        raise ManifestError("{} has {} labels; the model has {} classes".format(manifest["labels"], len(lines), n))
    return [line.strip() for line in lines]


def softmax(logits):
    """Row-wise softmax in float64 of (N, classes) logits; refuses NaN and Inf."""
    import numpy as np

    x = np.asarray(logits, dtype=np.float64)
    if not np.isfinite(x).all():
        raise VerificationFailed("the model produced NaN or Inf logits (FP16 overflow? rebuild the engine with "
                                 "--fp32-norms, or check the input)")
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def top_k_rows(probs, k):
    """Per row the ``k`` largest probabilities as ``[(class_id, probability)]``, ties to the lower class id."""
    import numpy as np

    probs = np.asarray(probs)
    k = min(int(k), probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="mergesort")[:, :k]
    return [[(int(c), float(row[c])) for c in ids] for row, ids in zip(probs, order)]  # noqa: B905 (3.6)


class Classifier(object):
    """Image classification with a bundle (see the module docstring for the contract).

    ``backend``: "tensorrt" or "onnxruntime". ``cache_dir``: engine cache (default ``BUNDLE/trt-cache``).
    ``precision``, ``fp32_norms``, ``fp32_softmax``, ``engine``, ``dla_core``: the engine, as for ``python3 -m
    engines build``. ``build``: build a missing engine (default) or refuse. ``threads``/``device``: ONNX Runtime's
    intra-op threads and "cpu"/"cuda".
    """

    def __init__(self, bundle, backend="tensorrt", cache_dir=None, precision="fp16", fp32_norms=None,
                 fp32_softmax=None, engine=None, build=True, threads=None, device="cpu", dla_core=None):
        if backend not in APP_BACKENDS:
            raise UserError("backend must be one of {}, got {!r}".format(", ".join(APP_BACKENDS), backend))
        self.bundle = str(bundle)
        self.manifest = open_bundle(self.bundle)
        self.spec = spec_from_manifest(self.manifest)
        self.labels = read_labels(self.bundle, self.manifest)
        options = None
        if backend == "tensorrt":
            options = EngineOptions.for_bundle(self.bundle, self.manifest, precision=precision,
                                               fp32_norms=fp32_norms, fp32_softmax=fp32_softmax,
                                               cache_dir=cache_dir, engine=engine, dla_core=dla_core)
        self.backend = make_backend(backend, self.bundle, self.manifest, options, build, threads, device)
        self._lock = threading.Lock()

    def describe(self):
        """What runs the model (backend, engine or ONNX file, precision, versions)."""
        return self.backend.describe()

    def preprocess(self, frames, color="rgb"):
        """Frames -> (N, 3, H, W) float32 model input (no lock: runs in the calling thread)."""
        return preprocess(frames, self.spec, color)

    def logits(self, batch):
        """(N, 3, H, W) float32 -> (N, classes) float32 logits; one inference at a time per Classifier."""
        with self._lock:
            if self.backend is None:
                raise EnginesError("this Classifier is closed")
            return self.backend.run(batch)

    def classify(self, frames, top_k=5, color="rgb"):
        """Per frame the ``top_k`` most probable classes as ``[(class_id, probability, label), ...]``."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise UserError("top_k must be a positive integer, got {!r}".format(top_k))
        probs = softmax(self.logits(self.preprocess(frames, color)))
        return [[(c, p, self.labels[c]) for c, p in row] for row in top_k_rows(probs, top_k)]

    def close(self):
        """Release the backend (GPU buffers, execution context, session)."""
        with self._lock:
            if self.backend is not None:
                self.backend.close()
                self.backend = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
