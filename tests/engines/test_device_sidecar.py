"""Sidecar files, compatibility refusal and engine cache keys."""

import pytest
from snp_edge.engines.common.errors import EnginesError, IncompatibleEngine
from snp_edge.engines.profiles import resolve_profile
from snp_edge.engines.sidecar import cache_key, check_compatible, precision_label, read_sidecar, write_sidecar

from tests.engines.device_fixtures import manifest_dict

NANO = {"trt_version": "8.2.1.8", "gpu_name": "NVIDIA Tegra X1", "compute_capability": "5.3"}
RTX = {"trt_version": "10.8.0.43", "gpu_name": "NVIDIA GeForce RTX 3090", "compute_capability": "8.6"}
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _profile(**kwargs):
    m = manifest_dict()
    m["onnx"]["input"]["shape"] = [-1, 3, 224, 224]
    return resolve_profile(m, **kwargs)


def _sidecar(identity):
    data = {"sidecar_version": 1, "engine_file": "m.engine", "engine_sha256": SHA, "onnx_sha256": SHA,
            "precision": "fp16", "profile": {"input": "input"}}
    data.update(identity)
    return data


def test_same_machine_is_compatible():
    check_compatible(_sidecar(NANO), dict(NANO, cuda_backend="pycuda"))


@pytest.mark.parametrize("field,value", [("trt_version", "8.2.3.0"), ("gpu_name", "NVIDIA Tegra X2"),
                                         ("compute_capability", "6.2")])
def test_any_identity_difference_is_refused(field, value):
    runtime = dict(NANO, **{field: value})
    with pytest.raises(IncompatibleEngine) as err:
        check_compatible(_sidecar(NANO), runtime)
    msg = str(err.value)
    assert "was built with TensorRT 8.2.1.8 on NVIDIA Tegra X1 (compute capability 5.3)" in msg
    assert f"({field} differs)" in msg and "rebuild it here" in msg and "\n" not in msg


def test_nano_engine_on_3090_names_all_differences():
    with pytest.raises(IncompatibleEngine, match="trt_version, gpu_name, compute_capability differ"):
        check_compatible(_sidecar(NANO), RTX)


def test_cache_key_is_deterministic_and_readable():
    key = cache_key(SHA, NANO["trt_version"], NANO["gpu_name"], "fp16", _profile())
    assert key == cache_key(SHA, "8.2.1.8", "NVIDIA Tegra X1", "fp16", _profile())
    assert key.startswith("9f86d081_nvidia-tegra-x1_trt8.2.1_fp16_b1-1-8_")
    # trtexec's banner has no build number: the same engine key from either builder
    assert key == cache_key(SHA, "8.2.1", NANO["gpu_name"], "fp16", _profile())
    assert all(c.isalnum() or c in "._-" for c in key)


@pytest.mark.parametrize("change", [
    lambda: cache_key("0" * 64, "8.2.1.8", "NVIDIA Tegra X1", "fp16", _profile()),
    lambda: cache_key(SHA, "8.2.3.0", "NVIDIA Tegra X1", "fp16", _profile()),
    lambda: cache_key(SHA, "8.2.1.8", "NVIDIA Tegra X2", "fp16", _profile()),
    lambda: cache_key(SHA, "8.2.1.8", "NVIDIA Tegra X1", "fp16-fp32norms", _profile()),
    lambda: cache_key(SHA, "8.2.1.8", "NVIDIA Tegra X1", "fp16", _profile(max_batch=4)),
])
def test_cache_key_changes_with_any_input(change):
    assert change() != cache_key(SHA, "8.2.1.8", "NVIDIA Tegra X1", "fp16", _profile())


def test_precision_labels():
    assert precision_label("fp16") == "fp16"
    assert precision_label("fp16", True, True) == "fp16-fp32norms-fp32softmax"
    assert precision_label("fp32", True) == "fp32"
    assert precision_label("int8", True) == "int8"  # INT8 bundles: Q/DQ nodes decide, no FP32 pins
    with pytest.raises(EnginesError, match="--precision must be fp16, fp32 or int8"):
        precision_label("bf16")


def test_sidecar_round_trip_and_errors(tmp_path):
    engine = str(tmp_path / "m.engine")
    with pytest.raises(EnginesError, match="has no sidecar m.engine.json"):
        read_sidecar(engine)
    write_sidecar(engine, _sidecar(NANO))
    signed = read_sidecar(engine)
    assert len(signed.pop("engine_mac")) == 64 and signed == _sidecar(NANO)
    assert [p.name for p in tmp_path.iterdir()] == ["m.engine.json"]  # no temporary files left
    (tmp_path / "m.engine.json").write_text('{"sidecar_version": 1}')
    with pytest.raises(EnginesError, match="missing field engine_file"):
        read_sidecar(engine)
