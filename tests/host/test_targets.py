"""Presets reproduce the paper's configurations; configs, rounding and the GMACs search behave."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from snp_edge.arch import arch_of
from snp_edge.errors import SnpEdgeError
from snp_edge.macs import macs_constants, predict_macs
from snp_edge.targets import arch_from_config, list_presets, load_preset, round_arch
from snp_edge.vit import create_model

PAPER = Path(__file__).resolve().parents[1] / "data" / "paper-results.md"  # vendored from shared/reference
MODELS = {}


def _base(name: str):
    if name not in MODELS:
        model = create_model(name, device="meta")
        MODELS[name] = (arch_of(model), macs_constants(model))
    return MODELS[name]


def _gmacs(cfg: dict) -> float:
    base, consts = _base(cfg["model"])
    return predict_macs(arch_from_config(cfg, base), **consts) / 1e9


@pytest.mark.parametrize("name", ["deit_t_0.6g", "deit_s_2.0g", "deit_s_1.3g", "deit_b_6.4g"])
def test_paper_presets_match_paper_gmacs(name):
    cfg = load_preset(name)
    assert round(_gmacs(cfg), 1) == cfg["paper_gmacs"]


def test_own_deit_b_head_preset():
    cfg = load_preset("deit_b_3.5g_heads")
    assert abs(_gmacs(cfg) - 3.5) <= 0.1
    assert cfg["heads"] < 12


def _paper_tables() -> dict[str, dict]:
    """The per-layer kept widths of paper-results.md, keyed by the GMACs in their headings."""
    text = PAPER.read_text()
    tables = {}
    for m in re.finditer(r"\*\*DeiT-(\w+) -> ([\d.]+)[^*]*\*\*, embed (\d+) -> (\d+)(.*?)(?=\n\*\*|\nParameter)", text, re.S):
        rows = dict(re.findall(r"- (qk|v|mlp):\s+([\d ]+)", m.group(5)))
        tables[f"{m.group(1)}_{m.group(2)}"] = {"embed": int(m.group(4)),
                                                **{k: [int(x) for x in v.split()] for k, v in rows.items()}}
    return tables


@pytest.mark.parametrize("preset,key", [("deit_t_0.6g", "Tiny_0.64"), ("deit_s_2.0g", "Small_2.04"),
                                        ("deit_s_1.3g", "Small_1.27"), ("deit_b_6.4g", "Base_6.32")])
def test_presets_match_paper_widths(preset, key):
    paper, cfg = _paper_tables()[key], load_preset(preset)
    assert cfg["embed"] == paper["embed"]
    for comp in ("qk", "v", "mlp"):
        if preset == "deit_b_6.4g":  # the paper's 6.4 needs the fractional widths rounded up (see preset)
            assert all(0 <= c - p <= 1 for c, p in zip(cfg[comp], paper[comp], strict=True))
        else:
            assert cfg[comp] == paper[comp]
    if preset == "deit_b_6.4g":
        assert round(_gmacs({**cfg, **paper}), 2) == 6.32


def test_ratios_config_equals_widths_config():
    base, _ = _base("deit_small_patch16_224")
    by_ratio = arch_from_config({"ratios": {"embed": 0.1, "qk": 0.5, "v": [0.25] * 12, "mlp": 0.75}}, base)
    by_width = arch_from_config({"embed": 346, "qk": 32, "v": 48, "mlp": 384}, base)
    assert by_ratio == by_width


@pytest.mark.parametrize("cfg,message", [
    ({"ratios": {"qk": 1.0}}, r"outside \[0, 1\)"),
    ({"ratios": {"mlp": -0.1}}, r"outside \[0, 1\)"),
    ({"qk": 0}, "to zero"),
    ({"ratios": {"v": 0.999}}, "to zero"),
    ({"mlp": 5000}, "only 1536"),
    ({"qk": [32] * 5}, "5 values but the model has 12"),
    ({"drop_blocks": list(range(12))}, "every block"),
    ({"widths": 3}, "unknown keys"),
])
def test_bad_configs(cfg, message):
    base, _ = _base("deit_small_patch16_224")
    with pytest.raises(SnpEdgeError, match=message):
        arch_from_config(cfg, base)


def test_preset_for_another_model_is_refused():
    base, _ = _base("deit_tiny_patch16_224")
    with pytest.raises(SnpEdgeError, match="deit_small_patch16_224"):
        arch_from_config(load_preset("deit_s_1.3g"), base, "preset deit_s_1.3g")


def test_round_to_nearest_multiple():
    cfg = load_preset("deit_s_1.3g")
    base, _ = _base(cfg["model"])
    rounded = round_arch(arch_from_config(cfg, base), 8)
    assert rounded.embed == 344  # 345 -> 344
    assert [b.qk for b in rounded.blocks[:4]] == [24, 24, 24, 16]  # 26, 20, 20, 13
    assert [b.v for b in rounded.blocks[:2]] == [16, 16]  # 12, 19
    assert rounded.blocks[0].mlp == 1384 and rounded.blocks[3].mlp == 304  # 1382, 307


def test_round_to_larger_than_small_widths_stays_under():
    """qk 13 rounds up to 16; the FFN gives the MACs back so the preset's budget holds."""
    from snp_edge.targets import fit_under

    cfg = load_preset("deit_s_1.3g")
    base, consts = _base(cfg["model"])
    arch = arch_from_config(cfg, base)
    limit = predict_macs(arch, **consts)
    fitted = fit_under(round_arch(arch, 16), limit, consts, 16)
    assert predict_macs(round_arch(arch, 16), **consts) > limit  # the case this guards against
    assert predict_macs(fitted, **consts) <= limit
    assert all(w % 16 == 0 for b in fitted.blocks for w in (b.qk, b.v, b.mlp))


def test_list_presets():
    assert set(list_presets()) == {"deit_t_0.6g", "deit_s_2.0g", "deit_s_1.3g", "deit_b_6.4g", "deit_b_3.5g_heads",
                                   "deit_s_1.3g_heads", "deit_s_tiny_ort"}


def test_own_deit_s_head_preset():
    cfg = load_preset("deit_s_1.3g_heads")
    assert abs(_gmacs(cfg) - 1.27) <= 0.01
    assert all(w % 8 == 0 for w in (cfg["embed"], cfg["qk"], cfg["v"], cfg["mlp"]))


def test_device_preset_derived_from_the_ort_table():
    """deit_s_tiny_ort (benchmarks/derive_preset.py from docs/results/latency/deit_s_ort_1t.json): 3 heads,
    8-aligned widths, and the table predicts it at DeiT-Tiny's latency (within 2% under)."""
    from snp_edge.engines import latency_table as lt

    from snp_edge.latency import predict_ms

    cfg = load_preset("deit_s_tiny_ort")
    base, consts = _base(cfg["model"])
    arch = arch_from_config(cfg, base)
    assert all(b.heads == 3 and b.qk % 8 == 0 and b.v % 8 == 0 and b.mlp % 8 == 0 for b in arch.blocks)
    assert arch.embed % 8 == 0
    table = lt.read_table(Path(__file__).resolve().parents[2] / "docs" / "results" / "latency" / "deit_s_ort_1t.json")
    tiny = predict_ms(table, _base("deit_tiny_patch16_224")[0])
    assert 0.98 * tiny <= predict_ms(table, arch) <= tiny
