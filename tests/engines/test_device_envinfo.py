"""Environment probes: parsers on real Jetson text, and collect() on this machine."""

import json

from snp_edge.engines.envinfo import collect, parse_l4t_release, parse_nvpmodel

NVPMODEL_MAXN = "NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n"
NVPMODEL_5W = "NV Power Mode: 5W\n1"
TEGRA_RELEASE = ("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, "
                 "DATE: Sat Feb 19 17:05:08 UTC 2022")


def test_parse_nvpmodel():
    assert parse_nvpmodel(NVPMODEL_MAXN) == {"mode": "MAXN", "id": 0}
    assert parse_nvpmodel(NVPMODEL_5W) == {"mode": "5W", "id": 1}
    assert parse_nvpmodel("") is None and parse_nvpmodel(None) is None


def test_parse_l4t_release():
    assert parse_l4t_release(TEGRA_RELEASE) == "32.7.1"
    assert parse_l4t_release("garbage") is None


def test_collect_never_fails_and_is_json():
    env = collect()
    json.dumps(env)
    assert env["python"] and "device" in env
