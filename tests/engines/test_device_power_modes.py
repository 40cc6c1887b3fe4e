"""Jetson power modes per module: nvpmodel configurations parsed, the fastest mode chosen from the module's
own table (nvpmodel ids differ between the Nano, Orin modules and JetPack releases), the fallbacks."""

from snp_edge.engines.power_modes import (
    fastest,
    is_fastest,
    modes_for_model,
    parse_nvpmodel_conf,
    power_modes,
)

AGX_ORIN_CONF = """# comment < POWER_MODEL ID=9 NAME=NOT_A_MODE >
< PARAM TYPE=CLOCK NAME=GPU >
< POWER_MODEL ID=0 NAME=MAXN >
GPU MAX_FREQ -1
<POWER_MODEL ID=1 NAME=MODE_15W>
< POWER_MODEL ID=2 NAME=MODE_30W >
< POWER_MODEL ID=3 NAME=MODE_50W >
< PM_CONFIG DEFAULT=2 >
"""


def test_parse_nvpmodel_conf():
    assert parse_nvpmodel_conf(AGX_ORIN_CONF) == {0: "MAXN", 1: "MODE_15W", 2: "MODE_30W", 3: "MODE_50W"}
    assert parse_nvpmodel_conf("") == {} and parse_nvpmodel_conf(None) == {}


def test_fastest_mode_per_module():
    assert fastest(parse_nvpmodel_conf(AGX_ORIN_CONF)) == {"id": 0, "mode": "MAXN"}
    assert fastest({0: "15W", 1: "25W", 2: "MAXN_SUPER", 3: "7W"}) == {"id": 2, "mode": "MAXN_SUPER"}  # JetPack 6.2
    assert fastest({0: "15W", 1: "7W"}) == {"id": 0, "mode": "15W"}  # Orin Nano, JetPack 6.0/6.1: no MAXN
    assert fastest({3: "10W", 1: "MODE_20W", 2: "CUSTOM"}) == {"id": 1, "mode": "MODE_20W"}
    assert fastest({4: "CUSTOM", 2: "OTHER"}) == {"id": 2, "mode": "OTHER"} and fastest({}) is None


def test_modes_by_device_tree_model():
    assert modes_for_model("NVIDIA Jetson Nano Developer Kit") == {0: "MAXN", 1: "5W"}
    assert modes_for_model("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit")[0] == "15W"
    assert modes_for_model("NVIDIA Jetson Orin NX Engineering Reference Developer Kit")[0] == "MAXN"
    assert modes_for_model("Jetson AGX Orin Developer Kit")[3] == "50W"
    assert modes_for_model("Raspberry Pi 5") is None and modes_for_model(None) is None


def test_power_modes_prefers_the_devices_conf(tmp_path):
    conf = tmp_path / "nvpmodel.conf"
    conf.write_text("< POWER_MODEL ID=0 NAME=15W >\n< POWER_MODEL ID=1 NAME=25W >\n< POWER_MODEL ID=2 NAME=MAXN_SUPER >\n")
    info = power_modes(str(conf), model="NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super")
    assert info["source"] == "nvpmodel.conf" and info["fastest"] == {"id": 2, "mode": "MAXN_SUPER"}
    table = power_modes(str(tmp_path / "absent.conf"), model="NVIDIA Jetson Orin Nano Developer Kit")
    assert table["source"] == "table" and table["fastest"] == {"id": 0, "mode": "15W"}
    unknown = power_modes(str(tmp_path / "absent.conf"), model="")
    assert unknown["source"] is None and unknown["modes"] == {} and unknown["fastest"]["id"] == 0
    assert is_fastest({"mode": "15W", "id": 0}, table) and not is_fastest({"mode": "7W", "id": 1}, table)
    assert is_fastest({"mode": "15W", "id": None}, table) and not is_fastest(None, table)
