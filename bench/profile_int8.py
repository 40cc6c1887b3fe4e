"""INT8 latency tables for the CPU targets (``snp-edge profile --backend ort --precision int8``): every part
and whole-model probe of :mod:`bench.profile` is quantised by ONNX Runtime's own Q/DQ placement (the
``ort`` quantizer of ``export/quantize.py``, the one ``--target raspberry-pi-5`` uses: QDQ on the weight GEMMs, per-channel 7-bit
weights, uint8 activations, minmax on 4 seeded noise inputs) before it is timed. Timing is what it measures,
so noise calibration is enough: the int8 kernels' speed does not depend on the scales."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np

CALIB_ROWS = 4


def _quantize(src: Path, dst: Path, calib: np.ndarray) -> None:
    """ONNX Runtime's placement (export/quantize.py ``ort``), minmax ranges from ``calib`` (the graph's input)."""
    from snp_edge.export.quantize import QUANTIZERS

    QUANTIZERS["ort"].run(src, dst, calib, "minmax")


def ort_int8_part_ms(term: str, widths: dict, model: dict, batch: int, threads: int | None, warmup: int,
                     runs: int) -> float:
    """Least ms of one part, INT8, on ONNX Runtime (CPU, IO binding, ``threads`` intra-op threads)."""
    import onnx

    from .profile import chain, part_onnx, session_min_ms

    with tempfile.TemporaryDirectory(prefix="snp-edge-profile-int8-") as tmp:
        fp32, int8 = Path(tmp) / "part.onnx", Path(tmp) / "part.int8.onnx"
        graph = part_onnx(term, widths, model, batch)
        onnx.save(graph, str(fp32))
        shape = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]  # static part shapes
        _quantize(fp32, int8, np.random.default_rng(0).standard_normal(shape).astype(np.float32))
        return session_min_ms(int8, threads, warmup, runs) / chain(term, model)


def whole_model_int8_ms(handle, batch: int, threads: int | None, warmup: int, runs: int) -> float:
    """Median ms of a whole model exported to ONNX and quantised (ort placement), on ONNX Runtime."""
    from snp_edge.export.onnx_export import export_onnx

    from .backends import OrtRunner

    with tempfile.TemporaryDirectory(prefix="snp-edge-profile-int8-") as tmp:
        fp32, int8 = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        export_onnx(handle, fp32, verify=False)
        size = (CALIB_ROWS, handle.in_chans, handle.img_size, handle.img_size)
        _quantize(fp32, int8, np.random.default_rng(0).standard_normal(size).astype(np.float32))
        runner = OrtRunner(int8, batch, threads or 1)
        runner.prepare()
        try:
            return statistics.median(runner.run_block(runs, warmup))
        finally:
            runner.close()
