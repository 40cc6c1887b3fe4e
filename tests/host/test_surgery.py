"""Surgery produces real smaller dense models that compute what they should."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from snp_edge.arch import arch_of
from snp_edge.attention import PrunedAttention
from snp_edge.criteria import COMPONENTS, ScoreOptions, compute_scores
from snp_edge.groups import find_groups
from snp_edge.macs import count_macs, macs_constants, predict_macs
from snp_edge.models import ModelHandle
from snp_edge.surgery import prune_model
from snp_edge.targets import arch_from_config, load_preset


def _l1() -> ScoreOptions:
    return ScoreOptions(dict.fromkeys(COMPONENTS, "l1"))


def test_groups_cover_every_prunable_dimension(tiny_handle):
    """Every parameter dimension of residual, head or FFN size belongs to a group (none is forgotten)."""
    model = tiny_handle.model
    covered = {(s.param, s.dim) for g in find_groups(model) for s in g.slices}
    arch = arch_of(model)
    prunable = {arch.embed, arch.mlp, 3 * arch.embed}
    for name, p in model.named_parameters():
        for dim, size in enumerate(p.shape):
            if name == "pos_embed" and dim == 1:
                continue  # token count
            if size in prunable:
                assert (name, dim) in covered, f"{name} dim {dim} is not in any group"


def test_removing_dead_neurons_is_exact(tiny_handle, tiny_inputs):
    """Neurons that contribute nothing (zeroed weights) are removed by l1 and the logits do not move."""
    handle = copy.deepcopy(tiny_handle)
    model = handle.model
    D, dh = 192, 64
    with torch.no_grad():
        for blk in model.blocks:
            w, b = blk.attn.qkv.weight, blk.attn.qkv.bias
            for h in range(3):
                dead = torch.arange(h * dh, h * dh + 8)
                for rows in (dead, D + dead, 2 * D + dead):  # q and k pairs, and v rows
                    w[rows] = 0
                    b[rows] = 0
            blk.mlp.fc1.weight[:32] = 0
            blk.mlp.fc1.bias[:32] = 0
        ref = model(tiny_inputs)
    arch = arch_from_config({"qk": dh - 8, "v": dh - 8, "mlp": 768 - 32}, arch_of(model))
    pruned = prune_model(handle, arch, None, _l1())
    with torch.no_grad():
        out = pruned.model(tiny_inputs)
    assert (out - ref).abs().max().item() < 1e-5
    attn = pruned.model.blocks[0].attn
    assert attn.qkv.weight.shape == (3 * (2 * 56 + 56), 192) and attn.proj.weight.shape == (192, 3 * 56)


def test_preset_widths_differ_per_layer(tiny_handle):
    arch = arch_from_config(load_preset("deit_t_0.6g"), arch_of(tiny_handle.model))
    pruned = prune_model(tiny_handle, arch, None, _l1()).model
    cfg = load_preset("deit_t_0.6g")
    for i, blk in enumerate(pruned.blocks):
        attn = blk.attn
        assert isinstance(attn, PrunedAttention)
        assert (attn.qk_dim, attn.v_dim, blk.mlp.fc1.out_features) == (cfg["qk"][i], cfg["v"][i], cfg["mlp"][i])
        assert attn.qkv.weight.shape == (3 * (2 * cfg["qk"][i] + cfg["v"][i]), cfg["embed"])
        assert attn.proj.weight.shape == (cfg["embed"], 3 * cfg["v"][i])
        assert attn.scale == pytest.approx(64 ** -0.5)
    assert pruned.patch_embed.proj.out_channels == cfg["embed"] == pruned.pos_embed.shape[-1]
    assert pruned.head.in_features == cfg["embed"]
    assert count_macs(pruned) == predict_macs(arch, **macs_constants(pruned))


def test_head_pruning_keeps_best_heads(tiny_handle, tiny_inputs):
    base = arch_of(tiny_handle.model)
    arch = arch_from_config({"heads": 2, "qk": 32}, base)
    opts = ScoreOptions()
    pruned = prune_model(tiny_handle, arch, _calib(tiny_inputs), opts)
    scores = compute_scores(tiny_handle.model, tiny_inputs, opts)
    for i, blk in enumerate(pruned.model.blocks):
        assert blk.attn.num_heads == 2 and blk.attn.qk_dim == 32 and blk.attn.v_dim == 64
        assert pruned.arch["heads_kept"][i] == sorted(scores.heads[i].argsort(descending=True)[:2].tolist())
    assert count_macs(pruned.model) == predict_macs(arch, **macs_constants(pruned.model))
    assert pruned.model(tiny_inputs).shape == (4, 1000)


def test_block_pruning_equals_skipping_blocks(tiny_handle, tiny_inputs):
    arch = arch_from_config({"drop_blocks": [3, 7]}, arch_of(tiny_handle.model))
    pruned = prune_model(tiny_handle, arch, None, _l1())
    ref = copy.deepcopy(tiny_handle.model)
    ref.blocks = nn.Sequential(*[b for i, b in enumerate(ref.blocks) if i not in (3, 7)])
    with torch.no_grad():
        assert (pruned.model(tiny_inputs) - ref(tiny_inputs)).abs().max().item() < 1e-5
    assert pruned.arch["blocks"][3]["index"] == 4 and len(pruned.model.blocks) == 10


def test_drop_blocks_by_criterion(tiny_handle, tiny_inputs):
    opts = ScoreOptions()
    pruned = prune_model(tiny_handle, arch_of(tiny_handle.model), _calib(tiny_inputs), opts, drop_blocks=3)
    scores = compute_scores(tiny_handle.model, tiny_inputs, opts)
    dropped = set(range(12)) - {b["index"] for b in pruned.arch["blocks"]}
    assert dropped == set(scores.blocks.argsort()[:3].tolist())


def test_snp_combined_with_heads_and_blocks(tiny_handle, tiny_inputs):
    arch = arch_from_config({"embed": 160, "heads": 2, "qk": 24, "v": 40, "mlp": 512, "drop_blocks": [11]},
                            arch_of(tiny_handle.model))
    pruned = prune_model(tiny_handle, arch, _calib(tiny_inputs), ScoreOptions())
    assert pruned.model(tiny_inputs).shape == (4, 1000)
    assert count_macs(pruned.model) == predict_macs(arch, **macs_constants(pruned.model))
    assert pruned.params < tiny_handle.params / 2


def _calib(images):
    from snp_edge.calib import Calibration

    return Calibration(images, "test")


def test_pruned_model_is_not_pruned_twice(tiny_handle):
    pruned = prune_model(tiny_handle, arch_of(tiny_handle.model), None, _l1())
    with pytest.raises(Exception, match="already pruned"):
        prune_model(ModelHandle(pruned.model, "deit_tiny_patch16_224", arch=pruned.arch), pruned.arch, None, _l1())
