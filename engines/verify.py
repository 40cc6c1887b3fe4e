"""Parity gate: engine logits on the bundle's golden inputs against the golden ONNX Runtime FP32 logits.

Gates (both must hold; the CLI exits non-zero otherwise):

* every engine logit is finite, and the max abs error <= ``atol_frac`` * logit scale, where the logit scale
  is the largest |golden logit| (at least 1). FP16 default 0.02: FP16 keeps 11 significant bits (unit
  roundoff 4.9e-4); through 12 transformer blocks with FP32-accumulated GEMMs, typical ViT logit errors are
  0.1-1% of the scale, while the failures this gate is for (LayerNorm overflow, a mis-parsed layer, wrong
  preprocessing layout) give errors of the order of the scale itself. FP32 (TF32 off) default 0.001.
* top-1 agreement >= ``min_top1`` (default 0.99: with 8 golden images, every one must agree). A flip on a
  near-tie is reported with the golden top-1/top-2 margin so it can be judged; ``--min-top1`` overrides.

Max relative error is reported, not gated: it is taken over logits with |golden| >= 1% of the scale
(relative error of near-zero logits is noise).
"""

from collections import namedtuple

from .errors import EnginesError

Tolerance = namedtuple("Tolerance", "atol_frac min_top1")
TOLERANCES = {"fp16": Tolerance(0.02, 0.99), "fp32": Tolerance(0.001, 0.99)}
REL_FLOOR_FRAC = 0.01


def tolerance_for(precision_label, atol_frac=None, min_top1=None):
    """The :class:`Tolerance` for an engine's precision label ("fp16-fp32norms" -> fp16), with overrides."""
    base = TOLERANCES["fp32" if precision_label == "fp32" else "fp16"]
    return Tolerance(base.atol_frac if atol_frac is None else atol_frac,
                     base.min_top1 if min_top1 is None else min_top1)


def compare_logits(outputs, golden, tolerance):
    """Compare (N, classes) ``outputs`` with reference ``golden`` logits (numpy arrays): the one logit comparison
    of the project (export parity, engine verify). Returns a report dict:
    ``n, max_abs_err, mean_abs_err, max_rel_err, logit_scale, atol, top1_agreement, min_top1, flips``
    (list of ``{index, golden_class, engine_class, golden_margin}``), ``finite``, ``passed``, ``failures``."""
    import numpy as np

    out = np.asarray(outputs, dtype=np.float64)
    ref = np.asarray(golden, dtype=np.float64)
    if out.shape != ref.shape or out.ndim != 2:
        raise EnginesError(f"engine outputs {out.shape} do not match golden outputs {ref.shape} (expected (N, classes))")
    finite = bool(np.isfinite(out).all())
    diff = np.abs(out - ref)
    scale = max(float(np.abs(ref).max()), 1.0)
    atol = tolerance.atol_frac * scale
    big = np.abs(ref) >= REL_FLOOR_FRAC * scale
    order = np.argsort(-ref, axis=1)
    golden_top1, engine_top1 = order[:, 0], np.argmax(out, axis=1)
    rows = np.arange(len(ref))
    margins = ref[rows, order[:, 0]] - ref[rows, order[:, 1]] if ref.shape[1] > 1 else np.full(len(ref), np.inf)
    agree = golden_top1 == engine_top1
    flips = [{"index": int(i), "golden_class": int(golden_top1[i]), "engine_class": int(engine_top1[i]),
              "golden_margin": float(margins[i])} for i in np.nonzero(~agree)[0]]
    report = {
        "n": int(len(ref)),
        "max_abs_err": float(diff.max()) if finite else float("inf"),
        "mean_abs_err": float(diff.mean()) if finite else float("inf"),
        "max_rel_err": float((diff[big] / np.abs(ref[big])).max()) if finite and big.any() else None,
        "logit_scale": scale,
        "atol": atol,
        "top1_agreement": float(agree.mean()),
        "min_top1": tolerance.min_top1,
        "flips": flips,
        "finite": finite,
    }
    failures = []
    if not finite:
        failures.append("engine outputs contain NaN or Inf (FP16 overflow? try --fp32-norms)")
    elif report["max_abs_err"] > atol:
        failures.append("max abs error {:.4g} > {:.4g} ({} x logit scale {:.4g})".format(
            report["max_abs_err"], atol, tolerance.atol_frac, scale))
    if report["top1_agreement"] < tolerance.min_top1:
        failures.append("top-1 agreement {:.4f} < {} (flipped: {})".format(
            report["top1_agreement"], tolerance.min_top1, ", ".join(
                "#{} {}->{} margin {:.3g}".format(f["index"], f["golden_class"], f["engine_class"],
                                                  f["golden_margin"]) for f in flips[:5])))
    report["failures"] = failures
    report["passed"] = not failures
    return report


def verify_engine(runner, golden_inputs, golden_outputs, output_name, max_batch, tolerance):
    """Run the golden inputs through an :class:`engines.runtime.EngineRunner` in chunks of ``max_batch`` and
    compare output ``output_name`` with the golden logits; returns the :func:`compare_logits` report."""
    from .runtime import run_batches

    outputs = run_batches(runner, golden_inputs, max_batch)
    if output_name not in outputs:
        raise EnginesError(f"the engine has no output {output_name!r} (it has {sorted(outputs)})")
    return compare_logits(outputs[output_name], golden_outputs, tolerance)
