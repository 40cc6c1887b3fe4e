"""Device-side code for snp-edge bundles: TensorRT build, verify and bench (Python 3.6+, TensorRT 8.2 and 10.x).

Where things are (one concept per module)::

    manifest.py   bundle manifest schema: load, validate, sha256 checks (shared with the host side)
    profiles.py   per-target batch profiles (min/opt/max) and workspace limits
    trt_compat.py every TensorRT 8.2 / 8.6 / 10.x / 11 API difference, chosen by version
    build.py      ONNX -> serialized engine with the TensorRT builder (FP16, FP32 LayerNorm pinning)
    sidecar.py    the JSON written beside each engine, compatibility checks, cache keys
    gpu.py        CUDA memory, streams and events through pycuda or cuda-python
    runtime.py    load an engine, run numpy batches, time runs (``time_engine``)
    verify.py     compare engine logits with the bundle's golden ONNX Runtime logits
    stats.py      latency statistics (mean, median, p90, p99, throughput)
    envinfo.py    environment probes: TensorRT, GPU, Jetson power mode and clocks
    trtexec.py    trtexec command lines per version, and parsers for its output
    cli.py        ``python3 -m engines {build,verify,bench,info,trtexec-cmd} BUNDLE``
    errors.py     exception types (one-line messages); fileio.py: atomic writes
    schema.py     field-by-field checks of parsed JSON/YAML (types, ranges, finite numbers), shared with the host

TensorRT, pycuda/cuda-python and numpy are imported only inside functions, so every module imports (and the
pure logic is tested) on a machine without them.
"""
