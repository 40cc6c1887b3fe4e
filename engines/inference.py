"""Inference backends: preprocessed batches (N, C, H, W float32) -> logits (N, classes float32).

==============  ===================================================================================
backend         what runs the model
==============  ===================================================================================
tensorrt        the bundle's engine through TensorRT's Python bindings and a CUDA binding (ctypes on
                libcudart, pycuda or cuda-python); the engine is found in the cache, or built there,
                with the same cache key as ``python3 -m engines build``
onnxruntime     the bundle's model.onnx in ONNX Runtime (CPU; CUDA with onnxruntime-gpu): the whole
                runtime where TensorRT is missing, and the FP32 reference on the device
trtexec         the trtexec-built engine run by trtexec itself (``--loadInputs``/``--exportOutput``):
                verify and bench where the TensorRT Python bindings are missing; not for applications
==============  ===================================================================================

Every backend has ``name``, ``max_batch`` (images per call; None: any), ``describe()`` (a dict for reports),
``run(batch)`` and ``close()``. None of them is thread-safe by itself: :class:`engines.classify.Classifier`
serialises calls.
"""

import os

from .batches import check_batch
from .common.errors import EnginesError, UserError

BACKENDS = ("tensorrt", "onnxruntime", "trtexec")
APP_BACKENDS = ("tensorrt", "onnxruntime")


class OnnxRuntimeBackend(object):
    """model.onnx in an ONNX Runtime session (``device`` "cpu" or "cuda", ``threads`` intra-op threads)."""

    name = "onnxruntime"
    max_batch = None

    def __init__(self, bundle_dir, manifest, threads=None, device="cpu"):
        from .common.ort import import_onnxruntime, ort_session

        self.manifest = manifest
        self.path = os.path.join(bundle_dir, manifest["onnx"]["file"])
        from .quantization import ort_optimization

        self.session = ort_session(self.path, threads, device, ort_optimization(manifest))
        self.device, self.threads = device, threads
        self.version = import_onnxruntime().__version__

    def describe(self):
        from .quantization import is_int8

        return {"backend": self.name, "model": self.path, "onnxruntime": self.version, "device": self.device,
                "threads": self.threads, "precision": "int8" if is_int8(self.manifest) else "fp32"}

    def run(self, batch):
        from .common.ort import run_logits

        onnx = self.manifest["onnx"]
        return run_logits(self.session, check_batch(batch, self.manifest), onnx["input"]["name"],
                          onnx["output"]["name"])

    def close(self):
        self.session = None


class TensorRTBackend(object):
    """The engine for ``options`` (an :class:`EngineOptions`): the cached one, or built now unless
    ``build`` is False (or ``options.engine`` names a file)."""

    name = "tensorrt"

    def __init__(self, bundle_dir, manifest, options, build=True):
        from .build import build_bundle, engine_path_for
        from .envinfo import device_identity
        from .runtime import EngineRunner

        self.manifest = manifest
        if options.engine:
            if not os.path.isfile(options.engine):
                raise EnginesError("engine not found: {}".format(options.engine))
            self.engine_path, self.reused = options.engine, True
        elif build:
            result = build_bundle(bundle_dir, manifest, options.profile, options.precision, options.fp32_norms,
                                  options.fp32_softmax, options.cache_dir, options.timing_cache,
                                  dla_core=options.dla_core)
            self.engine_path, self.reused = result.engine_path, result.reused
        else:
            self.engine_path = engine_path_for(manifest, options.profile, options.label, options.cache_dir,
                                               device_identity(), options.dla_core)
            if not os.path.isfile(self.engine_path):
                raise EnginesError("no engine for these flags in {} (looked for {}): run `python3 -m engines build "
                                   "{}` with the same flags first".format(options.cache_dir,
                                                                           os.path.basename(self.engine_path),
                                                                           bundle_dir))
            self.reused = True
        self.runner = EngineRunner(self.engine_path, signed=not options.engine)
        self.max_batch = self.runner.sidecar["profile"]["max"][0]
        self.min_batch = self.runner.sidecar["profile"]["min"][0]

    def describe(self):
        sc = self.runner.sidecar
        return {"backend": self.name, "engine": self.engine_path, "precision": sc["precision"],
                "trt_version": sc["trt_version"], "gpu_name": sc["gpu_name"], "cuda_backend": self.runner.cuda.name}

    def run(self, batch):
        from .runtime import run_batches

        outputs = run_batches(self.runner, check_batch(batch, self.manifest), self.max_batch, self.min_batch)
        name = self.manifest["onnx"]["output"]["name"]
        if name not in outputs:
            raise EnginesError("the engine has no output {!r} (it has {})".format(name, sorted(outputs)))
        return outputs[name]

    def close(self):
        if self.runner is not None:
            self.runner.close()
            self.runner = None


class EngineOptions(object):
    """Which engine: profile (:class:`engines.profiles.Profile`), precision and FP32 pins, cache folder,
    timing cache, DLA core (None: GPU only), or an explicit engine file. :meth:`for_bundle` gives the CLI's
    defaults."""

    def __init__(self, profile, precision="fp16", fp32_norms=False, fp32_softmax=False, cache_dir=None,
                 timing_cache=None, engine=None, dla_core=None):
        from .sidecar import precision_label

        self.profile, self.precision = profile, precision
        self.fp32_norms, self.fp32_softmax = fp32_norms, fp32_softmax
        self.cache_dir, self.timing_cache, self.engine = cache_dir, timing_cache, engine
        self.dla_core = dla_core
        self.label = precision_label(precision, fp32_norms, fp32_softmax)

    @classmethod
    def for_bundle(cls, bundle_dir, manifest, target=None, min_batch=None, opt_batch=None, max_batch=None,
                   workspace_mib=None, precision="fp16", fp32_norms=None, fp32_softmax=None, cache_dir=None,
                   timing_cache=None, engine=None, dla_core=None):
        """The options ``python3 -m engines build`` uses for these flags: the target's profile (one batch size
        with ``dla_core``, refused where the target has no DLA), and for a bundle made with ``--fp16-safe`` the
        FP32 pins by default in FP16."""
        from .build import DEFAULT_CACHE_DIR
        from .common.targets import check_dla_request, resolve_target
        from .profiles import resolve_profile
        from .quantization import engine_precision

        spec = resolve_target(target or manifest["target"])  # once: the record goes down
        precision = engine_precision(manifest, precision)  # an INT8 bundle builds INT8
        check_dla_request(spec, dla_core, precision)
        safe = manifest["onnx"]["fp16_safe"] and precision == "fp16"  # the fp16-safe rule, here only
        profile = resolve_profile(manifest, spec, min_batch, opt_batch, max_batch, workspace_mib,
                                  static=dla_core is not None)
        return cls(profile, precision, safe if fp32_norms is None else fp32_norms,
                   safe if fp32_softmax is None else fp32_softmax,
                   cache_dir or os.path.join(bundle_dir, DEFAULT_CACHE_DIR), timing_cache, engine, dla_core)


def make_backend(name, bundle_dir, manifest, options=None, build=True, threads=None, device="cpu"):
    """A backend by name; ``options`` (:class:`EngineOptions`) select the TensorRT engine."""
    if name == "onnxruntime":
        return OnnxRuntimeBackend(bundle_dir, manifest, threads, device)
    if options is None:
        options = EngineOptions.for_bundle(bundle_dir, manifest)
    if name == "tensorrt":
        return TensorRTBackend(bundle_dir, manifest, options, build)
    if name == "trtexec":
        from .trtexec import TrtexecBackend

        return TrtexecBackend(bundle_dir, manifest, options)
    raise UserError("unknown backend {!r}; use one of {}".format(name, ", ".join(BACKENDS)))
