"""ONNX Runtime sessions: the one place that creates them (export parity, host bench, evaluation, and the
device runtime's ONNX Runtime backend). Works with onnxruntime 1.10 (JetPack / Python 3.6) and current."""

from .errors import EnginesError, MissingPrerequisite, first_line

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingPrerequisite(f"onnxruntime does not import ({first_line(exc)}): pip install onnxruntime "
                                  "(x86) or an onnxruntime-gpu wheel for JetPack") from None
    return onnxruntime


OPTIMIZATION_LEVELS = ("all", "extended", "basic", "disabled")


def ort_session(path, threads=None, device="cpu", optimization="all"):
    """An ``InferenceSession`` for the ONNX file ``path``: all graph optimisations (``optimization``: one of
    :data:`OPTIMIZATION_LEVELS`), sequential execution, ``threads`` intra-op threads (None: ONNX Runtime's
    default, every core), one inter-op thread, on ``device`` ("cpu" or "cuda")."""
    ort = import_onnxruntime()
    provider = PROVIDERS.get(device)
    if provider is None:
        raise EnginesError(f"unknown device {device!r}; use cpu or cuda")
    if provider not in ort.get_available_providers():
        raise MissingPrerequisite(f"onnxruntime {ort.__version__} has no {provider} here (install onnxruntime-gpu "
                                  f"for device {device})")
    opts = ort.SessionOptions()
    levels = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
              "disabled": "ORT_DISABLE_ALL"}
    if optimization not in levels:
        raise EnginesError(f"unknown graph optimization level {optimization!r}; use one of {', '.join(levels)}")
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, levels[optimization])
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), opts, providers=[provider])
    except Exception as exc:  # ORT raises its own Fail / InvalidGraph / NoSuchFile types
        raise EnginesError(f"onnxruntime cannot load {path}: {first_line(exc)}") from None


def run_logits(session, images, input_name="input", output_name="logits"):
    """Logits (N, classes) of an snp-edge ONNX session for float32 NCHW ``images`` (a numpy array)."""
    import numpy as np

    return session.run([output_name], {input_name: np.ascontiguousarray(images, dtype=np.float32)})[0]
