"""The sidecar JSON beside every engine (``NAME.engine`` -> ``NAME.engine.json``), compatibility checks and
engine cache keys.

Sidecar fields: ``sidecar_version``, ``engine_file``, ``engine_sha256``, ``trt_version``, ``gpu_name``,
``compute_capability`` ("5.3"), ``onnx_sha256``, ``precision`` (see :func:`precision_label`), ``profile``
(:func:`engines.profiles.profile_to_dict`), ``build_flags``, ``build_time_s`` (wall seconds of the build),
``target``, ``created`` (ISO-8601 UTC), ``cache_key``, ``builder`` ("tensorrt": the Python builder, or
"trtexec" with its command line in ``build_flags.argv``), ``dla_core`` (the DLA core the engine runs on, None
for a GPU engine; absent before 0.3) and, for a DLA engine, ``build_flags.dla``: ``{core, gpu_fallback: true,
gpu_fallback_layers: [layer names that run on the GPU]}``. Both builders write the same fields and use the
same cache key, so either's engine is found and reused by the other.

An engine runs only with the TensorRT version and GPU model it was built with, so :func:`check_compatible`
refuses any difference in those three identity fields before the engine is deserialized.

``engine_mac`` (absent before 0.3): HMAC-SHA256 of the sidecar's other fields (``engine_sha256`` among them)
with this device's engine key, a 32-byte random file outside every bundle (``$SNP_EDGE_ENGINE_KEY``, default
``$XDG_CONFIG_HOME/snp-edge/engine-key`` or ``~/.config/snp-edge/engine-key``, mode 0600, made by the first
build). A cached engine is reused or run only when its MAC checks (:func:`check_signed`): whoever can write
``trt-cache/`` but not the user's key cannot make the device side run an engine it did not build. An engine
given explicitly (``--engine PATH``) is the user's choice and needs no MAC.
"""

import hashlib
import hmac
import json
import os
import re
import stat

from .common.errors import EnginesError, IncompatibleEngine, MissingPrerequisite
from .common.fileio import read_json, write_json_atomic
from .trt_compat import version_key

IDENTITY_FIELDS = ("trt_version", "gpu_name", "compute_capability")
REQUIRED_FIELDS = ("sidecar_version", "engine_file", "engine_sha256", "onnx_sha256", "precision", "profile") \
    + IDENTITY_FIELDS


def sidecar_path(engine_path):
    """``model.engine`` -> ``model.engine.json``."""
    return engine_path + ".json"


def precision_label(precision, fp32_norms=False, fp32_softmax=False):
    """"fp16", "fp16-fp32norms", "fp16-fp32norms-fp32softmax", "fp32", ...: what the engine computes in."""
    if precision not in ("fp16", "fp32", "int8"):
        raise EnginesError(f"--precision must be fp16, fp32 or int8, got {precision!r}")
    parts = [precision]
    if precision == "fp16" and fp32_norms:
        parts.append("fp32norms")
    if precision == "fp16" and fp32_softmax:
        parts.append("fp32softmax")
    return "-".join(parts)


def slug(text):
    """Lowercase, filename-safe: "NVIDIA Tegra X1" -> "nvidia-tegra-x1"."""
    return re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-") or "unknown"


def cache_key(onnx_sha256, trt_version, gpu_name, precision, profile, dla_core=None):
    """A deterministic, filename-safe key for an engine: the same ONNX, TensorRT version, GPU, precision
    label, profile (a :class:`~engines.profiles.Profile`) and DLA core (None: GPU only) always give the same
    key, any change a new one. Readable prefix plus a 12-hex digest of all inputs. The TensorRT version counts
    as MAJOR.MINOR.PATCH, so the Python builder and trtexec (whose banner has no build number) share keys.
    GPU engines keep the keys they had before DLA existed here."""
    trt_version = version_key(trt_version)
    shapes = [list(profile.min_shape), list(profile.opt_shape), list(profile.max_shape)]
    fields = [onnx_sha256, str(trt_version), gpu_name, precision, profile.input_name, shapes]
    if dla_core is not None:
        fields.append({"dla_core": int(dla_core)})
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    dla = "" if dla_core is None else f"_dla{int(dla_core)}"
    return f"{onnx_sha256[:8]}_{slug(gpu_name)}_trt{slug(trt_version)}_{precision}{dla}_b{profile.min_shape[0]}-{profile.opt_shape[0]}-{profile.max_shape[0]}_{digest}"


KEY_ENV = "SNP_EDGE_ENGINE_KEY"
KEY_BYTES = 32


def key_path():
    """Where this device's engine key lives (see the module docstring)."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV]
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "snp-edge", "engine-key")


def device_key(create=False):
    """This device's engine key (bytes), made on first use with ``create``; None when absent."""
    path = key_path()
    if create and not os.path.lexists(path):
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(KEY_BYTES))
        except FileExistsError:
            pass  # another build made it first
        except OSError as exc:
            raise MissingPrerequisite("cannot create the engine key {}: {}; set {} to a writable file path".format(
                path, exc.strerror or exc, KEY_ENV)) from None
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise EnginesError("the engine key {} is not a regular file".format(path))
        with open(path, "rb") as f:
            key = f.read(4096)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EnginesError("cannot read the engine key {}: {}".format(path, exc.strerror or exc)) from None
    if len(key) < 16:
        raise EnginesError("the engine key {} is shorter than 16 bytes: remove it (the next build makes a new "
                           "one)".format(path))
    return key


def engine_mac(sidecar, key):
    """HMAC-SHA256 (hex) of every sidecar field except ``engine_mac`` itself."""
    body = json.dumps({k: v for k, v in sidecar.items() if k != "engine_mac"}, sort_keys=True).encode("utf-8")
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def check_signed(sidecar, engine_path):
    """Refuse (:class:`EnginesError`) an engine whose sidecar this device's key did not sign."""
    key = device_key()
    mac = sidecar.get("engine_mac")
    if key is None or not isinstance(mac, str) or not hmac.compare_digest(mac, engine_mac(sidecar, key)):
        raise EnginesError("engine {}: its sidecar is not signed with this device's engine key ({}): it was built "
                           "elsewhere or replaced; rebuild it with `python3 -m engines build --force`".format(
                               engine_path, key_path()))


def write_sidecar(engine_path, data):
    """Sign (``engine_mac``) and write the sidecar for ``engine_path`` atomically."""
    data = dict(data)
    data["engine_mac"] = engine_mac(data, device_key(create=True))
    write_json_atomic(sidecar_path(engine_path), data)
    return data


def read_sidecar(engine_path):
    """The sidecar dict for ``engine_path``; :class:`EnginesError` when missing, unreadable or incomplete."""
    path = sidecar_path(engine_path)
    if not os.path.isfile(path):
        raise EnginesError(f"{engine_path} has no sidecar {os.path.basename(path)}: rebuild it with `python3 -m engines build`")
    data = read_json(path, EnginesError)
    missing = [k for k in REQUIRED_FIELDS if k not in data] if isinstance(data, dict) else ["(object)"]
    if missing:
        raise EnginesError(f"{path}: missing field {missing[0]}")
    return data


def _describe(info):
    return "TensorRT {} on {} (compute capability {})".format(
        info.get("trt_version"), info.get("gpu_name"), info.get("compute_capability"))


def check_compatible(sidecar, runtime_info):
    """Raise :class:`IncompatibleEngine` unless TensorRT version, GPU name and compute capability in
    ``runtime_info`` equal the sidecar's. Both are dicts with the :data:`IDENTITY_FIELDS`."""
    def same(key):
        if key == "trt_version":
            try:
                return version_key(str(sidecar.get(key))) == version_key(str(runtime_info.get(key)))
            except EnginesError:
                return False
        return str(sidecar.get(key)) == str(runtime_info.get(key))

    diffs = [k for k in IDENTITY_FIELDS if not same(k)]
    if diffs:
        raise IncompatibleEngine("engine {} was built with {}, this machine has {} ({} differ{}): rebuild it "
                                 "here with `python3 -m engines build`".format(
                                     sidecar.get("engine_file"), _describe(sidecar), _describe(runtime_info),
                                     ", ".join(diffs), "s" if len(diffs) == 1 else ""))
