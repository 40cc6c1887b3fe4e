"""Bench stage of snp-edge: latency of ONNX Runtime, PyTorch and TensorRT models, measured interleaved
with the SNP paper's protocol (warm-up, then many timed runs), reported as JSON, Markdown and a plot.

Library use::

    from pathlib import Path

    from snp_edge.bench.candidates import from_spec
    from snp_edge.bench.run import BenchConfig, run_bench
    from snp_edge.bench.report import write_report

    doc = run_bench([from_spec("a.onnx"), from_spec("b.onnx")], BenchConfig(warmup=10, runs=30))
    write_report(doc, Path("runs/x"))
"""
