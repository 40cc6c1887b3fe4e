"""Latency tables on the host: every part of :mod:`snp_edge.engines.latency_table` timed alone with ONNX Runtime
(the part built as a small ONNX graph shaped as the project's export: token-major Gemms, LayerNormalization,
Erf GELU, explicit MatMul/Softmax/MatMul attention) or with PyTorch (the same operations, eager).

Each grid point: a fresh session, ``warmup`` untimed runs, then ``runs`` timed ones; the least is kept,
over ``passes`` passes of the whole grid (whole models' medians set the calibration). A
block part is timed as a chain of ``depth`` copies with their own weights (divided by ``depth``): the model's
weights do not stay in cache from one run to the next, and a lone part's would.
Whole models (the unpruned one and two uniformly narrower ones, random weights, exported by
:func:`snp_edge.export.export_onnx`, or the timm model for torch) give the calibration
(:func:`snp_edge.engines.latency_table.fit_calibration`).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from snp_edge.engines import latency_table as lt

from snp_edge.latency import geometry
from snp_edge.models import ModelHandle

from .env import capture_env

OPSET = 17


def chain(term: str, model: dict) -> int:
    """How many copies of a part one timed graph chains (:func:`snp_edge.engines.latency_table.chain_length`)."""
    return lt.chain_length(term, model)


def part_onnx(term: str, widths: dict, model: dict, batch: int):
    """One part as an ONNX model (random weights): input ``input``, output ``output``; a block part is
    chained :func:`chain` times, each copy with its own weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    counter = iter(range(1_000_000))

    def name(prefix: str) -> str:
        return f"{prefix}_{next(counter)}"

    def const(array: np.ndarray) -> str:
        n = name("w")
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32) if array.dtype.kind == "f"
                                             else array, n))
        return n

    def op(kind: str, inputs: list[str], **attrs) -> str:
        out = name(kind.lower())
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def gemm(x: str, n_in: int, n_out: int) -> str:
        return op("Gemm", [x, const(rng.standard_normal((n_out, n_in)) * 0.02), const(np.zeros(n_out))], transB=1)

    def layer_norm(x: str, width: int) -> str:
        return op("LayerNormalization", [x, const(np.ones(width)), const(np.zeros(width))], axis=-1, epsilon=1e-6)

    def shape(*dims: int) -> str:
        return const(np.array(dims, dtype=np.int64))

    N, E = model["tokens"], widths.get("embed", model["embed"])
    T = batch * N
    if term == "stem":
        p, P = model["patch_size"], model["tokens"] - model["prefix_tokens"]
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                            [batch, model["in_chans"], model["img_size"], model["img_size"]])
        conv = op("Conv", ["input", const(rng.standard_normal((E, model["in_chans"], p, p)) * 0.02),
                           const(np.zeros(E))], kernel_shape=[p, p], strides=[p, p])
        t = op("Transpose", [op("Reshape", [conv, shape(batch, E, P)])], perm=[0, 2, 1])
        cat = op("Concat", [const(np.zeros((batch, model["prefix_tokens"], E))), t], axis=1)
        x = op("Add", [cat, const(rng.standard_normal((1, N, E)) * 0.02)])
        op("Reshape", [x, shape(T, E)])
    else:
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [T, E])
        x = "input"
        if term == "attn":
            H, qk, v = widths["heads"], widths["qk"], widths["v"]
            for _ in range(chain(term, model)):
                y = gemm(layer_norm(x, E), E, H * (2 * qk + v))
                q, k, val = (op("Transpose", [op("Reshape", [op("Slice", [y, shape(a), shape(b), shape(1)]),
                                                             shape(batch, N, H, d)])], perm=perm)
                             for a, b, d, perm in ((0, H * qk, qk, [0, 2, 1, 3]),
                                                   (H * qk, 2 * H * qk, qk, [0, 2, 3, 1]),
                                                   (2 * H * qk, H * (2 * qk + v), v, [0, 2, 1, 3])))
                a = op("Softmax", [op("MatMul", [q, k])], axis=-1)
                o = op("Reshape", [op("Transpose", [op("MatMul", [a, val])], perm=[0, 2, 1, 3]), shape(T, H * v)])
                x = op("Add", [x, gemm(o, H * v, E)])
        elif term == "mlp":
            M = widths["mlp"]
            for _ in range(chain(term, model)):
                h = gemm(layer_norm(x, E), E, M)
                g = op("Mul", [op("Mul", [h, op("Add", [op("Erf", [op("Div", [h, const(np.array(2 ** 0.5))])]),
                                                         const(np.array(1.0))])]), const(np.array(0.5))])
                x = op("Add", [x, gemm(g, M, E)])
        elif term == "head":
            cls = op("Reshape", [op("Slice", [op("Reshape", [x, shape(batch, N, E)]), shape(0), shape(1), shape(1)],
                                    ), shape(batch, E)])
            gemm(layer_norm(cls, E), E, max(1, model["head_outputs"]))
        else:
            raise ValueError(f"unknown part {term!r}")
    nodes[-1].output[0] = "output"
    dims = [batch, max(1, model["head_outputs"])] if term == "head" else [T, E]
    graph = helper.make_graph(nodes, f"snp-edge-{term}", [inp],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, dims)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _min_ms(run: Callable[[], object], warmup: int, runs: int) -> float:
    """The least of ``runs`` timed runs (ms) after ``warmup``: on a shared machine the minimum is what a
    burst of load cannot inflate; the calibration factor brings the sum of parts to the whole model's median."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times)


def ort_part_ms(term: str, widths: dict, model: dict, batch: int, threads: int | None, warmup: int,
                runs: int) -> float:
    """Least ms of one part on ONNX Runtime (CPU, IO binding, ``threads`` intra-op threads)."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="snp-edge-profile-") as tmp:
        path = Path(tmp) / "part.onnx"
        onnx.save(part_onnx(term, widths, model, batch), str(path))
        return session_min_ms(path, threads, warmup, runs) / chain(term, model)


def session_min_ms(path: Path, threads: int | None, warmup: int, runs: int) -> float:
    """Least ms of an ONNX file's session on seeded normal inputs (CPU, IO binding, ``threads`` threads)."""
    import onnxruntime as ort
    from snp_edge.engines.common.ort import ort_session

    session = ort_session(path, threads)
    inp = session.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal(inp.shape).astype(np.float32)
    binding = session.io_binding()
    binding.bind_ortvalue_input(inp.name, ort.OrtValue.ortvalue_from_numpy(x, "cpu", 0))
    binding.bind_output("output", "cpu")
    return _min_ms(lambda: session.run_with_iobinding(binding), warmup, runs)


def torch_part_ms(term: str, widths: dict, model: dict, batch: int, threads: int | None, warmup: int,
                  runs: int) -> float:
    """Least ms of one part in PyTorch eager (CPU, no grad), the same operations as :func:`part_onnx`."""
    import torch
    import torch.nn.functional as F

    if threads:
        torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)

    def w(*shape):
        return torch.randn(*shape, generator=g) * 0.02

    N, E = model["tokens"], widths.get("embed", model["embed"])
    T = batch * N
    if term == "stem":
        p, P = model["patch_size"], model["tokens"] - model["prefix_tokens"]
        x = torch.randn(batch, model["in_chans"], model["img_size"], model["img_size"], generator=g)
        wc, pre, pos = w(E, model["in_chans"], p, p), w(batch, model["prefix_tokens"], E), w(1, N, E)

        def fn():
            t = F.conv2d(x, wc, stride=p).reshape(batch, E, P).transpose(1, 2)
            return (torch.cat([pre, t], 1) + pos).reshape(T, E)
    elif term == "attn":
        H, qk, v = widths["heads"], widths["qk"], widths["v"]
        x = torch.randn(T, E, generator=g)
        ws = [(w(H * (2 * qk + v), E), w(E, H * v)) for _ in range(chain(term, model))]

        def fn():
            h = x
            for wqkv, wo in ws:
                y = F.linear(F.layer_norm(h, (E,)), wqkv)
                q, k, val = y.split([H * qk, H * qk, H * v], 1)
                q = q.reshape(batch, N, H, qk).transpose(1, 2)
                k = k.reshape(batch, N, H, qk).permute(0, 2, 3, 1)
                val = val.reshape(batch, N, H, v).transpose(1, 2)
                o = (q @ k).softmax(-1) @ val
                h = h + F.linear(o.transpose(1, 2).reshape(T, H * v), wo)
            return h
    elif term == "mlp":
        M = widths["mlp"]
        x = torch.randn(T, E, generator=g)
        ws = [(w(M, E), w(E, M)) for _ in range(chain(term, model))]

        def fn():
            h = x
            for w1, w2 in ws:
                h = h + F.linear(F.gelu(F.linear(F.layer_norm(h, (E,)), w1)), w2)
            return h
    else:
        x, wh = torch.randn(T, E, generator=g), w(max(1, model["head_outputs"]), E)

        def fn():
            return F.linear(F.layer_norm(x.reshape(batch, N, E)[:, 0], (E,)), wh)
    with torch.no_grad():
        return _min_ms(fn, warmup, runs) / chain(term, model)


PART_TIMERS = {"ort": ort_part_ms, "torch": torch_part_ms}


def at_widths(handle: ModelHandle, widths: dict) -> ModelHandle:
    """``handle``'s unpruned model at uniform ``widths`` (embed, heads, qk, v, mlp in every block), random
    weights (N(0, 0.02): finite, no denormals), for timing only; the unpruned model itself when nothing shrinks."""
    import torch

    from snp_edge.arch import arch_of, build_skeleton
    from snp_edge.targets import arch_from_config

    base = arch_of(handle.model)
    arch = arch_from_config(widths, base, "calibration probe")
    if (arch.embed, arch.blocks) == (base.embed, base.blocks):
        return handle
    model = build_skeleton(handle.base_model, handle.model_args, arch, "calibration probe")
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.02)
    return ModelHandle(model, handle.base_model, handle.model_args, "random", arch=arch.to_dict(),
                       name=f"{handle.base_model} (calibration probe)")


def whole_model_ms(handle: ModelHandle, backend: str, batch: int, threads: int | None, warmup: int, runs: int) -> float:
    """Median ms of a whole model (exported to ONNX for ort)."""
    from .backends import OrtRunner, TorchRunner

    with tempfile.TemporaryDirectory(prefix="snp-edge-profile-") as tmp:
        runner = OrtRunner(Path(tmp) / "model.onnx", batch, threads or 1, export_from=handle) if backend == "ort" \
            else TorchRunner(handle, batch, threads or 1, "cpu", False)
        runner.prepare()
        try:
            return statistics.median(runner.run_block(runs, warmup))
        finally:
            runner.close()


def plan(handle: ModelHandle, points: int = 5, all_heads: bool = True, batch: int = 1) -> dict:
    """A latency plan (model geometry + grid, no measurements) for ``handle``'s unpruned model."""
    model = geometry(handle.model, handle.base_model)
    return {"format": lt.FORMAT, "version": lt.VERSION, "model": model, "batch": batch,
            "grid": lt.default_grid(model, points, all_heads)}


def profile_host(handle: ModelHandle, backend: str = "ort", threads: int | None = 1, batch: int = 1,
                 points: int = 5, all_heads: bool = True, warmup: int = 5, runs: int = 20,
                 time_budget: float | None = None, progress=None, passes: int = 2, precision: str = "fp32") -> dict:
    """Measure a latency table of ``handle``'s (unpruned) model on ``backend`` (ort | torch), in ``precision``
    (fp32, or int8 on ort: :mod:`bench.profile_int8`)."""
    from snp_edge.errors import SnpEdgeError

    p = plan(handle, points, all_heads, batch)
    if precision not in ("fp32", "int8") or (precision == "int8" and backend != "ort"):
        raise SnpEdgeError(f"--precision {precision} with --backend {backend}: host tables are fp32, or int8 "
                           "with --backend ort (ONNX Runtime's int8 kernels); FP16 tables come from the device")
    timer = PART_TIMERS[backend]
    if precision == "int8":
        from .profile_int8 import ort_int8_part_ms, whole_model_int8_ms

        timer = ort_int8_part_ms

    def measure(term, widths):
        return timer(term, widths, p["model"], batch, threads, warmup, runs)

    def whole(widths):
        if precision == "int8":
            return whole_model_int8_ms(at_widths(handle, widths), batch, threads, max(warmup, 10), max(runs, 30))
        return whole_model_ms(at_widths(handle, widths), backend, batch, threads, max(warmup, 10), max(runs, 30))

    terms, calibration, partial = lt.measure_table(p["model"], p["grid"], measure, whole, time_budget, progress,
                                                   passes)
    return lt.make_table(p["model"], p["grid"], terms, calibration, backend, precision, batch, threads, "cpu",
                         {"warmup": warmup, "runs": runs, "passes": passes,
                          "statistic": "parts: least of the runs and passes; whole model: median"},
                         capture_env(), "snp-edge profile", partial)
