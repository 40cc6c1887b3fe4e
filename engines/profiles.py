"""Optimization profiles: the target's batch range and workspace limit (from :mod:`.targets`), overridable
from the command line.

A :class:`Profile` holds full NCHW shapes (batch from the target, C/H/W from the manifest's input shape) and
the builder workspace in bytes.
"""

from collections import namedtuple

from .common.errors import EnginesError
from .common.schema import is_int
from .common.targets import resolve_target

MIB = 1 << 20
PROFILE_FIELDS = ("min_batch", "opt_batch", "max_batch", "workspace_mib")

Profile = namedtuple("Profile", "input_name min_shape opt_shape max_shape workspace_bytes")
Profile.__doc__ = "Shapes as tuples of ints (NCHW), workspace in bytes."


def batch_shape(input_shape, batch):
    """``input_shape`` (manifest list, batch -1 or fixed) with the batch dimension set to ``batch``."""
    if input_shape[0] not in (-1, batch):
        raise EnginesError(f"the ONNX input has a fixed batch of {input_shape[0]}; batch {batch} is impossible (export with a "
                           "dynamic batch)")
    return (batch,) + tuple(input_shape[1:])


def _positive_int(name, value):
    if not is_int(value) or value < 1:  # engines/common/schema.py: a bool is not an integer
        raise EnginesError("--{} must be a positive integer, got {!r}".format(name.replace("_", "-"), value))
    return value


def resolve_profile(manifest, target=None, min_batch=None, opt_batch=None, max_batch=None,
                    workspace_mib=None, static=False):
    """The :class:`Profile` for ``target`` (a name or a resolved :class:`DeviceTarget`; default: the
    manifest's), with any given value overriding the
    target's default. Raises :class:`EnginesError` unless 1 <= min <= opt <= max and the workspace fits.

    ``static`` (a DLA build: DLA has no dynamic dimensions): one batch size, min = opt = max; a batch value
    not given takes the one given (opt, else max, else min), else the target's opt batch."""
    spec = resolve_target(target or manifest["target"])
    given = {"min_batch": min_batch, "opt_batch": opt_batch, "max_batch": max_batch,
             "workspace_mib": workspace_mib}
    values = {k: getattr(spec, k) for k in PROFILE_FIELDS}
    if static:
        batch = next((b for b in (opt_batch, max_batch, min_batch) if b is not None), spec.opt_batch)
        values.update(min_batch=batch, opt_batch=batch, max_batch=batch)
    values.update((k, v) for k, v in given.items() if v is not None)
    for name in sorted(values):
        _positive_int(name, values[name])
    lo, opt, hi = values["min_batch"], values["opt_batch"], values["max_batch"]
    if not lo <= opt <= hi:
        raise EnginesError(f"batch profile must satisfy min <= opt <= max, got min={lo} opt={opt} max={hi}")
    if static and not lo == opt == hi:
        raise EnginesError(f"--dla-core needs one batch size (DLA has no dynamic shapes), got min={lo} opt={opt} "
                           f"max={hi}: give one of --opt-batch / --max-batch, or the same value to all three")
    cap = spec.workspace_cap_mib
    if values["workspace_mib"] > cap:
        raise EnginesError(f"--workspace-mib {values['workspace_mib']} exceeds the {spec.name} cap of {cap} MiB")
    shape = manifest["onnx"]["input"]["shape"]
    return Profile(manifest["onnx"]["input"]["name"], batch_shape(shape, lo), batch_shape(shape, opt),
                   batch_shape(shape, hi), values["workspace_mib"] * MIB)


def profile_to_dict(profile):
    """JSON form: ``{"input": name, "min": [...], "opt": [...], "max": [...], "workspace_mib": int}``."""
    return {"input": profile.input_name, "min": list(profile.min_shape), "opt": list(profile.opt_shape),
            "max": list(profile.max_shape), "workspace_mib": profile.workspace_bytes // MIB}
