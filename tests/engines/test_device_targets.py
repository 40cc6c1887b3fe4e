"""The device-target table is the one source of truth: every target's Dockerfile, base image, run script and
image tag exist as the table says, and every consumer (profiles, manifest schema, CLI choices, width
alignment, DLA requests, deploy's memory check) reads it."""

import re

import pytest
from snp_edge.engines.common.errors import EXIT_BAD_INPUT, EnginesError
from snp_edge.engines.common.targets import (
    TARGETS,
    check_dla_request,
    get_target,
    width_alignment,
    width_multiple_for,
)

from tests.engines.device_fixtures import REPO

DOCKER = REPO / "docker"


TRT_TARGETS = [n for n, t in TARGETS.items() if t.runtime == "tensorrt"]
CPU_TARGETS = [n for n, t in TARGETS.items() if t.runtime == "onnxruntime"]


@pytest.mark.parametrize("name", TRT_TARGETS)
def test_target_files_match_the_table(name):
    from snp_edge.export.trt_ops import PARSERS

    t = TARGETS[name]
    dockerfile = (DOCKER / t.dockerfile).read_text()
    assert re.search(rf"^FROM {re.escape(t.base_image)}\b", dockerfile, re.M), (t.dockerfile, t.base_image)
    assert t.image in dockerfile, "the Dockerfile's build line names the image tag"
    script = (DOCKER / t.run_script).read_text()
    assert t.image in script and t.docker_gpu_flag in script, t.run_script
    assert t.min_batch <= t.opt_batch <= t.max_batch and t.workspace_mib <= t.workspace_cap_mib
    assert t.trt_parser in PARSERS and t.opset <= PARSERS[t.trt_parser][0] and t.opset in (13, 17)
    assert t.width_multiple == (8 if t.tensor_cores else 1) and t.builder_memory_mib > 0
    assert re.fullmatch(r"3\.\d+", t.python) and re.fullmatch(r"\d+\.\d+(\.\d+)?", t.tensorrt)


def test_the_jetson_run_script_picks_each_targets_image():
    """docker/run-jetson.sh maps the bundle's target to its image: the same mapping as the table."""
    script = (DOCKER / "run-jetson.sh").read_text()
    mapping = {}
    for names, image in re.findall(r"^\s*([a-z0-9|-]+)\) default_image=(\S+) ;;", script, re.M):
        mapping.update(dict.fromkeys(names.split("|"), image))
    jetsons = {n: t.image for n, t in TARGETS.items() if t.run_script == "run-jetson.sh"}
    assert mapping == jetsons and {"jetson-nano", "jetson-orin", "jetson-orin-nano", "jetson-orin-jp5"} <= set(jetsons)


@pytest.mark.parametrize("version", ["3.8", "3.10"])
def test_orin_containers_install_the_tested_versions(version):
    """The Orin images pip-install the numpy and Pillow the device code is tested with under that Python."""
    from tests.engines.device_python import DEVICE_PYTHONS, DEVICE_TARGETS

    target = TARGETS[DEVICE_TARGETS[version]]
    assert target.python == version
    pins = [p for p in DEVICE_PYTHONS[version].pins if p.split("==")[0] in ("numpy", "Pillow")]
    assert 'python3 -m pip install "{}" "{}"'.format(*pins) in (DOCKER / target.dockerfile).read_text()


def test_orin_is_jetpack_6():
    orin = get_target("jetson-orin")
    assert (orin.tensorrt, orin.python, orin.opset, orin.trt_parser) == ("10.3", "3.10", 17, "trt10")
    assert orin.base_image == "nvcr.io/nvidia/l4t-jetpack:r36.4.0" and orin.docker_gpu_flag == "--runtime nvidia"
    assert (orin.dla_cores, get_target("jetson-orin-nano").dla_cores, get_target("jetson-nano").dla_cores) == (2, 0, 0)
    jp5 = get_target("jetson-orin-jp5")
    assert (jp5.tensorrt, jp5.python, jp5.opset, jp5.trt_parser) == ("8.5.2", "3.8", 13, "trt8.5")


def test_consumers_read_the_table():
    from snp_edge.engines.cli import build_parser as device_parser
    from snp_edge.engines.manifest import TARGET_NAMES
    from snp_edge.engines.profiles import resolve_profile
    from snp_edge.export.trt_ops import PARSERS

    from snp_edge.cli import build_parser
    from snp_edge.cli.export import PARSERS as CLI_PARSERS

    assert list(TARGET_NAMES) == list(TARGETS)
    assert {t.trt_parser for t in TARGETS.values()} - {None} <= set(PARSERS) and set(CLI_PARSERS) == set(PARSERS)
    for t in TARGETS.values():
        manifest = {"target": t.name, "onnx": {"input": {"name": "input", "shape": [-1, 3, 32, 32]}}}
        p = resolve_profile(manifest)
        assert (p.min_shape[0], p.opt_shape[0], p.max_shape[0]) == (t.min_batch, t.opt_batch, t.max_batch)
    for parser, argv in ((build_parser(), ["bundle", "x", "--out", "o", "--target"]),
                         (build_parser(), ["prune", "--model", "m", "--preset", "deit_t_0.6g", "--out", "o",
                                           "--target"]),
                         (device_parser(), ["build", "b", "--target"])):
        for name in TARGETS:
            assert parser.parse_args([*argv, name]).target == name


def test_cpu_targets_run_onnx_runtime_only():
    """The CPU boards have no TensorRT, container or GPU fields; they run FP32 or ONNX Runtime's INT8."""
    assert CPU_TARGETS == ["raspberry-pi-5", "raspberry-pi-4", "arm64-cpu"]
    for name in CPU_TARGETS:
        t = TARGETS[name]
        assert (t.trt_parser, t.tensorrt, t.dockerfile, t.image, t.docker_gpu_flag) == (None,) * 5
        assert (t.precisions, t.quantizer, t.dla_cores, t.width_multiple) == (("fp32", "int8"), "ort", 0, 1)
    assert get_target("raspberry-pi-5").python == "3.11" and get_target("raspberry-pi-4").python == "3.11"


def test_int8_lives_in_the_table():
    from snp_edge.engines.common.targets import check_precision

    assert {n for n, t in TARGETS.items() if "int8" in t.precisions} == {
        "jetson-orin", "jetson-orin-nano", "jetson-orin-jp5", "rtx3090", *CPU_TARGETS}
    assert {TARGETS[n].quantizer for n in TRT_TARGETS if n != "jetson-nano"} == {"modelopt"}
    assert check_precision("jetson-orin", "int8") == "int8" and check_precision("raspberry-pi-5", "fp32") == "fp32"
    with pytest.raises(EnginesError) as info:
        check_precision("jetson-nano", "int8")
    assert str(info.value) == "--precision int8: jetson-nano runs fp32, fp16 only (no fast INT8 on its GPU)"
    assert info.value.exit_status == EXIT_BAD_INPUT
    with pytest.raises(EnginesError, match="raspberry-pi-4 runs fp32, int8 only"):
        check_precision("raspberry-pi-4", "fp16")


def test_unknown_target_names_the_known_ones():
    with pytest.raises(EnginesError, match="known: jetson-nano, jetson-orin, jetson-orin-nano, jetson-orin-jp5, "
                                           "rtx3090, raspberry-pi-5, raspberry-pi-4, arm64-cpu"):
        get_target("orin")


def test_width_multiple_for_targets():
    assert width_multiple_for([]) == 1 and width_multiple_for(["jetson-nano"]) == 1
    assert width_multiple_for(["jetson-orin"]) == 8 and width_multiple_for(["rtx3090", "jetson-orin"]) == 8
    assert width_multiple_for(["rtx3090", "jetson-nano"]) == 1  # the main job's targets: the paper's widths
    assert width_alignment([384, 64, 64, 1536]) == 64 and width_alignment([344, 16, 24, 1376]) == 8
    assert width_alignment([345, 13, 25, 1382]) == 1 and width_alignment([]) == 1
    assert width_alignment([0, 24, 16]) == 8  # a width of 0 (nothing kept) says nothing about alignment


@pytest.mark.parametrize("target,core,precision,message", [
    ("jetson-nano", 0, "fp16", "--dla-core: jetson-nano has no DLA (targets with DLA: jetson-orin, jetson-orin-jp5)"),
    ("rtx3090", 0, "fp16", "--dla-core: rtx3090 has no DLA"),
    ("jetson-orin-nano", 1, "fp16", "--dla-core: jetson-orin-nano has no DLA"),
    ("jetson-orin", 2, "fp16", "--dla-core 2: jetson-orin modules have at most 2 DLA cores (0, 1)"),
    ("jetson-orin", 0, "fp32", "--dla-core: DLA runs FP16 (or INT8) only, not --precision fp32"),
])
def test_dla_requests_the_target_cannot_meet_are_usage_errors(target, core, precision, message):
    with pytest.raises(EnginesError) as info:
        check_dla_request(target, core, precision)
    assert str(info.value).startswith(message) and info.value.exit_status == EXIT_BAD_INPUT
    assert "\n" not in str(info.value)


def test_dla_requests_that_fit():
    assert check_dla_request("jetson-orin", 1) == 1 and check_dla_request("jetson-orin-jp5", 0) == 0
    assert check_dla_request("jetson-nano", None) is None  # no DLA asked: nothing to refuse


def test_deploy_memory_check_reads_the_table(tmp_path):
    from snp_edge.engines.deploy import check_resources

    for name, t in TARGETS.items():
        info = check_resources(str(tmp_path), 1 << 20, name)
        assert info["memory_needed_mib"] == t.builder_memory_mib


def test_a_target_is_resolved_once_and_the_record_passed_down():
    """resolve_target: a name is looked up, a DeviceTarget passes through; the table's checks take either."""
    from snp_edge.engines.common.targets import check_precision, resolve_target

    orin = resolve_target("jetson-orin")
    assert resolve_target(orin) is orin is get_target("jetson-orin")
    assert check_dla_request(orin, 1) == 1 and check_precision(orin, "int8") == "int8"
    assert width_multiple_for([orin, "rtx3090"]) == 8 and width_multiple_for([orin, "jetson-nano"]) == 1
    with pytest.raises(EnginesError, match="--dla-core 2: jetson-orin modules have at most 2 DLA cores"):
        check_dla_request(orin, 2)
    with pytest.raises(EnginesError, match="unknown target 'orin'"):
        resolve_target("orin")
