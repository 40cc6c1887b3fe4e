"""Latency tables: the format, interpolation, the cost the allocator uses, and the profile command."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
from snp_edge.engines import latency_table as lt
from snp_edge.engines.common.errors import UserError

from snp_edge.allocation import MacCost, allocate, total_cost
from snp_edge.arch import arch_of
from snp_edge.latency import LatencyCost, geometry, predict_ms
from snp_edge.macs import macs_constants
from snp_edge.vit import create_model


def _model(name="deit_small_patch16_224"):
    return create_model(name, device="meta")


def _deit_s_scores(seed: int):
    """Uniform random scores of DeiT-S's shapes."""
    import torch

    from snp_edge.criteria import Scores

    g = torch.Generator().manual_seed(seed)
    return Scores(qk=[torch.rand(6, 64, generator=g) for _ in range(12)],
                  v=[torch.rand(6, 64, generator=g) for _ in range(12)],
                  mlp=[torch.rand(1536, generator=g) for _ in range(12)],
                  heads=[torch.rand(6, generator=g) for _ in range(12)], embed=torch.rand(384, generator=g),
                  blocks=torch.rand(12, generator=g))


def _synthetic(model, per_mac_ms=1e-8, overhead_ms=0.05, points=4):
    """A table whose parts cost ``per_mac_ms`` per MAC plus a fixed overhead per part (multilinear in each
    width except attention, which is bilinear in heads x width: interpolation is exact on it)."""
    geo = geometry(model, "deit_small_patch16_224")
    grid = lt.default_grid(geo, points)
    N = geo["tokens"]

    def measure(term, w):
        E = w["embed"]
        if term == "stem":
            macs = (N - 1) * geo["in_chans"] * geo["patch_size"] ** 2 * E
        elif term == "head":
            macs = E * geo["head_outputs"]
        elif term == "attn":
            H, qk, v = w["heads"], w["qk"], w["v"]
            macs = N * E * H * (2 * qk + v) + N * N * H * (qk + v) + N * H * v * E
        else:
            macs = 2 * N * E * w["mlp"]
        return overhead_ms + per_mac_ms * macs

    terms, _, partial = lt.measure_table(geo, grid, measure)
    return lt.make_table(geo, grid, terms, None, "ort", "fp32", 1, 1, "cpu", {"warmup": 0, "runs": 1}, {},
                         "test", partial)


def test_interpolation_is_exact_on_multilinear_functions_and_extrapolates():
    axes = [[1, 3, 7], [2, 10]]

    def f(a, b):
        return 2 + 3 * a + 5 * b + 0.5 * a * b

    values = [[f(a, b) for b in axes[1]] for a in axes[0]]
    for a, b in [(1, 2), (2, 5), (6.5, 9), (3, 10)]:
        assert lt.interpolate(axes, values, [a, b]) == pytest.approx(f(a, b), rel=1e-12)
    assert lt.interpolate(axes, values, [9, 2]) == pytest.approx(f(9, 2))  # linear beyond the last point
    assert lt.interpolate([[1, 2]], [1.0, 2.0], [-5]) == 0.0  # never negative


def test_table_predicts_the_sum_of_its_parts_and_calibrates():
    model = _model()
    table = _synthetic(model)
    arch = arch_of(model)
    macs = MacCost(**macs_constants(model))
    # every part is linear in MACs plus a constant, so the prediction is exact: 1e-8 ms per MAC + overheads
    expected = 1e-8 * total_cost(macs, arch) + 0.05 * (2 + 2 * arch.depth)
    assert predict_ms(table, arch) == pytest.approx(expected, rel=1e-9)
    table["calibration"] = {"measured_ms": 2 * expected, "sum_ms": expected, "factor": 2.0}
    assert predict_ms(table, arch) == pytest.approx(2 * expected, rel=1e-9)


def test_measure_table_fits_the_calibration_on_whole_models_and_a_time_budget_makes_it_partial():
    """The calibration is fitted on the probe models: whole = 1.3 x parts + 2 ms is recovered exactly; an
    offset the data would make negative is clipped to 0 (the factor alone then fits); a cut table has none."""
    geo = geometry(_model(), "x")
    grid = {"embed": [192, 384], "heads": [3, 6], "qk": [32, 64], "v": [32, 64], "mlp": [768, 1536]}

    def measure(term, w):
        return 1e-3 * sum(w.values())

    table = {"grid": grid, "model": geo, "terms": lt.measure_table(geo, grid, measure)[0]}
    probes = lt.calibration_probes(geo)
    assert [label for label, _ in probes] == ["unpruned", "half", "quarter"]
    assert probes[0][1] == {"embed": 384, "heads": 6, "qk": 64, "v": 64, "mlp": 1536}
    assert all(w[k] % 8 == 0 for _, w in probes for k in ("embed", "qk", "v", "mlp"))

    def parts(w):
        return lt.predict_parts(table, w["embed"], [{k: w[k] for k in ("heads", "qk", "v", "mlp")}] * geo["depth"])

    terms, cal, partial = lt.measure_table(geo, grid, measure, lambda w: 1.3 * parts(w) + 2.0)
    assert not partial and cal["factor"] == pytest.approx(1.3, rel=1e-9)
    assert cal["offset_ms"] == pytest.approx(2.0, rel=1e-9)
    assert cal["sum_ms"] == pytest.approx(parts(probes[0][1]), rel=1e-12) and len(cal["points"]) == 3
    doc = lt.make_table(geo, grid, terms, cal, "ort", "fp32", 1, 1, "cpu", {}, {}, "test")
    for _, w in probes:
        block = {k: w[k] for k in ("heads", "qk", "v", "mlp")}
        assert lt.predict_ms(doc, w["embed"], [block] * 12) == pytest.approx(1.3 * parts(w) + 2.0, rel=1e-9)
    assert "+0.0%" in lt.describe_calibration(doc) and "+ 2.000 ms" in lt.describe_calibration(doc)
    _, cal, _ = lt.measure_table(geo, grid, measure, lambda w: 0.9 * parts(w) - 1.0)
    assert cal["offset_ms"] == 0.0 and 0.8 < cal["factor"] < 0.9
    seen = []
    terms, cal, partial = lt.measure_table(geo, grid, lambda term, w: seen.append(term) or 1.0, lambda w: 1.0,
                                           time_budget=0.0)
    assert partial and cal is None
    assert np.isnan(np.asarray(terms["attn"]["ms"])).all()


def test_version_1_tables_are_read_with_the_factor_alone(tmp_path):
    table = _synthetic(_model(), points=2)
    arch = arch_of(_model())
    parts = predict_ms(table, arch)
    old = {**table, "version": 1, "calibration": {"measured_ms": 2 * parts, "sum_ms": parts, "factor": 2.0}}
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(old))
    assert predict_ms(lt.read_table(path), arch) == pytest.approx(2 * parts, rel=1e-12)
    assert lt.alignment(table) == 8


def test_bad_tables_are_refused(tmp_path):
    table = _synthetic(_model(), points=2)
    path = tmp_path / "t.json"
    cases = {
        "not a snp-edge latency table": {**table, "format": "other"},
        "version 7": {**table, "version": 7},
        "field grid.qk: expected increasing positive integers": {**table, "grid": {**table["grid"], "qk": [64, 8]}},
        "has shape": {**table, "terms": {**table["terms"], "mlp": {"axes": ["embed", "mlp"], "ms": [[1.0]]}}},
        "calibration.factor": {**table, "calibration": {"factor": 40}},
        "calibration.offset_ms": {**table, "calibration": {"factor": 1.0, "measured_ms": 5.0, "offset_ms": -1}},
    }
    nan_offset = {**table, "calibration": {"factor": 1.0, "measured_ms": 5.0, "offset_ms": float("nan")}}
    cases["field calibration.offset_ms: expected a finite number >= 0, got nan"] = nan_offset
    nan = copy.deepcopy(table)
    nan["terms"]["stem"]["ms"][0] = float("nan")
    cases["NaN"] = nan
    for message, doc in cases.items():
        path.write_text(json.dumps(doc))
        with pytest.raises(UserError, match=message):
            lt.read_table(path)
    path.write_text(json.dumps({**table, "partial": True}))
    with pytest.raises(UserError, match="partial"):
        lt.read_table(path)
    path.write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        lt.read_table(path)


@pytest.mark.slow
def test_latency_cost_drives_the_allocation_within_two_percent():
    """--target-latency: the score allocation lands within 2% under the predicted budget; a latency table where
    the FFN is expensive per MAC makes the FFN narrower than the MAC cost does at the same budget in ms."""


    model = _model()
    base = arch_of(model)
    macs = MacCost(**macs_constants(model))
    scores = _deit_s_scores(0)
    table = _synthetic(model)
    cost = LatencyCost(table, macs)
    budget = 0.4 * total_cost(cost, base)
    arch = allocate("score", base, budget, cost, 8, scores)
    assert 0.98 * budget <= predict_ms(table, arch) <= budget
    slow_ffn = copy.deepcopy(table)
    slow_ffn["terms"]["mlp"]["ms"] = (3 * np.asarray(slow_ffn["terms"]["mlp"]["ms"])).tolist()
    cost2 = LatencyCost(slow_ffn, macs)
    arch2 = allocate("score", base, 0.4 * total_cost(cost2, base), cost2, 8, scores)
    assert sum(b.mlp for b in arch2.blocks) < sum(b.mlp for b in arch.blocks)


def test_table_for_another_model_is_refused(tmp_path):
    from snp_edge.models import ModelHandle

    table = _synthetic(_model())
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table))
    tiny = ModelHandle(create_model("deit_tiny_patch16_224", device="meta"), "deit_tiny_patch16_224")
    with pytest.raises(UserError, match="measured for deit_small_patch16_224"):
        LatencyCost.from_file(path, tiny)


def test_calibration_probe_models_have_the_probe_widths_and_run():
    import torch
    from snp_edge.bench.profile import at_widths

    from snp_edge.models import ModelHandle

    args = {"img_size": 32}
    handle = ModelHandle(create_model("deit_tiny_patch16_224", args), "deit_tiny_patch16_224", args)
    geo = geometry(handle.model, handle.base_model)
    (_, full), (_, half), (_, quarter) = lt.calibration_probes(geo)
    assert at_widths(handle, full) is handle
    probe = at_widths(handle, quarter)
    arch = arch_of(probe.model)
    assert arch.embed == quarter["embed"] and {(b.heads, b.qk, b.v, b.mlp) for b in arch.blocks} == \
        {(quarter["heads"], quarter["qk"], quarter["v"], quarter["mlp"])}
    with torch.no_grad():
        assert torch.isfinite(probe.model(torch.randn(1, 3, 32, 32))).all()


def test_profile_parts_run_on_ort_and_torch():
    from snp_edge.bench.profile import ort_part_ms, part_onnx, torch_part_ms

    geo = geometry(create_model("deit_tiny_patch16_224", {"img_size": 32}, device="meta"), "deit_tiny_patch16_224")
    for term, w in (("stem", {"embed": 64}), ("head", {"embed": 64}),
                    ("attn", {"embed": 64, "heads": 2, "qk": 8, "v": 16}), ("mlp", {"embed": 64, "mlp": 96})):
        graph = part_onnx(term, w, geo, 2)
        assert graph.graph.output[0].name == "output"
        for timer in (ort_part_ms, torch_part_ms):
            ms = timer(term, w, geo, 2, 1, 1, 2)
            assert np.isfinite(ms) and ms > 0


@pytest.mark.slow
def test_profile_then_prune_to_a_speedup(tmp_path):
    """snp-edge profile (ONNX Runtime) on a small DeiT, then prune --target-speedup with the table: the
    prediction lands within 2% of the target and the summary and model.json carry it."""
    table = tmp_path / "table.json"
    small = ["--model", "deit_tiny_patch16_224", "--model-arg", "img_size=32"]
    res = subprocess.run([sys.executable, "-m", "snp_edge", "profile", *small, "--points", "2", "--warmup", "1",
                          "--runs", "3", "--out", str(table)], capture_output=True, text=True, timeout=280)
    assert res.returncode == 0, res.stderr[-2000:]
    doc = lt.read_table(table)
    assert doc["backend"] == "ort" and doc["threads"] == 1 and doc["calibration"]["factor"] > 0
    out = tmp_path / "pruned"
    res = subprocess.run([sys.executable, "-m", "snp_edge", "prune", *small, "--weights", "random",
                          "--target-speedup", "2", "--latency-table", str(table), "--criterion", "l1", "--json",
                          "--out", str(out)], capture_output=True, text=True, timeout=280)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert 2 <= summary["predicted_speedup"] <= 2 / 0.98
    saved = json.loads((out / "model.json").read_text())
    # the table measured multiples of 8 only: the allocation steps by them unless --round-to says otherwise
    assert saved["pruning"]["target"]["round_to"] == lt.alignment(doc) == 8
    widths = saved["summary"]["widths"]
    assert widths["embed"] % 8 == 0 and all(b[k] % 8 == 0 for b in widths["blocks"] for k in ("qk", "v", "mlp"))
    assert saved["summary"]["predicted_ms_after"] == summary["predicted_ms_after"]
    assert saved["pruning"]["target"]["target_speedup"] == 2
    res = subprocess.run([sys.executable, "-m", "snp_edge", "prune", *small, "--weights", "random",
                          "--target-speedup", "2", "--criterion", "l1", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=280)
    assert res.returncode == 2 and "--latency-table" in res.stderr


@pytest.mark.slow
def test_latency_budgets_measure_group_weights_by_default(tmp_path):
    """By default (and with --group-weight auto) every budget measures each group's loss (the recipe says
    ``loss``, and the widths differ from the ``macs`` weights'), a MAC budget too; an unknown name is refused. The
    KL probe is 0 at the unpruned widths and positive once the residual width is cut."""
    import torch

    from snp_edge import prune
    from snp_edge.arch import Arch
    from snp_edge.criteria import DEFAULT_CRITERIA, ScoreOptions, compute_scores
    from snp_edge.errors import SnpEdgeError
    from snp_edge.models import ModelHandle
    from snp_edge.sensitivity import KLProbe, probe_images

    args = {"img_size": 32, "depth": 2}
    torch.manual_seed(0)
    handle = ModelHandle(create_model("deit_tiny_patch16_224", args), "deit_tiny_patch16_224", args)
    path = tmp_path / "table.json"
    path.write_text(json.dumps(_synthetic(handle.model, overhead_ms=1e-4)))
    common = dict(latency_table=path, calib_images=8, criteria="l1", round_to=8)
    by = {w: prune(handle, target_speedup=1.6, group_weight=w, **common) for w in ("auto", "macs")}
    assert by["auto"].recipe["target"]["group_weight"] == "fisher"
    assert by["macs"].recipe["target"]["group_weight"] == "macs"
    assert by["auto"].handle.arch != by["macs"].handle.arch
    for r in by.values():
        assert 1.6 <= r.summary["predicted_speedup"] <= 1.6 / 0.98
    gmacs = prune(handle, target_gmacs=0.6 * handle.gmacs, calib_images=8, criteria="l1")
    assert gmacs.recipe["target"]["group_weight"] == "fisher"
    with pytest.raises(SnpEdgeError, match="unknown group weight 'kl'"):
        prune(handle, target_speedup=1.6, group_weight="kl", **common)

    images = torch.randn(6, 3, 32, 32)
    scores = compute_scores(handle.model.eval(), images, ScoreOptions(criteria=dict(DEFAULT_CRITERIA)))
    probe = KLProbe(handle, scores, images, batch_size=4)
    full = arch_of(handle.model)
    assert probe(full) == pytest.approx(0.0, abs=1e-6)
    assert probe(Arch.from_dict({**full.to_dict(), "embed": 96})) > 1e-4
    probe.close()
    # forward work per probe bounded: DeiT-S 8 images, a 2-GMACs model 20, the MNIST ViTs every one up to 32
    assert [probe_images(g) for g in (4.6, 17.6, 2.0, 0.0118)] == [8, 8, 20, 32]


@pytest.mark.slow
def test_latency_allocation_stays_inside_the_table():
    """A latency table does not extrapolate below its narrowest measured widths (a DeiT-S with six FFNs of 8
    neurons was predicted 15% fast): with a latency cost no width goes under the grid's smallest, whatever the
    group weights say; the budget still lands within 2%."""


    model = _model()
    base = arch_of(model)
    macs = MacCost(**macs_constants(model))
    scores = _deit_s_scores(1)
    table = _synthetic(model)
    cost = LatencyCost(table, macs)
    floor = {c: min(table["grid"][c]) for c in ("embed", "qk", "v", "mlp")}
    assert floor["mlp"] > 8 and cost.smallest("mlp") == floor["mlp"]

    def probe(arch):  # FFNs free to cut: MAC-free worth would take them to the ladder's last step
        return (1 - arch.embed / 384) * 100 + sum(2 - (b.qk + b.v) / 64 for b in arch.blocks)

    for name, extra in (("score", {"probe": probe}), ("score", {}), ("uniform", {})):
        budget = 0.3 * total_cost(cost, base)
        arch = allocate(name, base, budget, cost, 8, scores, **extra)
        assert 0.98 * budget <= total_cost(cost, arch) <= budget
        assert arch.embed >= floor["embed"]
        assert all(b.qk >= floor["qk"] and b.v >= floor["v"] and b.mlp >= floor["mlp"] for b in arch.blocks)
    assert min(b.mlp for b in allocate("score", base, budget, cost, 8, scores, probe).blocks) == floor["mlp"]
