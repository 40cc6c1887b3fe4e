"""``python3 -m engines profile PLAN --out table.json``: measure a latency table with TensorRT on this device.

PLAN is a latency plan written on the host (``snp-edge profile --model M --plan-only --out plan.json``: the
model's geometry and the grid, no measurements) or a folder holding ``latency-plan.json`` (a bundle it was
copied into). Every grid point of every part (see :mod:`.latency_table`) is built as a small TensorRT network
from the network-definition API (random weights, FP16 by default, the batch of the plan) and timed with
CUDA events (median of ``--runs`` after ``--warmup``); whole models (the unpruned one and two uniformly
narrower ones, :func:`.latency_table.calibration_probes`) are then built the same way for the calibration. The table comes back to the host as a file in the same format as the host's.

Python 3.6-clean: numpy, TensorRT and a CUDA binding only.
"""

import os
import sys
import tempfile

from . import latency_table
from .common.errors import EnginesError
from .common.stats import summarize

PLAN_NAME = "latency-plan.json"


def read_plan(path):
    """The plan document (a table with ``model`` and ``grid``) from a file or a folder holding PLAN_NAME."""
    import json

    if os.path.isdir(path):
        path = os.path.join(path, PLAN_NAME)
    if not os.path.isfile(path):
        raise EnginesError(f"latency plan not found: {path} (write one with `snp-edge profile --plan-only`)")
    try:
        with open(path) as f:
            plan = json.load(f)
    except ValueError as exc:
        raise EnginesError(f"cannot read latency plan {path}: {exc}") from None
    if not isinstance(plan, dict) or plan.get("format") != latency_table.FORMAT or "grid" not in plan:
        raise EnginesError(f"{path} is not a latency plan (format {latency_table.FORMAT!r} with a grid)")
    return plan


class _Net(object):
    """Helpers over a TensorRT network definition: constants, Gemm, LayerNorm, GELU (TensorRT 8.2 and 10)."""

    def __init__(self, trt, network, seed=0):
        import numpy as np

        self.trt, self.net, self.np = trt, network, np
        self.rng = np.random.RandomState(seed)
        self.keep = []  # numpy weights must outlive the build

    def const(self, shape, scale=0.02):
        w = (self.rng.standard_normal(shape) * scale).astype(self.np.float32)
        self.keep.append(w)
        return self.net.add_constant(tuple(shape), self.trt.Weights(w)).get_output(0)

    def linear(self, x, n_in, n_out):
        """x (T, n_in) -> (T, n_out): x W^T + b."""
        trt = self.trt
        w = self.const((n_out, n_in))
        y = self.net.add_matrix_multiply(x, trt.MatrixOperation.NONE, w, trt.MatrixOperation.TRANSPOSE).get_output(0)
        return self.add(y, self.const((1, n_out)))

    def add(self, a, b, op=None):
        return self.net.add_elementwise(a, b, op or self.trt.ElementWiseOperation.SUM).get_output(0)

    def layer_norm(self, x, width):
        """LayerNorm over the last axis of a 2-D tensor, from reduce and elementwise layers (8.2 has no
        normalization layer)."""
        trt, E = self.trt, self.trt.ElementWiseOperation
        mean = self.net.add_reduce(x, trt.ReduceOperation.AVG, 1 << 1, True).get_output(0)
        centred = self.add(x, mean, E.SUB)
        var = self.net.add_reduce(self.add(centred, centred, E.PROD), trt.ReduceOperation.AVG, 1 << 1, True)
        eps = self.const((1, 1), 0.0)
        std = self.net.add_unary(self.add(var.get_output(0), eps), trt.UnaryOperation.SQRT).get_output(0)
        y = self.add(centred, std, E.DIV)
        return self.add(self.add(y, self.const((1, width), 1.0), E.PROD), self.const((1, width)))

    def gelu(self, x, width):
        trt, E = self.trt, self.trt.ElementWiseOperation
        inv_sqrt2 = self.np.full((1, width), 0.7071067811865476, self.np.float32)
        half = self.np.full((1, width), 0.5, self.np.float32)
        one = self.np.ones((1, width), self.np.float32)
        self.keep += [inv_sqrt2, half, one]

        def c(a):
            return self.net.add_constant(a.shape, trt.Weights(a)).get_output(0)

        erf = self.net.add_unary(self.add(x, c(inv_sqrt2), E.PROD), trt.UnaryOperation.ERF).get_output(0)
        return self.add(self.add(x, c(half), E.PROD), self.add(erf, c(one)), E.PROD)

    def shuffle(self, x, dims, first=None, second=None):
        layer = self.net.add_shuffle(x)
        if first is not None:
            layer.first_transpose = self.trt.Permutation(first)
        if dims is not None:
            layer.reshape_dims = tuple(dims)
        if second is not None:
            layer.second_transpose = self.trt.Permutation(second)
        return layer.get_output(0)


def attention(n, x, batch, tokens, embed, heads, qk, v):
    """The ``attn`` part on x (B*N, E)."""
    trt = n.trt
    y = n.linear(n.layer_norm(x, embed), embed, heads * (2 * qk + v))
    parts = []
    for offset, width in ((0, heads * qk), (heads * qk, heads * qk), (2 * heads * qk, heads * v)):
        sl = n.net.add_slice(y, (0, offset), (batch * tokens, width), (1, 1)).get_output(0)
        d = width // heads
        parts.append(n.shuffle(sl, (batch, tokens, heads, d), second=(0, 2, 1, 3)))  # (B, H, N, d)
    q, k, val = parts
    s = n.net.add_matrix_multiply(q, trt.MatrixOperation.NONE, k, trt.MatrixOperation.TRANSPOSE).get_output(0)
    soft = n.net.add_softmax(s)
    soft.axes = 1 << 3
    o = n.net.add_matrix_multiply(soft.get_output(0), trt.MatrixOperation.NONE, val,
                                  trt.MatrixOperation.NONE).get_output(0)  # (B, H, N, v)
    o = n.shuffle(o, (batch * tokens, heads * v), first=(0, 2, 1, 3))
    return n.add(x, n.linear(o, heads * v, embed))


def mlp(n, x, embed, hidden):
    """The ``mlp`` part on x (B*N, E)."""
    h = n.gelu(n.linear(n.layer_norm(x, embed), embed, hidden), hidden)
    return n.add(x, n.linear(h, hidden, embed))


def stem(n, image, batch, model, embed):
    """Patch embedding, class token(s), position embedding: image (B, C, H, W) -> (B*N, E)."""
    trt, np = n.trt, n.np
    p = model["patch_size"]
    w = (n.rng.standard_normal((embed, model["in_chans"], p, p)) * 0.02).astype(np.float32)
    b = np.zeros(embed, np.float32)
    n.keep += [w, b]
    conv = n.net.add_convolution_nd(image, embed, (p, p), trt.Weights(w), trt.Weights(b))
    conv.stride_nd = (p, p)
    patches = model["tokens"] - model["prefix_tokens"]
    t = n.shuffle(conv.get_output(0), (batch, embed, patches), second=(0, 2, 1))  # (B, P, E)
    prefix = n.const((batch, model["prefix_tokens"], embed))
    cat = n.net.add_concatenation([prefix, t])
    cat.axis = 1
    x = n.add(cat.get_output(0), n.const((1, model["tokens"], embed)))
    return n.shuffle(x, (batch * model["tokens"], embed))


def head(n, x, batch, model, embed):
    """Final LayerNorm on the class token and the classifier: (B*N, E) -> (B, classes)."""
    rows = n.shuffle(x, (batch, model["tokens"] * embed))
    cls = n.net.add_slice(rows, (0, 0), (batch, embed), (1, 1)).get_output(0)
    return n.linear(n.layer_norm(cls, embed), embed, max(1, model["head_outputs"]))


def build_part(trt, api, term, widths, model, batch, precision, workspace_mib=1024):
    """Serialized engine of one part (``term`` at ``widths``), or of a whole model (``term`` "model": the
    same widths in every block, the unpruned model's where ``widths`` gives none)."""
    from . import trt_compat

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = trt_compat.create_network(trt, api, builder)
    n = _Net(trt, network)
    E, N = widths.get("embed", model["embed"]), model["tokens"]
    if term in ("stem", "model"):
        shape = (batch, model["in_chans"], model["img_size"], model["img_size"])
    else:
        shape = (batch, N, E)
    inp = network.add_input("input", trt.float32, (-1,) + shape[1:])
    if term in ("stem", "model"):
        x = stem(n, inp, batch, model, E)
    else:
        x = n.shuffle(inp, (batch * N, E))
    if term == "attn":
        for _ in range(latency_table.chain_length(term, model)):
            x = out = attention(n, x, batch, N, E, widths["heads"], widths["qk"], widths["v"])
    elif term == "mlp":
        for _ in range(latency_table.chain_length(term, model)):
            x = out = mlp(n, x, E, widths["mlp"])
    elif term == "head":
        out = head(n, x, batch, model, E)
    elif term == "model":
        H, qk, v = widths.get("heads", model["heads"]), widths.get("qk", model["head_dim"]), widths.get("v", model["head_dim"])
        for _ in range(model["depth"]):
            x = attention(n, x, batch, N, E, H, qk, v)
            x = mlp(n, x, E, widths.get("mlp", model["mlp"]))
        out = head(n, x, batch, model, E)
    else:
        out = x
    network.mark_output(out)
    config = builder.create_builder_config()
    trt_compat.set_workspace(trt, api, config, workspace_mib << 20)
    profile = builder.create_optimization_profile()
    profile.set_shape("input", shape, shape, shape)
    config.add_optimization_profile(profile)
    if precision == "fp16":
        if not api.fp16_flag:
            raise EnginesError("this TensorRT has no FP16 builder flag; profile with --precision fp32")
        config.set_flag(trt.BuilderFlag.FP16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EnginesError(f"TensorRT failed to build the {term} part at {widths} (see the TensorRT log above)")
    return bytes(memoryview(serialized))


def time_part(engine_bytes, batch, warmup, runs):
    """Median latency (ms) of one engine, CUDA events around each run (no host<->device copies)."""
    import numpy as np

    from .runtime import EngineRunner, time_runs

    with tempfile.TemporaryDirectory(prefix="snp-edge-profile-") as tmp:
        path = os.path.join(tmp, "part.engine")
        with open(path, "wb") as f:
            f.write(engine_bytes)
        runner = EngineRunner(path, check=False)
        try:
            runner.prepare(batch)
            runner.upload(np.random.RandomState(0).standard_normal(runner.input_shape(batch)))
            return summarize(time_runs(runner, warmup, runs))["median"]
        finally:
            runner.close()


def profile_trt(plan, precision="fp16", warmup=50, runs=200, time_budget=None, progress=None):
    """Measure ``plan``'s grid with TensorRT; returns the table document."""
    from . import envinfo, trt_compat

    trt, api = trt_compat.installed_api()
    model, grid, batch = plan["model"], plan["grid"], int(plan.get("batch") or 1)

    def measure(term, widths):
        engine = build_part(trt, api, term, widths, model, batch, precision)
        return time_part(engine, batch, warmup, runs) / (latency_table.chain_length(term, model) if term != "model"
                                                         else 1)

    def whole(widths):
        return measure("model", widths)

    terms, calibration, partial = latency_table.measure_table(model, grid, measure, whole, time_budget, progress)
    return latency_table.make_table(
        model, grid, terms, calibration, "trt", precision, batch, None, "cuda",
        {"warmup": warmup, "runs": runs, "statistic": "median", "timing": "CUDA events per run, no copies"},
        envinfo.collect(), "python3 -m engines profile", partial)


def add_parser(sub, formatter):
    """The ``profile`` subcommand of ``python3 -m engines``."""
    from .common.argtypes import RUNS, WARMUP, float_range

    p = sub.add_parser("profile", help="measure a latency table with TensorRT (plan from snp-edge profile "
                                       "--plan-only)", description=__doc__.splitlines()[0], formatter_class=formatter)
    p.add_argument("plan", metavar="PLAN", help="latency plan JSON, or a folder holding " + PLAN_NAME)
    p.add_argument("--out", required=True, metavar="PATH", help="latency table to write (JSON)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="engine precision")
    p.add_argument("--warmup", type=WARMUP, default=50, help="untimed runs per part")
    p.add_argument("--runs", type=RUNS, default=200, help="timed runs per part (the median is kept)")
    p.add_argument("--time-budget", type=float_range(0.0, 7 * 86400.0, lo_open=True), metavar="S",
                   help="stop after S seconds (the table is then marked partial)")
    p.set_defaults(func=cmd_profile)


def cmd_profile(args):
    from .common.fileio import write_json_atomic

    if os.path.exists(args.out) and not args.force:
        raise EnginesError(f"{args.out} exists; pass --force to replace it")
    plan = read_plan(args.plan)

    def progress(done, total, term, widths, ms):
        print(f"[{done}/{total}] {term} {widths}: {ms:.3f} ms", file=sys.stderr, flush=True)

    table = profile_trt(plan, args.precision, args.warmup, args.runs, args.time_budget, progress)
    write_json_atomic(args.out, table)
    print(f"wrote {args.out} ({'partial' if table['partial'] else 'complete'}); "
          f"{latency_table.describe_calibration(table)}")
    return 0
