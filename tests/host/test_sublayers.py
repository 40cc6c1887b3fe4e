"""Sublayers pruned to zero width (issue 21): an FFN or an attention removed as a whole, with no kernels left
(module tree, state_dict, ONNX), counted as nothing (MACs, latency table), probed exactly by the masked model,
saved and loaded, and chosen by the allocator where the measured loss says it is free."""

from __future__ import annotations

import copy
from dataclasses import replace

import onnx
import pytest
import torch

from snp_edge import prune
from snp_edge.allocation import PROBE_KEPT, MacCost, _groups, _removal_probes, allocate, ladder, total_cost
from snp_edge.arch import Arch, arch_of, canonical, check_arch
from snp_edge.errors import SnpEdgeError
from snp_edge.macs import block_macs, count_macs, macs_constants, predict_macs
from snp_edge.saved import load_pruned_handle, save_pruned
from snp_edge.sensitivity import MaskedViT
from snp_edge.sublayers import SublayerBlock, removed_sublayers
from snp_edge.summary import format_summary, summarize
from snp_edge.surgery import apply_widths
from tests.host.test_allocation import _scores
from tests.host.test_sensitivity import ARGS, _handle
from tests.host.test_targets import _base


def _cut(base: Arch, **per_block) -> Arch:
    """``base`` with block ``j``'s widths replaced as ``b<j>={...}`` says."""
    return replace(base, blocks=[replace(b, **per_block.get(f"b{b.index}", {})) for b in base.blocks])


@pytest.fixture(scope="module")
def tiny():
    handle = _handle()
    base = replace(arch_of(handle.model), heads_kept=[])
    return handle, base, _scores(base, seed=3), torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_a_removed_sublayer_equals_its_branch_zeroed(tiny):
    """A model with block 1's FFN and block 2's attention removed computes what the unpruned model computes with
    block 1's fc2 and block 2's proj weights and biases zeroed (the branch then adds exactly nothing); the
    removed branches have no modules and no parameters."""
    handle, base, scores, images = tiny
    arch = _cut(base, b1={"mlp": 0}, b2={"heads": 0, "qk": 0, "v": 0})
    pruned = apply_widths(handle, arch, scores).model
    zeroed = copy.deepcopy(handle.model)
    with torch.no_grad():
        for layer in (zeroed.blocks[1].mlp.fc2, zeroed.blocks[2].attn.proj):
            layer.weight.zero_()
            layer.bias.zero_()
        want, got = zeroed(images), pruned(images)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, handle.model(images), atol=1e-3)  # the branches did matter
    assert isinstance(pruned.blocks[1], SublayerBlock) and type(pruned.blocks[0]) is not SublayerBlock
    assert removed_sublayers(pruned) == ["blocks.1.mlp", "blocks.2.attn"]
    names = set(pruned.state_dict())
    assert not any(n.startswith(("blocks.1.mlp.", "blocks.1.norm2.", "blocks.2.attn.", "blocks.2.norm1."))
                   for n in names)
    assert "blocks.1.attn.qkv.weight" in names and "blocks.2.mlp.fc1.weight" in names
    assert arch_of(pruned).blocks[1].mlp == 0 and arch_of(pruned).blocks[2].heads == 0


def test_macs_count_nothing_for_a_removed_sublayer(tiny):
    """torch's FLOP counter on the built model equals the formula, which drops exactly the branch's terms."""
    handle, base, scores, _ = tiny
    consts = macs_constants(handle.model)
    N, E, d, H, M = consts["tokens"], base.embed, base.head_dim, base.num_heads, base.mlp
    arch = _cut(base, b1={"mlp": 0}, b3={"heads": 0, "qk": 0, "v": 0, "mlp": 100})
    pruned = apply_widths(handle, arch, scores).model
    full = predict_macs(base, **consts)
    attn = N * E * H * 3 * d + N * N * H * 2 * d + N * H * d * E
    assert count_macs(pruned) == predict_macs(arch, **consts) == full - 2 * N * E * M - attn - 2 * N * E * (M - 100)
    # the allocator's intermediate form (values 0, heads kept) costs the same as the canonical one
    b = replace(base.blocks[0], v=0)
    assert block_macs(E, b, N) == block_macs(E, canonical(replace(base, blocks=[b])).blocks[0], N) == 2 * N * E * M


@pytest.mark.slow
def test_masked_probe_removes_the_branch_as_surgery_does(tiny):
    """MaskedViT with a sublayer cut to zero width (canonical, or values alone at 0 as the allocator's walk
    writes it) gives the logits of the surgery-built model."""
    handle, base, scores, images = tiny
    cases = {"ffn": _cut(base, b0={"mlp": 0}), "attention": _cut(base, b3={"heads": 0, "qk": 0, "v": 0}),
             "values at 0": _cut(base, b2={"v": 0, "qk": 40}),
             "both, and cuts": _cut(base, b1={"heads": 0, "qk": 0, "v": 0, "mlp": 0}, b2={"mlp": 300, "qk": 16})}
    for name, arch in cases.items():
        with torch.no_grad():
            pruned = apply_widths(handle, arch, scores).model
            with MaskedViT(handle.model, scores) as masked:
                masked.set(arch)
                got = handle.model(images)
            assert torch.allclose(got, pruned(images), atol=2e-5, rtol=1e-4), name
    assert len(apply_widths(handle, cases["both, and cuts"], scores).model.blocks) == 3  # the empty block dropped


@pytest.mark.slow
def test_saved_model_round_trip_and_old_json(tiny, tmp_path):
    """A model with removed sublayers saves as safetensors + JSON (widths 0) and loads to the same logits; an
    arch written before zero widths existed still loads; a half-removed attention is refused by name."""
    handle, base, scores, images = tiny
    pruned = apply_widths(handle, _cut(base, b1={"mlp": 0}, b2={"heads": 0, "qk": 0, "v": 0}), scores)
    save_pruned(pruned, tmp_path / "m")
    again = load_pruned_handle(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(again.model(images), pruned.model(images))
    assert removed_sublayers(again.model) == ["blocks.1.mlp", "blocks.2.attn"]
    with pytest.raises(SnpEdgeError, match=r"sublayers removed \(blocks.1.mlp, blocks.2.attn\); it cannot be pruned"):
        prune(again, target_gmacs=0.5 * again.gmacs)
    text = format_summary(summarize(again, before=handle))
    assert "    1      3       64      64     0  (FFN removed)" in text and "(attention removed)" in text
    old = {"embed": 192, "blocks": [{"index": i, "heads": 3, "qk": 64, "v": 32, "mlp": 500} for i in (0, 1, 3)],
           "head_dim": 64, "depth": 4, "num_heads": 3, "mlp": 768, "embed_orig": 192,
           "heads_kept": [[0, 1, 2]] * 3}
    check_arch(Arch.from_dict(old), base)
    with pytest.raises(SnpEdgeError, match=r"arch.blocks\[1\]: expected heads, qk and v all above 0, or all 0"):
        check_arch(_cut(base, b1={"heads": 0}), base)


@pytest.mark.slow
def test_removed_sublayers_export_without_their_kernels(tiny, tmp_path):
    """The ONNX of a model with one FFN and one attention removed has 2 + 2 fewer Gemm (fc1, fc2; qkv, proj)
    and 2 fewer activation MatMuls, passes the parity gate and the TensorRT 8.2 op check."""
    from export.onnx_export import export_onnx

    handle, base, scores, _ = tiny
    pruned = apply_widths(handle, _cut(base, b1={"mlp": 0}, b2={"heads": 0, "qk": 0, "v": 0}), scores)
    full = apply_widths(handle, base, scores)
    cut, whole = export_onnx(pruned, tmp_path / "cut.onnx"), export_onnx(full, tmp_path / "full.onnx")
    assert cut.ops["Gemm"] == whole.ops["Gemm"] - 4 and cut.ops["MatMul"] == whole.ops["MatMul"] - 2
    assert max(p.max_abs for p in cut.parity) <= 1e-4 and len(cut.attention) == len(base.blocks) - 1
    names = [n.name for n in onnx.load(tmp_path / "cut.onnx").graph.node]
    assert not any("blocks.1/mlp" in n or "blocks.2/attn" in n for n in names)


def test_ladder_ends_at_zero_and_probes_the_removal():
    """With zero widths the FFN and value ladders end at 0 (a latency table's narrowest width bounds the others
    only), and measure_loss probes the narrowest width and 0 beside the kept fractions."""
    assert ladder(64, 8, zero=True) == [64, 56, 48, 40, 32, 24, 16, 8, 0] and ladder(5, 1, zero=True)[-2:] == [1, 0]
    base, _ = _base("deit_tiny_patch16_224")
    groups = _groups(base, _scores(base), 8, zero=True)
    ends = {(g.comp, g.widths[-1]) for g in groups}
    assert ends == {("embed", 8), ("qk", 8), ("v", 0), ("mlp", 0)}
    v = next(g for g in groups if g.comp == "v")
    assert _removal_probes(v) == {len(v.widths) - 2, len(v.widths) - 1} and len(PROBE_KEPT) == 5


def test_allocator_removes_only_what_the_loss_says_is_free():
    """A probe under which block 5's FFN is free to cut: at a budget one FFN below the model, with zero widths
    the allocator removes that FFN (and nothing else); without them it keeps neurons of it and must cut
    elsewhere. A probe under which removing an attention is free: that block's attention goes."""
    base, consts = _base("deit_small_patch16_224")
    macs, scores = MacCost(**consts), _scores(base)
    N, E = consts["tokens"], base.embed

    def probe_for(free):
        def probe(arch):
            loss = 0.0
            for b in arch.blocks:
                full = base.blocks[b.index]
                for c in ("qk", "v", "mlp"):
                    w = 0 if c in ("qk", "v") and b.v == 0 else getattr(b, c)
                    loss += (0.0 if (b.index, c) in free else 1.0) * (1 - w / getattr(full, c))
            return loss + 5.0 * (1 - arch.embed / base.embed)
        return probe

    budget = total_cost(macs, base) - 2 * N * E * base.mlp
    arch = allocate("score", base, budget, macs, 8, scores, probe_for({(5, "mlp")}), sublayers=True)
    assert arch.blocks[5].mlp == 0 and all(b == base.blocks[b.index] for b in arch.blocks if b.index != 5)
    kept = allocate("score", base, budget, macs, 8, scores, probe_for({(5, "mlp")}))
    assert kept.blocks[5].mlp >= 8 and (kept.embed < base.embed or
                                        any(b != base.blocks[b.index] for b in kept.blocks if b.index != 5))
    attn = block_macs(E, base.blocks[0], N) - 2 * N * E * base.mlp
    free = {(7, "qk"), (7, "v")}
    arch = allocate("score", base, total_cost(macs, base) - attn, macs, 8, scores, probe_for(free), sublayers=True)
    assert (arch.blocks[7].heads, arch.blocks[7].qk, arch.blocks[7].v) == (0, 0, 0)


@pytest.mark.slow
def test_prune_removes_a_dead_ffn():
    """End to end (``prune --target-gmacs``, measured loss by default): a ViT whose block 2 FFN has zero fc2
    weights and bias, pruned to its MACs less one FFN, comes out with that FFN removed and the same logits."""
    handle = _handle()
    with torch.no_grad():
        handle.model.blocks[2].mlp.fc2.weight.zero_()
        handle.model.blocks[2].mlp.fc2.bias.zero_()
    consts = macs_constants(handle.model)
    base = arch_of(handle.model)
    target = (predict_macs(base, **consts) - 2 * consts["tokens"] * base.embed * base.mlp) / 1e9
    result = prune(handle, target_gmacs=target, calib_images=16)
    widths = Arch.from_dict(result.handle.arch)
    assert widths.blocks[2].mlp == 0 and removed_sublayers(result.handle.model) == ["blocks.2.mlp"]
    images = torch.randn(4, 3, ARGS["img_size"], ARGS["img_size"])
    with torch.no_grad():
        assert torch.allclose(result.handle.model(images), handle.model(images), atol=1e-5)


@pytest.mark.slow
def test_bundle_of_a_model_with_removed_sublayers_verifies_on_the_device_code(tiny, tmp_path):
    """A Jetson Nano bundle (opset 13, TensorRT 8.2 op rules) of a model with an FFN and an attention removed
    passes the device code's verify on ONNX Runtime (golden outputs, top-k)."""
    from snp_edge.engines.cli import main as engines_main
    from snp_edge.export.bundle import check_bundle, make_bundle

    handle, base, scores, _ = tiny
    pruned = apply_widths(handle, _cut(base, b0={"mlp": 0}, b3={"heads": 0, "qk": 0, "v": 0}), scores)
    out = make_bundle(pruned, "jetson-nano", tmp_path / "b")
    assert check_bundle(out)["onnx"]["opset"] == 13
    assert engines_main(["verify", str(out), "--backend", "onnxruntime", "--json-file", str(tmp_path / "v.json")]) == 0


def test_latency_table_counts_a_removed_sublayer_as_nothing():
    """A latency table predicts a removed FFN or attention at 0 ms (not an extrapolation of its grid below the
    narrowest width measured): a block's cost loses exactly that term; the allocator's latency cost agrees."""
    from snp_edge.engines import latency_table as lt

    from snp_edge.latency import LatencyCost, predict_ms
    from tests.host.test_latency import _model, _synthetic

    model = _model()
    table, base = _synthetic(model), arch_of(model)
    cost = LatencyCost(table, MacCost(**macs_constants(model)))
    E, b = base.embed, base.blocks[0]
    attn = lt.term_ms(table, "attn", {"embed": E, "heads": b.heads, "qk": b.qk, "v": b.v})
    mlp = lt.term_ms(table, "mlp", {"embed": E, "mlp": b.mlp})
    assert lt.term_ms(table, "mlp", {"embed": E, "mlp": 0}) > 0  # what extrapolating would have charged
    assert cost.block(E, replace(b, mlp=0)) == pytest.approx(lt.factor(table) * attn)
    assert cost.block(E, replace(b, heads=0, qk=0, v=0)) == pytest.approx(lt.factor(table) * mlp)
    assert cost.block(E, replace(b, v=0)) == cost.block(E, replace(b, heads=0, qk=0, v=0))
    cut = _cut(base, b4={"mlp": 0}, b7={"heads": 0, "qk": 0, "v": 0})
    assert predict_ms(table, base) - predict_ms(table, cut) == pytest.approx(lt.factor(table) * (attn + mlp))


def test_keep_sublayers_flag_reaches_the_spec():
    """``prune --keep-sublayers`` turns zero widths off; by default they are on."""
    from snp_edge.cli import build_parser
    from snp_edge.cli.args import prune_spec

    argv = ["prune", "--model", "deit_tiny_patch16_224", "--target-gmacs", "0.5", "--out", "x"]
    assert prune_spec(build_parser().parse_args(argv)).scoring.sublayers is True
    assert prune_spec(build_parser().parse_args([*argv, "--keep-sublayers"])).scoring.sublayers is False
