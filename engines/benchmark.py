"""``python3 -m engines bench``: a batch sweep in one run, GPU and end-to-end times, telemetry.

For each batch size (default 1, 2, 4, ... up to the engine profile's maximum): ``warmup`` untimed runs, then
``runs`` timed ones. Per run:

* GPU time (TensorRT, trtexec): the inference alone on the GPU, CUDA events around the enqueue (or the CUDA
  graph launch with ``--cuda-graph``); trtexec: its per-run ``computeMs``;
* end-to-end time: host wall time of [preprocessing ``batch`` reference frames, with ``--preprocess``] +
  copy in + inference + copy out + synchronisation; ONNX Runtime: ``session.run`` (it has no GPU time);
  trtexec: its per-run ``latencyMs`` (copies and compute).

Telemetry (:mod:`engines.telemetry`) is sampled during the whole sweep and summarised per batch size, with
the energy per image where power rails are readable and a throttling flag. The JSON (schema
``snp-edge-device-bench/3``) carries the manifest's model block, so ``snp-edge bench FILE`` on the host shows
GMACs, params and kernel efficiency, one section per batch size.
"""

import os
import time

from . import envinfo
from .common.errors import EnginesError
from .common.stats import summarize, throughput

BENCH_SCHEMA = "snp-edge-device-bench/3"  # /3: sections per batch size, gpu_ms and e2e_ms, telemetry


def default_batches(max_batch, min_batch=1):
    """``min_batch``, then the powers of two between it and ``max_batch``, then ``max_batch`` (a static
    profile, as a DLA engine has: that one batch size)."""
    out, b = [min_batch], 1
    while b < max_batch:
        if b > min_batch:
            out.append(b)
        b *= 2
    return out + ([max_batch] if max_batch > min_batch else [])


def _reference_frames(bundle_dir, manifest):
    """The bundle's reference photographs as uint8 frames (for --preprocess), or seeded noise frames."""
    import numpy as np

    from .preprocess import load_image

    images = manifest["golden"].get("images") or []
    if images:
        return [load_image(os.path.join(bundle_dir, rel)) for rel in images]
    rng = np.random.RandomState(0)
    return [rng.randint(0, 256, (480, 640, 3)).astype(np.uint8) for _ in range(4)]


def _batch_input(manifest, batch):
    import numpy as np

    shape = (batch,) + tuple(manifest["onnx"]["input"]["shape"][1:])
    return np.random.RandomState(0).standard_normal(shape).astype(np.float32)


class _Preprocessor(object):
    """Preprocesses ``batch`` frames per call (cycling through the reference frames) for the e2e time."""

    def __init__(self, bundle_dir, manifest):
        from .preprocess import spec_from_manifest

        self.frames = _reference_frames(bundle_dir, manifest)
        self.spec = spec_from_manifest(manifest)
        self.i = 0

    def __call__(self, batch):
        from .preprocess import preprocess

        frames = [self.frames[(self.i + j) % len(self.frames)] for j in range(batch)]
        self.i += batch
        return preprocess(frames, self.spec)


def _time_tensorrt(backend, manifest, batch, warmup, runs, pre, cuda_graph):
    """(gpu ms, e2e ms) per run on the TensorRT backend's engine runner."""
    runner = backend.runner
    cuda, stream = runner.cuda, runner.stream
    runner.prepare(batch)
    x = _batch_input(manifest, batch)
    graph = runner.capture_graph() if cuda_graph else None
    start, end = cuda.event(), cuda.event()
    gpu, e2e = [], []
    try:
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            if pre is not None:
                x = pre(batch)
            runner.upload(x, sync=False)
            cuda.record(start, stream)
            if graph is None:
                runner.enqueue()
            else:
                cuda.launch_graph(graph, stream)
            cuda.record(end, stream)
            runner.download()
            cuda.synchronize(stream)
            t1 = time.perf_counter()
            if i >= warmup:
                gpu.append(float(cuda.elapsed_ms(start, end)))
                e2e.append((t1 - t0) * 1000.0)
    finally:
        if graph is not None:
            cuda.free_graph(graph)
    return gpu, e2e


def _time_onnxruntime(backend, manifest, batch, warmup, runs, pre):
    x = _batch_input(manifest, batch)
    e2e = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        if pre is not None:
            x = pre(batch)
        backend.run(x)
        t1 = time.perf_counter()
        if i >= warmup:
            e2e.append((t1 - t0) * 1000.0)
    return None, e2e


def _time_trtexec(backend, manifest, batch, runs, warmup_ms, cuda_graph):
    """trtexec's own timing loop: per-run computeMs (GPU) and latencyMs (copies + compute)."""
    import json

    from .common.fileio import scratch_dir
    from .profiles import batch_shape
    from .trtexec import _run, timing_command

    setup = backend.setup
    with scratch_dir(setup.engine) as tmp:
        times = os.path.join(tmp, "times.json")
        cmd = timing_command(setup.api, setup.trtexec, setup.engine, backend.options.profile.input_name,
                             batch_shape(manifest["onnx"]["input"]["shape"], batch), warmup_ms, runs, times,
                             data_transfers=True, cuda_graph=cuda_graph, dla_core=backend.sidecar.get("dla_core"))
        _run(cmd, what="trtexec timing")
        with open(times) as f:
            records = json.load(f)
    if not isinstance(records, list) or not records:
        raise EnginesError("trtexec --exportTimes gave no runs")
    if setup.api.export_times_warmups:
        records = [r for r in records if r.get("startComputeMs", 0) >= warmup_ms]
    gpu = [float(r["computeMs"]) for r in records]
    e2e = [float(r.get("latencyMs", r["computeMs"])) for r in records]
    return gpu, e2e


def sweep(backend, bundle_dir, manifest, batches, warmup, runs, preprocess=False, cuda_graph=False,
          telemetry_ms=200, warmup_ms=1000.0, progress=None):
    """Measure every batch size; returns ``(sections, telemetry info)`` (see the module docstring)."""
    from .telemetry import Sampler
    from .telemetry import summarize as summarize_telemetry

    if cuda_graph and backend.name == "onnxruntime":
        raise EnginesError("--cuda-graph applies to the tensorrt and trtexec backends")
    if preprocess and backend.name == "trtexec":
        raise EnginesError("--preprocess cannot be timed inside trtexec: use the tensorrt or onnxruntime backend")
    pre = _Preprocessor(bundle_dir, manifest) if preprocess else None
    sampler = Sampler(telemetry_ms).start()
    windows = []
    try:
        for batch in batches:
            if progress:
                progress("batch {}: {} warm-up + {} timed runs".format(batch, warmup, runs))
            t0 = time.time()
            if backend.name == "tensorrt":
                gpu, e2e = _time_tensorrt(backend, manifest, batch, warmup, runs, pre, cuda_graph)
            elif backend.name == "onnxruntime":
                gpu, e2e = _time_onnxruntime(backend, manifest, batch, warmup, runs, pre)
            else:
                gpu, e2e = _time_trtexec(backend, manifest, batch, runs, warmup_ms, cuda_graph)
            windows.append((batch, gpu, e2e, t0, time.time()))
    finally:
        sampler.stop()
    peak = max([s.get("gpu_mhz", 0) for _, s in sampler.samples] or [0]) or None
    sections = []
    for batch, gpu, e2e, t0, t1 in windows:
        gpu_stats, e2e_stats = summarize(gpu) if gpu else None, summarize(e2e)
        sections.append({
            "batch": batch,
            "gpu_ms": gpu_stats, "e2e_ms": e2e_stats,
            "throughput_gpu_img_s": throughput(batch, gpu_stats["mean"]) if gpu_stats else None,
            "throughput_e2e_img_s": throughput(batch, e2e_stats["mean"]),
            "gpu_latencies_ms": gpu or [], "e2e_latencies_ms": e2e,
            "telemetry": summarize_telemetry(sampler.samples, t0, t1, batch * (len(e2e) + warmup), peak),
        })
    throttled = [s["batch"] for s in sections if s["telemetry"] and s["telemetry"]["throttled"]]
    info = {"source": sampler.source, "interval_ms": telemetry_ms, "samples": len(sampler.samples),
            "throttled_batches": throttled}
    return sections, info


def run_bench_command(args, manifest, backend_name, options):
    """``engines bench``: the result document and the lines to print."""
    from .inference import make_backend
    from .power import power_session

    backend = make_backend(backend_name, args.bundle, manifest, options, build=False,
                           threads=getattr(args, "threads", None))
    try:
        limit = backend.max_batch or options.profile.max_shape[0]
        batches = sorted(set(args.batch)) if args.batch else default_batches(limit, options.profile.min_shape[0])
        too_big = [b for b in batches if backend.max_batch and b > backend.max_batch]
        if too_big:
            raise EnginesError("--batch {} exceeds the engine profile's maximum of {}".format(too_big[0],
                                                                                       backend.max_batch))
        import sys

        with power_session(args.max_perf, not args.no_prompt) as power:
            sections, telemetry = sweep(backend, args.bundle, manifest, batches, args.warmup, args.runs,
                                        args.preprocess, args.cuda_graph, args.telemetry_ms, args.warmup_ms,
                                        progress=lambda text: print(text, file=sys.stderr))
        info = backend.describe()
    finally:
        backend.close()
    env = envinfo.collect()
    result = {"schema": BENCH_SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "bundle": os.path.abspath(args.bundle), "target": manifest["target"],
              "model": dict(manifest["model"], num_classes=manifest["num_classes"]), "backend": info,
              "engine": info.get("engine"), "precision": info.get("precision"),
              "protocol": {"warmup_runs": args.warmup, "runs": args.runs, "batches": batches,
                           "cuda_graph": args.cuda_graph, "preprocess_in_e2e": args.preprocess,
                           "trtexec_warmup_ms": args.warmup_ms if backend_name == "trtexec" else None},
              "sections": sections, "telemetry": telemetry, "power": power, "env": env}
    lines = []
    for s in sections:
        g, e = s["gpu_ms"], s["e2e_ms"]
        gpu_text = "GPU median {:.3f} p95 {:.3f} p99 {:.3f} ms, ".format(g["median"], g["p95"], g["p99"]) if g else ""
        lines.append("batch {:>3}: {}end-to-end median {:.3f} p95 {:.3f} p99 {:.3f} ms ({} runs), {:.1f} img/s".format(
            s["batch"], gpu_text, e["median"], e["p95"], e["p99"], e["n"], s["throughput_e2e_img_s"] or 0.0))
        t = s["telemetry"]
        if t and t["energy_mj_per_image"] is not None:
            lines.append("           {:.1f} mJ/image at {:.0f} mW ({})".format(t["energy_mj_per_image"],
                                                                            t["power_mw_mean"], t["input_rail"]))
        if t and t["throttled"]:
            lines.append("           THROTTLED: " + "; ".join(t["throttle_reasons"]))
    mode = (env.get("jetson") or {}).get("power_mode")
    if env.get("jetson") is not None:
        lines.append("Jetson power mode: {}".format(mode["mode"] if mode else "unknown (nvpmodel not found)"))
    lines.append("telemetry: {} ({} samples)".format(telemetry["source"], telemetry["samples"]))
    return result, lines
