"""Per-target profiles: defaults, overrides, shapes from the manifest, validation messages."""

import pytest
from snp_edge.engines.common.errors import EnginesError
from snp_edge.engines.profiles import MIB, batch_shape, profile_to_dict, resolve_profile

from tests.engines.device_fixtures import manifest_dict


def _manifest(shape=(-1, 3, 224, 224), target="jetson-nano"):
    m = manifest_dict(target)
    m["onnx"]["input"]["shape"] = list(shape)
    return m


def test_jetson_defaults():
    p = resolve_profile(_manifest())
    assert (p.min_shape, p.opt_shape, p.max_shape) == ((1, 3, 224, 224), (1, 3, 224, 224), (8, 3, 224, 224))
    assert p.workspace_bytes == 1024 * MIB and p.input_name == "input"


def test_rtx3090_defaults_and_target_override():
    p = resolve_profile(_manifest(), target="rtx3090")
    assert (p.min_shape[0], p.opt_shape[0], p.max_shape[0]) == (1, 64, 128)
    assert p.workspace_bytes == 4096 * MIB
    assert profile_to_dict(p) == {"input": "input", "min": [1, 3, 224, 224], "opt": [64, 3, 224, 224],
                                  "max": [128, 3, 224, 224], "workspace_mib": 4096}


def test_overrides():
    p = resolve_profile(_manifest(), min_batch=2, opt_batch=4, max_batch=4, workspace_mib=512)
    assert (p.min_shape[0], p.opt_shape[0], p.max_shape[0], p.workspace_bytes) == (2, 4, 4, 512 * MIB)


@pytest.mark.parametrize("kwargs,message", [
    ({"min_batch": 4, "opt_batch": 2}, "min <= opt <= max, got min=4 opt=2 max=8"),
    ({"opt_batch": 16}, "min <= opt <= max"),
    ({"max_batch": 0}, "--max-batch must be a positive integer"),
    ({"workspace_mib": 2048}, "exceeds the jetson-nano cap of 1024 MiB"),
    ({"target": "tpu"}, "unknown target 'tpu'"),
])
def test_invalid(kwargs, message):
    with pytest.raises(EnginesError, match=message.replace("(", r"\(")):
        resolve_profile(_manifest(), **kwargs)


def test_fixed_batch_onnx():
    assert batch_shape([1, 3, 224, 224], 1) == (1, 3, 224, 224)
    with pytest.raises(EnginesError, match="fixed batch of 1; batch 8 is impossible"):
        resolve_profile(_manifest(shape=(1, 3, 224, 224)))
