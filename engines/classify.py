"""The application API: classify camera frames with a bundle, in three lines::

    from engines import Classifier                       # on the host: from snp_edge.engines import Classifier
    clf = Classifier("bundle-nano")                      # TensorRT where it loads, else ONNX Runtime
    print(clf.classify(frame, color="bgr")[0])           # [(class_id, probability, label), ...] top 5

and from a camera, a video or a stream (:mod:`engines.sources`; OpenCV)::

    for frame, result in clf.stream("csi://0", smoothing=0.8, threshold=0.3):
        print(frame.index, result)                       # frame.image: the HxWx3 uint8 frame

``Classifier(bundle)`` checks the bundle (manifest, sha256 of every file, nothing unlisted), reads its
preprocessing spec and labels, and opens the backend: for TensorRT it finds the engine in the bundle's
``trt-cache/`` (or ``cache_dir``) with the same cache key as ``python3 -m engines build``, and builds it there
when missing (minutes on a Jetson Nano; pass ``build=False`` to refuse instead).

``backend="auto"`` (the default) takes TensorRT where its bindings import and the engine loads (or builds),
else ONNX Runtime; :meth:`Classifier.describe` says which and why (``backend``, ``auto``).
``preprocess="fast"`` swaps the exact preprocessing for the fast one (:mod:`engines.preprocess`; its agreement
with the exact one is in the bundle's manifest and README).

``classify(frames, top_k=5, color="rgb")`` takes one HWC uint8 frame, a (N, H, W, C) batch, an image file's
path, a PIL image, or a list of these (any sizes; paths and PIL images are RGB whatever ``color`` says),
applies the manifest's preprocessing exactly as timm's eval transform does on the host, runs the model in
batches the engine accepts, and returns per frame a list of ``(class_id, probability, label)`` tuples, most
probable first (softmax over all classes). Non-finite logits raise
:class:`engines.common.errors.VerificationFailed` rather than return a class.

Thread safety: one Classifier may be shared by threads. Preprocessing runs in the calling thread, in
parallel; inference is serialised by a lock held by each Classifier (a TensorRT execution context, its CUDA
stream and buffers serve one inference at a time). For inference in parallel, give each thread its own
Classifier (each TensorRT one has its own execution context and buffers; they share the engine file).
"""

import os
import threading

from .common.errors import EnginesError, ManifestError, UserError, VerificationFailed, first_line
from .inference import APP_BACKENDS, EngineOptions, make_backend
from .manifest import open_bundle
from .preprocess import MODES, load_image, preprocess, spec_from_manifest

CLASSIFIER_BACKENDS = ("auto",) + APP_BACKENDS


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


def as_frames(frames, color="rgb"):
    """``[(HxWx3-ish uint8 array, color)]`` for what :meth:`Classifier.classify` takes: an array (one frame or
    an (N, H, W, C) batch), a path (str or path-like: decoded by Pillow, RGB), a PIL image (converted to
    RGB), or a list/tuple of these."""
    import numpy as np

    if isinstance(frames, (list, tuple)):
        out = []
        for item in frames:
            if isinstance(item, (list, tuple)):
                raise UserError("a frame must be an array, a path or a PIL image, not a nested list")
            out += as_frames(item, color)
        return out
    if isinstance(frames, str) or hasattr(frames, "__fspath__"):
        return [(load_image(os.fspath(frames)), "rgb")]
    if hasattr(frames, "convert") and hasattr(frames, "mode") and hasattr(frames, "size"):  # a PIL image
        return [(np.asarray(frames.convert("RGB"), dtype=np.uint8), "rgb")]
    arr = np.asarray(frames)
    if arr.ndim == 4:
        return [(a, color) for a in arr]
    return [(arr, color)]


class StreamFilter(object):
    """Per-stream smoothing and threshold of class probabilities: ``smoothing`` s in [0, 1) averages them
    over frames (``p = s * p_previous + (1 - s) * p_frame``: 0 none, 0.8 about the last 5 frames), and
    ``threshold`` drops classes below that probability from a result (an empty result: nothing sure)."""

    def __init__(self, smoothing=0.0, threshold=None):
        if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0 <= smoothing < 1:
            raise UserError("smoothing must be a number in [0, 1), got {!r}".format(smoothing))
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not 0 <= threshold <= 1):
            raise UserError("threshold must be a probability in [0, 1], got {!r}".format(threshold))
        self.smoothing, self.threshold = float(smoothing), threshold
        self._state = None

    def reset(self):
        """Forget the previous frames (a new source starts)."""
        self._state = None

    def probs(self, row):
        """One frame's (classes,) probabilities -> the smoothed ones."""
        if self.smoothing and self._state is not None:
            row = self.smoothing * self._state + (1.0 - self.smoothing) * row
        self._state = row
        return row

    def keep(self, result):
        """A ``[(class_id, probability, label)]`` result without the classes under the threshold."""
        if self.threshold is None:
            return result
        return [r for r in result if r[1] >= self.threshold]


class Classifier(object):
    """Image classification with a bundle (see the module docstring for the contract).

    ``backend``: "auto" (TensorRT where it loads, else ONNX Runtime), "tensorrt" or "onnxruntime".
    ``preprocess``: "exact" (timm's eval transform, bit for bit) or "fast". ``cache_dir``: engine cache (default ``BUNDLE/trt-cache``).
    ``precision``, ``fp32_norms``, ``fp32_softmax``, ``engine``, ``dla_core``: the engine, as for ``python3 -m
    engines build``. ``build``: build a missing engine (default) or refuse. ``threads``/``device``: ONNX Runtime's
    intra-op threads and "cpu"/"cuda". ``options``: an :class:`engines.inference.EngineOptions` that selects the
    TensorRT engine instead of the arguments above (how ``python3 -m engines classify`` honours ``--target``,
    the batch profile, ``--workspace-mib`` and ``--timing-cache``).
    """

    def __init__(self, bundle, backend="auto", cache_dir=None, precision="fp16", fp32_norms=None,
                 fp32_softmax=None, engine=None, build=True, threads=None, device="cpu", dla_core=None,
                 preprocess="exact", options=None):
        if backend not in CLASSIFIER_BACKENDS:
            raise UserError("backend must be one of {}, got {!r}".format(", ".join(CLASSIFIER_BACKENDS), backend))
        if preprocess not in MODES:
            raise UserError("preprocess must be one of {}, got {!r}".format(", ".join(MODES), preprocess))
        self.bundle = str(bundle)
        self.manifest = open_bundle(self.bundle)
        self.spec = spec_from_manifest(self.manifest)
        self.preprocess_mode = preprocess
        self.labels = read_labels(self.bundle, self.manifest)
        self.auto = None  # with backend="auto": why this backend
        self._lock = threading.Lock()

        def tensorrt():
            chosen = options or EngineOptions.for_bundle(self.bundle, self.manifest, precision=precision,
                                                         fp32_norms=fp32_norms, fp32_softmax=fp32_softmax,
                                                         cache_dir=cache_dir, engine=engine, dla_core=dla_core)
            return make_backend("tensorrt", self.bundle, self.manifest, chosen, build, threads, device)

        if backend == "tensorrt":
            self.backend = tensorrt()
        elif backend == "onnxruntime":
            self.backend = make_backend("onnxruntime", self.bundle, self.manifest, None, build, threads, device)
        else:
            from .envinfo import tensorrt_version

            reason = None
            if tensorrt_version() is None:
                reason = "the TensorRT Python bindings do not import"
            else:
                try:
                    self.backend = tensorrt()
                    self.auto = "TensorRT loads"
                except EnginesError as exc:  # no engine and build=False, no GPU, an engine of another TensorRT
                    reason = "TensorRT did not load: " + first_line(exc)
            if reason is not None:
                self.backend = make_backend("onnxruntime", self.bundle, self.manifest, None, build, threads, device)
                self.auto = reason + "; ONNX Runtime instead"

    def describe(self):
        """What runs the model (backend, engine or ONNX file, precision, versions; ``auto``: why this backend;
        ``preprocess``: exact or fast)."""
        info = dict(self.backend.describe(), preprocess=self.preprocess_mode)
        if self.auto is not None:
            info["auto"] = self.auto
        return info

    def preprocess(self, frames, color="rgb"):
        """Frames (see :func:`as_frames`) -> (N, 3, H, W) float32 model input (no lock: runs in the calling
        thread), by this Classifier's preprocessing mode."""
        import numpy as np

        items = as_frames(frames, color)
        if not items:
            raise UserError("no frames given")
        return np.concatenate([preprocess([a], self.spec, c, self.preprocess_mode) for a, c in items])

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

    def stream(self, source, top_k=5, every=1, max_frames=None, smoothing=0.0, threshold=None):
        """``(frame, result)`` for every frame of ``source`` (a SOURCE of :mod:`engines.sources`: image, folder,
        video file, /dev/videoN, csi://N, rtsp:// or http:// URL; or a list of them): ``frame`` an
        :class:`engines.sources.Frame` (``index``, ``image``, ``color``, ``name``), ``result`` the top-k
        ``[(class_id, probability, label)]`` after ``smoothing`` and ``threshold`` (:class:`StreamFilter`;
        smoothing restarts with each source)."""
        from .sources import open_sources

        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise UserError("top_k must be a positive integer, got {!r}".format(top_k))
        filt = StreamFilter(smoothing, threshold)
        specs = list(source) if isinstance(source, (list, tuple)) else [source]
        current = None
        for frame in open_sources(specs, every, max_frames):
            if frame.source != current:
                filt.reset()
                current = frame.source
            probs = filt.probs(softmax(self.logits(self.preprocess(frame.image, frame.color)))[0])
            row = top_k_rows(probs[None], top_k)[0]
            yield frame, filt.keep([(c, p, self.labels[c]) for c, p in row])

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
