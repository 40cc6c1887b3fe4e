"""Outputs that carry no information, and numbers FP16 cannot hold: the checks every gate shares (export
parity, the bundle's golden data, device verification, prune's calibration pass). A model whose every logit
is 0 (a LayerNorm overflowed), whose logits are the same for every input, or whose probabilities are uniform
passes a tolerance comparison against itself; these checks refuse it. Python 3.6, numpy."""

FP16_MAX = 65504.0
REL_SPREAD = 1e-6  # logits differing by less than this fraction of their scale count as equal


def degenerate_problem(logits):
    """None, or what is wrong with (N, classes) ``logits``: non-finite, all logits of an input equal (uniform
    probabilities), or the same logits for every input (N >= 2)."""
    import numpy as np

    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or x.size == 0:
        return "expected (N, classes) logits, got shape {}".format(x.shape)
    if not np.isfinite(x).all():
        return "NaN or infinite logits"
    floor = REL_SPREAD * float(np.abs(x).max())
    if x.shape[1] > 1:
        flat = np.nonzero(x.max(axis=1) - x.min(axis=1) <= floor)[0]
        if len(flat):
            return "all {} logits of input {} are equal ({:.4g}): uniform probabilities, no information".format(
                x.shape[1], int(flat[0]), float(x[flat[0], 0]))
    if x.shape[0] > 1 and float((x.max(axis=0) - x.min(axis=0)).max()) <= floor:
        return "the same logits for all {} inputs: the output does not depend on the input".format(x.shape[0])
    return None


def fp16_problem(name, values):
    """None, or a message when a tensor's values lie outside FP16's range (|x| > 65504)."""
    import numpy as np

    x = np.asarray(values)
    if x.size == 0 or not np.issubdtype(x.dtype, np.floating):
        return None
    peak = float(np.abs(x.astype(np.float64)).max())
    if peak > FP16_MAX:
        return "{}: max |value| {:.4g} is outside FP16's range ({:g})".format(name, peak, FP16_MAX)
    return None
