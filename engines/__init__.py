"""Device-side code for snp-edge bundles: the application runtime, TensorRT build, verify, bench and deploy
(Python 3.6+, TensorRT 8.2 and 10.x, numpy; Pillow for images; ONNX Runtime as the second backend).

Where things are (one concept per module)::

    classify.py   the application API: Classifier(bundle).classify(frames) -> (class_id, probability, label)
    preprocess.py image -> model input, step for step as timm's eval transform (spec in the manifest)
    inference.py  backends: TensorRT engine, ONNX Runtime, trtexec; engine options
    manifest.py   bundle manifest schema: load, validate, integrity (sha256, unlisted files, links)
    profiles.py   per-target batch profiles (min/opt/max) and workspace limits
    trt_compat.py every TensorRT 8.2 / 8.6 / 10.x / 11 API difference, chosen by version
    build.py      ONNX -> serialized engine with the TensorRT builder (FP16, FP32 LayerNorm pinning, DLA)
    sidecar.py    the JSON written beside each engine, compatibility checks, cache keys
    gpu.py        CUDA memory, streams, events and graphs through ctypes on libcudart, pycuda or cuda-python
    runtime.py    load an engine, run numpy batches, time runs (``time_engine``)
    verify.py     the gates: logits, preprocessing and top-k against the bundle's golden data
    envinfo.py    environment probes: TensorRT, GPU, Jetson power mode and clocks
    power.py      the power session (--max-perf); power_modes.py: nvpmodel modes per Jetson module
    trtexec.py    trtexec command lines per version, parsers for its output, the trtexec backend
    cli.py        ``python3 -m engines {build,verify,bench,info,classify,deploy,...} BUNDLE``
    options.py    the command line's argument groups (engine selection, output, power), parsed once per command
    batches.py    the input-batch check every backend shares
    outputs.py    where a user-named output may be written; memory.py: memory checks before an allocation
    quantization.py  INT8 bundles: the manifest block, the engine precision it implies
    sources.py    frame sources for classify (images, folders, videos, cameras, streams)
    benchmark.py  ``bench``: batch sweep, GPU and end-to-end times; telemetry.py, cpu_telemetry.py: sampling
    deploy.py     ``deploy``: make a device ready, unattended (deploy_cpu.py: the ONNX Runtime path's CPU facts)
    profile.py    ``profile``: measure a latency table (latency_table.py: its format)
    common/       the shared kernel, what the host imports too (see common/__init__.py): errors, fileio (atomic
                  writes), schema (the one field checker), stats, argtypes, targets (the device-target table),
                  runner (exit statuses, signals), degenerate, ort (ONNX Runtime sessions)
    __main__.py   the launcher (``python3 -I -B BUNDLE/engines/__main__.py``, ``python3 -m engines``)

TensorRT, CUDA bindings, numpy, Pillow and ONNX Runtime are imported only inside functions, so every module
imports (and the pure logic is tested) on a machine without them.

``Classifier`` is imported on first use (``from engines import Classifier``), nothing else at import time.

Imported from a bundle (as the top-level package ``engines``: ``python3 -m engines``, ``from engines import
Classifier``), the first thing this package does is the bundle's integrity check (``_bootstrap.py``, loaded
from its source, standard library only: see that module): no byte code is read or written, the bundle root
leaves ``sys.path`` (nothing beside this package, a ``numpy.py``, a ``json.py``, can shadow a module), and the
bundle is checked before anything else of it is imported.
"""

import os as _os
import sys as _sys

if __name__ == "engines":
    _sys.dont_write_bytecode = True
    _HERE = _os.path.dirname(_os.path.abspath(__file__))
    _ROOT = _os.path.realpath(_os.path.dirname(_HERE))
    _sys.path[:] = [p for p in _sys.path if _os.path.realpath(p or _os.curdir) != _ROOT]
    _pyc = globals().get("__cached__")  # Python wrote this file's byte code before this line could stop it
    if _pyc and _os.path.dirname(_os.path.abspath(_pyc)) == _os.path.join(_HERE, "__pycache__") \
            and _os.path.basename(_pyc).startswith("__init__.") and _os.path.isfile(_pyc):
        try:  # (python3 -m engines without -B): remove it, and its folder when empty; nothing else is touched
            _os.unlink(_pyc)
            _os.rmdir(_os.path.dirname(_pyc))
        except OSError:
            pass
    _boot = _sys.modules.get("engines._bootstrap")
    if _boot is None:  # not started by the launcher: load the bootstrap from its source, as the launcher does
        import types as _types

        _boot = _types.ModuleType("engines._bootstrap")
        _boot.__file__ = _os.path.join(_HERE, "_bootstrap.py")
        with open(_boot.__file__, "rb") as _f:
            exec(compile(_f.read(), _boot.__file__, "exec", dont_inherit=True), _boot.__dict__)
        _sys.modules["engines._bootstrap"] = _boot
    try:
        _boot.enter(_HERE)
    except _boot.BundleIntegrityError as _exc:
        if _sys.argv[:1] == ["-m"]:  # python3 -m engines: one line and status 2, as every command
            print("error: " + str(_exc), file=_sys.stderr)
            raise SystemExit(_exc.exit_status) from None
        raise


class _Package(type(_sys)):
    """This package, with ``Classifier`` (the application API: ``from engines import Classifier``) imported on
    first use, so importing an exception class or a helper does not load the application chain. (A module-level
    ``__getattr__`` needs Python 3.7; the device side runs 3.6, so the package's class does it.)"""

    def __getattr__(self, name):
        if name == "Classifier":
            from .classify import Classifier

            self.Classifier = Classifier
            return Classifier
        raise AttributeError("module {!r} has no attribute {!r}".format(self.__name__, name))


__all__ = ["Classifier"]
_sys.modules[__name__].__class__ = _Package  # after the bundle check above: nothing of the bundle ran before it
