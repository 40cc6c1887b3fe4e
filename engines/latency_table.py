"""Latency tables: measured latency of a ViT's parts as a function of their widths (one versioned JSON format,
written by ``snp-edge profile`` on the host and by ``python3 -m engines profile`` on a device).

A ViT's latency is predicted as the sum of its parts, each interpolated (multilinearly; linearly beyond the
grid's ends) on a grid of widths measured on one backend::

    latency = factor * (stem(E) + head(E) + sum over kept blocks of [attn(E, H, qk, v) + mlp(E, M)])

The parts, each measured alone as a small graph on ``batch`` images (tokens run token-major, ``B*N x E``,
as the project's ONNX export does); a block part is timed as a chain of ``depth`` copies with their own
weights, divided by ``depth`` (:func:`chain_length`), so its weights are not cache-resident as a lone
part's would be:

======  ==========================  ======================================================================
term    axes                        what it computes
======  ==========================  ======================================================================
stem    embed                       patch embedding (Conv k=p, s=p), class token, position embedding
attn    embed, heads, qk, v         LayerNorm, qkv Gemm (E -> H*(2 qk + v)), per head Q K^T, Softmax,
                                    A V, proj Gemm (H*v -> E), residual add
mlp     embed, mlp                  LayerNorm, fc1 Gemm (E -> M), GELU (Erf), fc2 Gemm (M -> E), residual add
head    embed                       final LayerNorm on the class token, classifier Gemm (E -> classes)
======  ==========================  ======================================================================

The calibration maps the sum of the parts onto whole models measured as they run::

    latency = factor * parts + offset_ms

fitted (least relative squared error, ``offset_ms >= 0``) on the whole models of :func:`calibration_probes`:
the unpruned model and uniformly narrower ones (8-aligned, one with half the heads). ``factor`` accounts for
what separately timed parts miss in proportion to the work (caches, the median's margin over the least
time), ``offset_ms`` for what does not shrink with the widths (per-operator overhead, reshapes, the
session's own cost): with the unpruned model alone (version 1) the prediction was exact for it and 4-13%
optimistic for pruned DeiT-S models on ONNX Runtime. The file::

    {"format": "snp-edge-latency-table", "version": 2, "created": "...", "tool": "...",
     "model": {"name", "tokens", "embed", "heads", "head_dim", "mlp", "depth", "img_size", "patch_size",
               "in_chans", "head_outputs", "prefix_tokens"},
     "backend": "ort" | "torch" | "trt", "precision": "fp32" | "fp16", "batch": 1, "threads": 1 | null,
     "device": "cpu" | "cuda", "protocol": {"warmup", "runs", "statistic": "median"},
     "environment": {...}, "grid": {"embed": [...], "heads": [...], "qk": [...], "v": [...], "mlp": [...]},
     "terms": {"stem": {"axes": ["embed"], "ms": [...]}, "attn": {"axes": [...], "ms": nested lists}, ...},
     "calibration": {"measured_ms", "sum_ms", "factor", "offset_ms",
                     "points": [{"label", "embed", "heads", "qk", "v", "mlp", "sum_ms", "measured_ms"}]},
     "partial": false}

``measured_ms`` / ``sum_ms`` are the unpruned model's. Version 1 tables (no ``offset_ms``, no ``points``:
factor only) are still read.

Python 3.6-clean (it runs on the device); numpy only.
"""

import itertools
import json
import time

from .common.errors import EnginesError

FORMAT = "snp-edge-latency-table"
VERSION = 2
READABLE = (1, 2)  # versions read_table accepts
TERMS = (("stem", ("embed",)), ("head", ("embed",)), ("attn", ("embed", "heads", "qk", "v")),
         ("mlp", ("embed", "mlp")))
MODEL_KEYS = ("name", "tokens", "embed", "heads", "head_dim", "mlp", "depth", "img_size", "patch_size", "in_chans",
              "head_outputs", "prefix_tokens")


def chain_length(term, model):
    """Copies of a part chained in one timed graph (each with its own weights; the time is divided by it):
    the model's depth for the block parts, whose weights would otherwise sit in cache as they never do in
    the whole model; 1 for the stem and the head."""
    return model["depth"] if term in ("attn", "mlp") else 1


def _spaced(lo, hi, points, multiple):
    """``points`` values from ``lo`` to ``hi`` (both included), rounded to ``multiple``, no repeats."""
    if points <= 1:
        return [hi]
    out = [hi]
    for i in range(points - 1):
        value = lo + (hi - lo) * i / float(points - 1)
        out.append(max(multiple, int(round(value / multiple)) * multiple))
    return sorted(set(min(v, hi) for v in out))


def default_grid(model, points=5, all_heads=True):
    """The grid measured by default for ``model`` (the ``model`` dict of a table): residual widths from a
    quarter to all of it, head counts 1, H/2 and H (``all_heads``; attention cost is close to linear in the
    heads) or only H, Q/K and V widths from an eighth, FFN widths from a sixteenth, ``points`` values each
    (twice that for the FFN), multiples of 8 (of 1 for head widths under 32)."""
    E, H, d, M = model["embed"], model["heads"], model["head_dim"], model["mlp"]
    return {
        "embed": _spaced(max(8, E // 4), E, points, 8),
        "heads": sorted(set([1, max(1, H // 2), H])) if all_heads else [H],
        "qk": _spaced(max(1, d // 8), d, points, 8 if d >= 32 else 1),
        "v": _spaced(max(1, d // 8), d, points, 8 if d >= 32 else 1),
        "mlp": _spaced(max(8, M // 16), M, 2 * points, 8 if M >= 64 else 1),
    }


def grid_points(grid):
    """Every (term, widths dict) to measure, in the order measured (cheap terms first)."""
    out = []
    for term, axes in TERMS:
        for values in itertools.product(*[grid[a] for a in axes]):
            out.append((term, dict(zip(axes, values))))  # noqa: B905 (Python 3.6)
    return out


def calibration_probes(model):
    """The whole models the calibration is fitted on: ``(label, widths)`` with ``widths`` a dict of embed,
    heads, qk, v, mlp (the same in every block). The unpruned model first, then two uniformly narrower
    ones rounded to multiples of 8 (of 1 under 32): about half of the MACs, and about a quarter with half
    the heads (the range the paper's presets and the latency targets land in)."""
    E, H, d, M = model["embed"], model["heads"], model["head_dim"], model["mlp"]

    def r(value, full):
        m = 8 if full >= 32 else 1
        return max(m, min(full, int(round(value / float(m))) * m))

    return [("unpruned", dict(embed=E, heads=H, qk=d, v=d, mlp=M)),
            ("half", dict(embed=r(0.75 * E, E), heads=H, qk=r(0.5 * d, d), v=r(0.75 * d, d), mlp=r(0.5 * M, M))),
            ("quarter", dict(embed=r(0.5 * E, E), heads=max(1, H // 2), qk=r(0.5 * d, d), v=r(d, d),
                             mlp=r(0.375 * M, M)))]


def fit_calibration(points):
    """``(factor, offset_ms)`` of ``measured = factor * sum + offset`` over ``points`` (dicts with ``sum_ms``
    and ``measured_ms``), least squares on the relative error, ``offset_ms >= 0``; one point gives the
    ratio and no offset."""
    import numpy as np

    s = np.array([p["sum_ms"] for p in points], dtype=float)
    m = np.array([p["measured_ms"] for p in points], dtype=float)
    if len(points) >= 2:
        (a, b), _, _, _ = np.linalg.lstsq(np.stack([s / m, 1.0 / m], 1), np.ones(len(m)), rcond=None)
        if b >= 0 and a > 0:
            return float(a), float(b)
    return float(np.sum(s / m) / np.sum((s / m) ** 2)), 0.0


FACTOR_RANGE = (0.2, 5.0)  # calibration.factor a table may carry (check_table)


def accepted_calibration(points, factor, offset_ms):
    """The ``calibration`` of a table from the fitted ``(factor, offset_ms)``: a factor outside
    :data:`FACTOR_RANGE` (a tiny model whose fixed costs the parts do not model) is clamped into it, with the
    offset refitted (0 to the unpruned model's time) and the fitted value kept as ``fitted_factor``, so that
    a table ``profile`` measured is always one :func:`check_table` accepts."""
    measured = points[0]["measured_ms"]
    calibration = {"measured_ms": measured, "sum_ms": points[0]["sum_ms"], "factor": factor, "offset_ms": offset_ms,
                   "points": points}
    lo, hi = FACTOR_RANGE
    if not lo <= factor <= hi:
        clamped = min(max(factor, lo), hi)
        rest = sorted(p["measured_ms"] - clamped * p["sum_ms"] for p in points)
        offset = min(max(rest[len(rest) // 2], 0.0), 0.999 * measured)
        calibration.update(factor=clamped, offset_ms=offset, fitted_factor=factor)
    return calibration


def measure_table(model, grid, measure, whole_model=None, time_budget=None, progress=None, passes=1):
    """Measure every grid point with ``measure(term, widths) -> ms`` (a median) and return the ``terms``
    and ``calibration`` parts of a table, and whether the time budget cut it short.

    ``whole_model(widths)`` -> ms of a whole model at uniform ``widths`` (embed, heads, qk, v, mlp in every
    block), called for each of :func:`calibration_probes` to fit the calibration (None skips it).
    ``time_budget`` (s): when it runs out, the remaining points stay NaN and the table is marked partial
    (:func:`read_table` refuses it). ``progress(done, total, term, widths, ms)`` is called after each point.
    ``passes`` > 1 measures the whole grid that many times, one pass after the other, and keeps each point's
    least time: a burst of load on a shared machine then spoils a point only if it hits it in every pass.
    """
    import numpy as np

    points = grid_points(grid)
    start = time.time()
    values = dict((term, np.full([len(grid[a]) for a in axes], np.nan)) for term, axes in TERMS)
    partial = False
    total = len(points) * passes
    for n, (term, widths) in enumerate(points * passes):
        if time_budget is not None and time.time() - start > time_budget:
            partial = n < len(points)  # a later pass cut short leaves every point measured
            break
        axes = dict(TERMS)[term]
        index = tuple(grid[a].index(widths[a]) for a in axes)
        ms = float(measure(term, widths))
        values[term][index] = ms if np.isnan(values[term][index]) else min(ms, values[term][index])
        if progress is not None:
            progress(n + 1, total, term, widths, ms)
    terms = dict((term, {"axes": list(axes), "ms": values[term].tolist()}) for term, axes in TERMS)
    calibration = None
    if whole_model is not None and not partial:
        table = {"grid": grid, "terms": terms, "model": model}
        fitted = []
        for label, widths in calibration_probes(model):
            block = dict((k, widths[k]) for k in ("heads", "qk", "v", "mlp"))
            point = dict(widths, label=label, sum_ms=predict_parts(table, widths["embed"], [block] * model["depth"]),
                         measured_ms=float(whole_model(widths)))
            fitted.append(point)
        calibration = accepted_calibration(fitted, *fit_calibration(fitted))
    return terms, calibration, partial


def make_table(model, grid, terms, calibration, backend, precision, batch, threads, device, protocol, environment,
               tool, partial=False):
    """A table document (see the module docstring), validated."""
    doc = {"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "tool": tool,
           "model": model, "backend": backend, "precision": precision, "batch": batch, "threads": threads,
           "device": device, "protocol": protocol, "environment": environment, "grid": grid, "terms": terms,
           "calibration": calibration, "partial": partial}
    check_table(doc)
    return doc


def check_table(doc, source="latency table"):
    """Raise :class:`EnginesError` naming the first thing wrong with a table document (field by field through
    :class:`engines.common.schema.Document`, the one checker: ``"heads": [true]`` is not a width)."""
    from .common.schema import Document

    d = Document(source, EnginesError)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise EnginesError(f"{source} is not a snp-edge latency table (format {FORMAT!r})")
    if doc.get("version") not in READABLE:
        raise EnginesError(f"{source} has version {doc.get('version')!r}; this snp-edge reads versions "
                           f"{', '.join(str(v) for v in READABLE)}")
    model = d.dict(doc, "model", "model")
    for key in MODEL_KEYS:
        d.get(model, key, "model." + key)
    grid = d.dict(doc, "grid", "grid")
    for axis in ("embed", "heads", "qk", "v", "mlp"):
        values = d.list(grid, axis, "grid." + axis, min_items=1)
        for i, value in enumerate(values):
            d.int_value(value, f"grid.{axis}[{i}]", minimum=1)
        if values != sorted(set(values)):
            d.fail("grid." + axis, "increasing positive integers", values)
    terms = d.dict(doc, "terms", "terms")
    import numpy as np

    for term, axes in TERMS:
        t = d.dict(terms, term, "terms." + term)
        if t.get("axes") != list(axes):
            d.fail(f"terms.{term}.axes", str(list(axes)), t.get("axes"))
        try:
            ms = np.asarray(d.list(t, "ms", f"terms.{term}.ms"), dtype=float)
        except (TypeError, ValueError):
            d.fail(f"terms.{term}.ms", "nested lists of numbers (ms)", t["ms"])
        if ms.shape != tuple(len(grid[a]) for a in axes):
            raise EnginesError(f"{source}: terms.{term}.ms has shape {ms.shape}, the grid needs "
                               f"{tuple(len(grid[a]) for a in axes)}")
        if not d.bool(doc, "partial", "partial", default=False) and not np.all(np.isfinite(ms)):
            raise EnginesError(f"{source}: terms.{term}.ms has a missing or NaN latency")
        if np.any(ms[np.isfinite(ms)] <= 0):  # every measured term costs time: 0 or less is a broken table
            raise EnginesError(f"{source}: terms.{term}.ms has a latency <= 0 ms at grid index "
                               f"{np.argwhere(np.isfinite(ms) & (ms <= 0))[0].tolist()}; every term must be > 0")
    cal = d.dict(doc, "calibration", "calibration", default=None)
    if cal is not None:
        d.number(cal, "factor", "calibration.factor", *FACTOR_RANGE)
        measured = d.number(cal, "measured_ms", "calibration.measured_ms", minimum=0, default=0.0)
        offset = d.number(cal, "offset_ms", "calibration.offset_ms", minimum=0, default=0.0)
        if offset >= measured + 1e-9:
            d.fail("calibration.offset_ms", "a number from 0 to the unpruned model's measured_ms", offset)


def read_table(path):
    """A table from a JSON file, checked (:func:`check_table`); a partial table is refused."""
    try:
        with open(str(path)) as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise EnginesError(f"cannot read latency table {path}: {exc}") from None
    check_table(doc, str(path))
    if doc.get("partial"):
        raise EnginesError(f"latency table {path} is partial (its --time-budget ran out); measure it again with "
                        "a larger budget or a coarser grid")
    return doc


def interpolate(grid_axes, values, point):
    """Multilinear interpolation of ``values`` (an array over the product of ``grid_axes``) at ``point``
    (one coordinate per axis); linear extrapolation beyond an axis's ends, never below 0."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    weights = []
    for axis, x in zip(grid_axes, point):  # noqa: B905 (Python 3.6)
        axis = list(axis)
        if len(axis) == 1:
            weights.append([(0, 1.0)])
            continue
        j = 0
        while j < len(axis) - 2 and x > axis[j + 1]:
            j += 1
        t = (x - axis[j]) / float(axis[j + 1] - axis[j])
        weights.append([(j, 1.0 - t), (j + 1, t)])
    total = 0.0
    for combo in itertools.product(*weights):
        w = 1.0
        for _, wi in combo:
            w *= wi
        total += w * values[tuple(i for i, _ in combo)]
    return max(0.0, float(total))


def term_ms(table, term, widths):
    """One term's latency (ms) at ``widths`` (a dict with the term's axes)."""
    axes = dict(TERMS)[term]
    return interpolate([table["grid"][a] for a in axes], table["terms"][term]["ms"], [widths[a] for a in axes])


def block_parts(table, embed, block):
    """One block's attention and FFN terms (ms, before the calibration factor); ``block`` a dict with heads,
    qk, v, mlp. A sublayer pruned to zero width (0 heads, query/key or value neurons: the attention; 0 FFN
    neurons: the FFN) is removed from the model and costs 0 ms, not an extrapolation of the grid."""
    total = 0.0
    if min(block["heads"], block["qk"], block["v"]) > 0:
        total += term_ms(table, "attn", {"embed": embed, "heads": block["heads"], "qk": block["qk"], "v": block["v"]})
    if block["mlp"] > 0:
        total += term_ms(table, "mlp", {"embed": embed, "mlp": block["mlp"]})
    return total


def predict_parts(table, embed, blocks):
    """Sum of the parts (ms, before the calibration factor): ``blocks`` are dicts with heads, qk, v, mlp."""
    total = term_ms(table, "stem", {"embed": embed}) + term_ms(table, "head", {"embed": embed})
    for b in blocks:
        total += block_parts(table, embed, b)
    return total


def factor(table):
    """The calibration's scale on the sum of the parts (1 without a calibration)."""
    return (table.get("calibration") or {}).get("factor", 1.0)


def offset(table):
    """The calibration's constant (ms; 0 for version 1 tables and without a calibration)."""
    return (table.get("calibration") or {}).get("offset_ms", 0.0)


def predict_ms(table, embed, blocks):
    """Predicted latency (ms) of a model of residual width ``embed`` and ``blocks`` (dicts: heads, qk, v, mlp)."""
    return factor(table) * predict_parts(table, embed, blocks) + offset(table)


def describe_calibration(table):
    """One line on a table's calibration: the fit and how far it is off each whole model it was fitted on."""
    cal = table.get("calibration")
    if not cal:
        return "no calibration (the time budget ran out before the whole models were measured)"
    line = f"calibration: {cal['factor']:.3f} x parts + {cal.get('offset_ms', 0.0):.3f} ms"
    errors = []
    for p in cal.get("points") or []:
        predicted = cal["factor"] * p["sum_ms"] + cal.get("offset_ms", 0.0)
        errors.append(f"{p['label']} {p['measured_ms']:.3f} ms ({100 * (predicted / p['measured_ms'] - 1):+.1f}%)")
    return line + ("; whole models measured: " + ", ".join(errors) if errors else
                   f"; whole model {cal['measured_ms']:.3f} ms")


def alignment(table):
    """The multiple every measured width of the grid shares (heads aside): 8 for DeiT-sized models. Between
    grid points a table interpolates, so it cannot see what an unaligned width costs; a latency-targeted
    allocation therefore steps by this multiple unless told otherwise."""
    from functools import reduce
    from math import gcd

    return reduce(gcd, [v for axis in ("embed", "qk", "v", "mlp") for v in table["grid"][axis]])
