"""Bench stage of snp-edge: latency of ONNX Runtime, PyTorch and TensorRT models, measured interleaved
with the SNP paper's protocol (warm-up, then many timed runs), reported as JSON, Markdown and a plot.

Library use::

    from pathlib import Path

    from bench.candidates import from_spec
    from bench.run import BenchConfig, run_bench
    from bench.report import write_report

    doc = run_bench([from_spec("a.onnx"), from_spec("b.onnx")], BenchConfig(warmup=10, runs=30))
    write_report(doc, Path("runs/x"))
"""
