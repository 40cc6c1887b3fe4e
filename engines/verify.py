"""The device gates: a backend's results on the bundle's golden data, end to end.

Three checks (:func:`verify_bundle_outputs`), all of which must pass (the CLI exits 1 otherwise):

* preprocessing: every reference photograph (``golden.images``), preprocessed here by
  :mod:`engines.preprocess`, equals its golden input row within one uint8 step (see
  :func:`engines.preprocess.compare_preprocessing`);
* logits (:func:`compare_logits`), on the golden inputs against the golden ONNX Runtime FP32 logits:

* every engine logit is finite, and the max abs error <= ``atol_frac`` * logit scale, where the logit scale
  is the largest |golden logit| (at least 1). FP16 default 0.02: FP16 keeps 11 significant bits (unit
  roundoff 4.9e-4); through 12 transformer blocks with FP32-accumulated GEMMs, typical ViT logit errors are
  0.1-1% of the scale, while the failures this gate is for (LayerNorm overflow, a mis-parsed layer, wrong
  preprocessing layout) give errors of the order of the scale itself. FP32 (TF32 off) default 0.001.
* top-1 agreement >= ``min_top1`` (default 0.99: with 8 golden images, every one must agree). A flip on a
  near-tie is reported with the golden top-1/top-2 margin so it can be judged; ``--min-top1`` overrides.
  INT8 (``Tolerance.near_ties``): a flip on a row whose margin is at most 2 x atol (both logits may move by
  atol) is reported as ``near_tie`` and not counted; the same for top-k with 2 x ``prob_atol``.

  Max relative error is reported, not gated: it is taken over logits with |golden| >= 1% of the scale
  (relative error of near-zero logits is noise);
* top-k (:func:`compare_top_k`), against ``golden.top_k`` (the host's PyTorch softmax): the same top-1 class
  for every row, and every expected top-k probability within ``prob_atol`` (FP32 1e-4, FP16 0.01). Rows
  whose top-k order differs (near-ties) are reported, not gated.

NaN or Inf anywhere fails: in a backend's outputs (a failed gate, exit 1) or in the bundle's golden data (a
broken bundle, refused as bad input).
"""

from collections import namedtuple

from .common.degenerate import degenerate_problem
from .common.errors import EnginesError
from .quantization import INT8_TOLERANCE, is_int8

Tolerance = namedtuple("Tolerance", "atol_frac min_top1 prob_atol near_ties")
# prob_atol: only the top-k gate reads it; near_ties: a top-1 flip on a golden row whose top-1/top-2 margin the
# tolerance itself allows to close (logit margin <= 2 x atol, probability margin <= 2 x prob_atol) is
# reported ("near_tie") but not counted against agreement (INT8: every logit may move by atol)
Tolerance.__new__.__defaults__ = (None, False)
TOLERANCES = {"fp16": Tolerance(0.02, 0.99, 0.01), "fp32": Tolerance(0.001, 0.99, 1e-4),
              "int8": Tolerance(*INT8_TOLERANCE, near_ties=True)}  # int8: against the quantised model's goldens
REL_FLOOR_FRAC = 0.01


def tolerance_for(precision_label, atol_frac=None, min_top1=None, prob_atol=None):
    """The :class:`Tolerance` for an engine's precision label ("fp16-fp32norms" -> fp16), with overrides."""
    base = TOLERANCES[precision_label if precision_label in ("fp32", "int8") else "fp16"]
    return Tolerance(base.atol_frac if atol_frac is None else atol_frac,
                     base.min_top1 if min_top1 is None else min_top1,
                     base.prob_atol if prob_atol is None else prob_atol, base.near_ties)


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
    if not np.isfinite(ref).all():
        raise EnginesError("the golden outputs contain NaN or Inf: not a usable reference (rebuild the bundle)")
    problem = degenerate_problem(ref)
    if problem is not None:
        raise EnginesError("the reference logits are degenerate: {}; not a usable reference".format(problem))
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
    tie = margins <= 2 * atol if tolerance.near_ties else np.zeros(len(ref), dtype=bool)
    flips = [{"index": int(i), "golden_class": int(golden_top1[i]), "engine_class": int(engine_top1[i]),
              "golden_margin": float(margins[i]), "near_tie": bool(tie[i])} for i in np.nonzero(~agree)[0]]
    agree = agree | tie
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
    elif degenerate_problem(out) is not None:
        failures.append("engine outputs are degenerate: " + degenerate_problem(out))
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


def compare_top_k(logits, expected, tolerance):
    """Compare the softmax of (N, classes) ``logits`` with ``expected`` (the manifest's ``golden.top_k``:
    ``k``, ``class_ids``, ``probs`` for its first rows). Returns ``{n, k, max_prob_err, prob_atol,
    top1_agreement, same_top_k, reordered, finite, failures, passed}``."""
    import numpy as np

    x = np.asarray(logits, dtype=np.float64)
    rows = len(expected["class_ids"])
    if x.ndim != 2 or x.shape[0] < rows:
        raise EnginesError(f"outputs {x.shape} have fewer rows than golden.top_k ({rows})")
    x = x[:rows]
    finite = bool(np.isfinite(x).all())
    report = {"n": rows, "k": expected["k"], "prob_atol": tolerance.prob_atol, "finite": finite}
    if not finite:
        report.update(max_prob_err=float("inf"), top1_agreement=0.0, same_top_k=0.0, reordered=[],
                      failures=["outputs contain NaN or Inf"], passed=False)
        return report
    e = np.exp(x - x.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    ids = np.asarray(expected["class_ids"], dtype=np.int64)
    want = np.asarray(expected["probs"], dtype=np.float64)
    got = np.take_along_axis(probs, ids, axis=1)
    ours = np.argsort(-probs, axis=1, kind="mergesort")[:, :ids.shape[1]]
    err = float(np.abs(got - want).max())
    top1 = ours[:, 0] == ids[:, 0]
    if tolerance.near_ties and want.shape[1] > 1:  # a near-tie the tolerance allows to flip
        top1 |= want[:, 0] - want[:, 1] <= 2 * tolerance.prob_atol
    same = (ours == ids).all(axis=1)
    failures = []
    if err > tolerance.prob_atol:
        failures.append(f"top-{expected['k']} probabilities differ from the reference by up to {err:.3g} "
                        f"(limit {tolerance.prob_atol:g})")
    if not top1.all():
        failures.append("top-1 class differs from the reference for rows {}".format(
            ", ".join(str(int(i)) for i in np.nonzero(~top1)[0][:8])))
    report.update(max_prob_err=err, top1_agreement=float(top1.mean()), same_top_k=float(same.mean()),
                  reordered=[int(i) for i in np.nonzero(~same)[0]], failures=failures, passed=not failures)
    return report


def load_golden(bundle_dir, manifest):
    """The golden (inputs, outputs) arrays, checked against the manifest: shapes, float32, all finite."""
    import os

    import numpy as np

    arrays = []
    for key in ("inputs", "outputs"):
        rel = manifest["golden"][key]
        try:
            arr = np.load(os.path.join(bundle_dir, rel), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise EnginesError(f"cannot read golden {key} {rel}: {exc}") from None
        if arr.dtype != np.float32 or not np.isfinite(arr).all():
            raise EnginesError(f"golden {key} {rel}: expected finite float32 values, got {arr.dtype}"
                               f"{'' if np.isfinite(arr).all() else ' with NaN or Inf'}: rebuild the bundle")
        arrays.append(arr)
    inputs, outputs = arrays
    want = manifest["onnx"]["input"]["shape"][1:]
    if inputs.ndim != 4 or list(inputs.shape[1:]) != want or outputs.shape != (len(inputs), manifest["num_classes"]):
        raise EnginesError(f"golden arrays {inputs.shape} and {outputs.shape} do not match the manifest's input "
                           f"{want} and num_classes {manifest['num_classes']}")
    problem = degenerate_problem(outputs)
    if problem is not None:
        raise EnginesError(f"golden outputs {manifest['golden']['outputs']}: {problem}; not a usable reference: "
                           "rebuild the bundle from a working model")
    golden = manifest["golden"]
    if len(golden.get("images", [])) > len(inputs) or len(golden.get("top_k", {}).get("class_ids", [])) > len(inputs):
        raise EnginesError("manifest.json golden.images/top_k have more rows than golden inputs")
    return inputs, outputs


def check_reference_preprocessing(bundle_dir, manifest, inputs):
    """Preprocess the bundle's reference photographs here and compare them with their golden input rows."""
    import os

    from .preprocess import compare_preprocessing, load_image, preprocess, spec_from_manifest

    spec = spec_from_manifest(manifest)
    images = manifest["golden"]["images"]
    mine = preprocess([load_image(os.path.join(bundle_dir, rel)) for rel in images], spec)
    return compare_preprocessing(mine, inputs[:len(images)], spec, images)


def verify_bundle_outputs(bundle_dir, manifest, backend, tolerance, check_preprocessing=True):
    """The three gates (module docstring) with ``backend`` (:mod:`engines.inference`); returns
    ``{passed, failures, preprocessing, logits, top_k}`` (a check the bundle cannot make is None)."""
    inputs, golden = load_golden(bundle_dir, manifest)
    pre = None
    if check_preprocessing and manifest["golden"].get("images"):
        pre = check_reference_preprocessing(bundle_dir, manifest, inputs)
    logits = backend.run(inputs)
    report = compare_logits(logits, golden, tolerance)
    top_k = compare_top_k(logits, manifest["golden"]["top_k"], tolerance) if "top_k" in manifest["golden"] else None
    failures = []
    for name, part in (("preprocessing", pre), ("logits", report), ("top-k", top_k)):
        if part is not None:
            failures += [f"{name}: {f}" for f in part["failures"]]
    return {"passed": not failures, "failures": failures, "preprocessing": pre, "logits": report, "top_k": top_k,
            "fp32_distance": fp32_distance(bundle_dir, manifest, logits)}


def verify_engine(runner, golden_inputs, golden_outputs, output_name, max_batch, tolerance):
    """Run the golden inputs through an :class:`engines.runtime.EngineRunner` in chunks of ``max_batch`` and
    compare output ``output_name`` with the golden logits; returns the :func:`compare_logits` report."""
    from .runtime import run_batches

    outputs = run_batches(runner, golden_inputs, max_batch)
    if output_name not in outputs:
        raise EnginesError(f"the engine has no output {output_name!r} (it has {sorted(outputs)})")
    return compare_logits(outputs[output_name], golden_outputs, tolerance)


def fp32_distance(bundle_dir, manifest, logits):
    """For an INT8 bundle, the engine's ``logits`` against the FP32 model's (informational, not gated):
    ``{max_abs_err, mean_abs_err, logit_scale, top1_agreement}``; None for a float bundle."""
    if not is_int8(manifest):
        return None
    import os

    import numpy as np

    rel = manifest["quantization"]["fp32_outputs"]
    try:
        fp32 = np.load(os.path.join(bundle_dir, rel), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise EnginesError(f"cannot read the FP32 golden outputs {rel}: {exc}") from None
    report = compare_logits(logits, fp32, Tolerance(1.0, 0.0))
    return {k: report[k] for k in ("max_abs_err", "mean_abs_err", "logit_scale", "top1_agreement")}
