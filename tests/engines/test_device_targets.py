"""The device-target table is the one source of truth: every target's Dockerfile, base image, run script and
image tag exist as the table says, and every consumer (profiles, manifest schema, CLI choices) reads it."""

import re

import pytest
from snp_edge.engines.targets import TARGETS, get_target

from tests.engines.device_fixtures import REPO

DOCKER = REPO / "docker"


@pytest.mark.parametrize("name", list(TARGETS))
def test_target_files_match_the_table(name):
    t = TARGETS[name]
    dockerfile = (DOCKER / t.dockerfile).read_text()
    assert re.search(rf"^FROM {re.escape(t.base_image)}\b", dockerfile, re.M), (t.dockerfile, t.base_image)
    script = (DOCKER / t.run_script).read_text()
    assert t.image in script and t.docker_gpu_flag in script, t.run_script
    assert t.min_batch <= t.opt_batch <= t.max_batch and t.workspace_mib <= t.workspace_cap_mib
    assert t.trt_parser in ("trt8.2", "trt10") and t.opset in (13, 17)


def test_consumers_read_the_table():
    from snp_edge.engines.cli import build_parser as device_parser
    from snp_edge.engines.manifest import TARGET_NAMES
    from snp_edge.engines.profiles import resolve_profile
    from snp_edge.export.trt_ops import PARSERS

    from snp_edge.cli import build_parser

    assert list(TARGET_NAMES) == list(TARGETS)
    assert {t.trt_parser for t in TARGETS.values()} <= set(PARSERS)
    for t in TARGETS.values():
        manifest = {"target": t.name, "onnx": {"input": {"name": "input", "shape": [-1, 3, 32, 32]}}}
        p = resolve_profile(manifest)
        assert (p.min_shape[0], p.opt_shape[0], p.max_shape[0]) == (t.min_batch, t.opt_batch, t.max_batch)
    for parser, argv in ((build_parser(), ["bundle", "x", "--out", "o", "--target"]),
                         (device_parser(), ["build", "b", "--target"])):
        for name in TARGETS:
            assert parser.parse_args([*argv, name]).target == name


def test_unknown_target_names_the_known_ones():
    from snp_edge.engines.errors import EnginesError

    with pytest.raises(EnginesError, match="known: jetson-nano, rtx3090"):
        get_target("orin")
