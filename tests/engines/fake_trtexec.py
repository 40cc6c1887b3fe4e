#!/usr/bin/env python3
"""A stand-in for trtexec where TensorRT is absent (this machine): the same flags and output formats
(TensorRT 8.2's banner, --exportOutput JSON with 6 significant digits and nan tokens, --exportTimes records
with warm-ups), computing with ONNX Runtime on the ONNX the "engine" names. Behaviour switches (env):
FAKE_TRTEXEC_SLEEP=S (sleep after starting the engine file), FAKE_TRTEXEC_NAN=1 (outputs are NaN),
FAKE_TRTEXEC_FAIL=1 (exit 1 with an error line), FAKE_TRTEXEC_LOG=PATH (append argv),
FAKE_TRTEXEC_VERSION=v100300 (the banner's version tag), FAKE_TRTEXEC_DLA_CORES=K (DLA cores on the "module":
--useDLACore=N >= K fails as trtexec does, "Cannot create DLA engine, N not available"; a DLA build warns
that the layers in FAKE_TRTEXEC_DLA_FALLBACK, comma-separated, fall back to the GPU, in the log format of
the banner's version)."""

import json
import os
import sys
import time

VERSION = os.environ.get("FAKE_TRTEXEC_VERSION", "v8201")
BANNER = f"&&&& RUNNING TensorRT.trtexec [TensorRT {VERSION}] # trtexec " + " ".join(sys.argv[1:])
FALLBACK_LOG = ("[11/26/2026-10:00:01] [W] [TRT] Default DLA is enabled but layer {} is not supported on DLA, "
                "falling back to GPU.", "[11/26/2026-10:00:01] [W] [TRT] Layer '{}' (MATRIX_MULTIPLY): Unsupported on "
                "DLA. Switching this layer's device type to GPU.")


def opts():
    out = {}
    for arg in sys.argv[1:]:
        key, _, value = arg.partition("=")
        out[key] = value
    return out


def main():
    o = opts()
    if os.environ.get("FAKE_TRTEXEC_LOG"):
        with open(os.environ["FAKE_TRTEXEC_LOG"], "a") as f:
            f.write(json.dumps(sys.argv[1:]) + "\n")
    print(BANNER)
    print("[11/26/2026-10:00:00] [I] Selected Device: NVIDIA Tegra X1")
    if "--help" in o:
        return 0
    if os.environ.get("FAKE_TRTEXEC_FAIL"):
        print("[11/26/2026-10:00:01] [E] Error[4]: [network.cpp::validate::2789] fake failure")
        return 1
    if "--useDLACore" in o and int(o["--useDLACore"]) >= int(os.environ.get("FAKE_TRTEXEC_DLA_CORES", "0")):
        print(f"[11/26/2026-10:00:01] [E] Cannot create DLA engine, {o['--useDLACore']} not available")
        print(f"&&&& FAILED TensorRT.trtexec [TensorRT {VERSION}]")
        return 1
    if "--onnx" in o and "--useDLACore" in o:
        new_format = int(VERSION[1:]) >= 8500  # v8201 (8.2.1) prints the old format, v8502 and v100300 the new
        for name in os.environ.get("FAKE_TRTEXEC_DLA_FALLBACK", "").split(","):
            if name:
                print(FALLBACK_LOG[new_format].format(name))
    if "--onnx" in o:  # build
        with open(o["--saveEngine"], "w") as f:
            f.write("FAKE-ENGINE\n" + os.path.abspath(o["--onnx"]) + "\n")
            f.flush()
            time.sleep(float(os.environ.get("FAKE_TRTEXEC_SLEEP", "0")))
        if "--timingCacheFile" in o:
            with open(o["--timingCacheFile"], "ab") as f:
                f.write(b"t")
        print(f"&&&& PASSED TensorRT.trtexec [TensorRT {VERSION}]")
        return 0
    with open(o["--loadEngine"]) as f:
        onnx_path = f.read().splitlines()[1]
    name, _, dims = o["--shapes"].partition(":")
    shape = [int(d) for d in dims.split("x")]
    if "--exportOutput" in o:  # one inference on --loadInputs
        import numpy as np
        import onnxruntime as ort

        _, _, path = o["--loadInputs"].partition(":")
        x = np.fromfile(path, dtype=np.float32).reshape(shape)
        y = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {name: x})[0]
        values = ["nan" if os.environ.get("FAKE_TRTEXEC_NAN") else f"{v:g}" for v in y.ravel()]
        with open(o["--exportOutput"], "w") as f:
            f.write('[\n  {{ "name" : "logits"\n  , "dimensions" : "{}"\n  , "values" : [ {} ]\n  }}\n]\n'.format(
                "x".join(map(str, y.shape)), ", ".join(values)))
        return 0
    if "--exportTimes" in o:  # timing: 8.2 exports the warm-up runs too
        warm, runs = float(o.get("--warmUp", "0")), int(o["--iterations"])
        records, t = [], 0.0
        while t < warm:
            records.append({"startComputeMs": t, "computeMs": 5.0, "latencyMs": 6.0})
            t += 5.0
        for i in range(runs):
            compute = 1.0 + 0.01 * (i % 7) + 0.1 * shape[0]
            records.append({"startComputeMs": t, "computeMs": compute, "latencyMs": compute + 0.5})
            t += compute
        with open(o["--exportTimes"], "w") as f:
            json.dump(records, f)
        print("[11/26/2026-10:00:02] [I] GPU Compute Time: min = 1 ms, max = 2 ms, mean = 1.5 ms, median = 1.5 ms, "
              "percentile(99%) = 2 ms")
    return 0


sys.exit(main())
