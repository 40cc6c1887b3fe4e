"""Group weight ``fisher``: every rung of every group's ladder estimated from one Fisher pass at the base,
put on the measured scale by a few real probes (``snp_edge.sensitivity.FisherProbe``)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from snp_edge.arch import arch_of
from snp_edge.models import ModelHandle, create_model
from snp_edge.sensitivity import CAL_BLOCKS, CAL_KEPT, FisherProbe, KLProbe
from tests.host.test_allocation import _scores

ARGS = {"img_size": 32, "patch_size": 8, "depth": 2, "num_classes": 10}


def _handle() -> ModelHandle:
    """A 2-block ViT with a trained-looking spread (as tests/host/test_sensitivity.py's, shallower)."""
    torch.manual_seed(0)
    model = create_model("deit_tiny_patch16_224", ARGS)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.2 * torch.randn_like(p))
            elif "qkv.weight" in name:
                p.mul_(8)
    return ModelHandle(model.eval(), "deit_tiny_patch16_224", ARGS)


def _cut(base, pos: int, **widths):
    return replace(base, blocks=[replace(b, **widths) if j == pos else b for j, b in enumerate(base.blocks)])


def test_every_measured_group_weight_has_its_probe():
    from snp_edge.allocation import GROUP_WEIGHTS, MEASURED
    from snp_edge.sensitivity import PROBES

    assert set(PROBES) == set(MEASURED) and set(MEASURED) <= set(GROUP_WEIGHTS)


def test_fisher_estimate_matches_small_cuts_and_is_calibrated_on_the_measured_scale():
    handle = _handle()
    base = replace(arch_of(handle.model), heads_kept=[])
    scores = _scores(base, seed=3)
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    kl = KLProbe(handle, scores, images, batch_size=8)
    kl.rebase(base)
    fisher = FisherProbe(handle, scores, images, batch_size=8, draws=16)
    fisher.rebase(base)
    masked = fisher.masked
    assert masked.residual.mask is masked.embed and masked.embed.requires_grad is False  # masks restored
    assert fisher(base) == pytest.approx(0.0, abs=1e-6) and fisher.estimate(base) == 0.0
    # second order: one FFN neuron or one value neuron per head removed, estimate near the measured KL
    for pos in (0, len(base.blocks) - 1):
        for comp, width in (("mlp", base.mlp - 1), ("v", base.head_dim - 1)):
            arch = _cut(base, pos, **{comp: width})
            real, est = kl(arch), fisher.estimate(arch)
            assert real > 1e-7, (comp, pos)
            assert 0.5 < est / real < 2.0, (comp, pos, real, est)
    # the residual width is one group: at the calibration fractions the calibrated estimate is the probe's;
    # a cut to its smallest width is an estimate the allocator replaces by a real probe where it matters
    for f in CAL_KEPT:
        arch = replace(base, embed=int(base.embed * f))
        assert fisher(arch) == pytest.approx(kl(arch), rel=1e-6), f
        assert not fisher.deferred(arch)
    smallest = replace(base, embed=1)
    assert fisher.deferred(smallest) and not fisher.deferred(base)
    assert fisher(smallest) > 0 and fisher.exact(smallest) == pytest.approx(kl(smallest), rel=1e-6)
    # estimates grow with the cut once calibrated (every kind scaled by a positive ratio)
    for comp in ("qk", "v", "mlp"):
        width = getattr(base.blocks[0], comp)
        assert fisher(_cut(base, 1, **{comp: width // 2})) > 0
        assert all(r > 0 for r in fisher.ratios[comp][1])
    fisher.close()
    kl.close()
    with torch.no_grad():  # the hooks are gone: the unpruned model again
        assert torch.equal(handle.model(images).log_softmax(-1), torch.cat(kl.reference))


def test_prune_with_fisher_weights_lands_on_budget_with_few_real_probes(monkeypatch):
    from snp_edge import sensitivity
    from snp_edge.api import prune

    counts = {}
    real_init = sensitivity.FisherProbe.__init__

    def init(self, *args, **kw):
        real_init(self, *args, **kw)
        counts["probe"] = self

    monkeypatch.setattr(sensitivity.FisherProbe, "__init__", init)
    handle = _handle()
    result = prune(handle, target_gmacs=handle.gmacs * 0.4, criteria="l1", calib_images=8, group_weight="fisher")
    assert result.recipe["target"]["group_weight"] == "fisher"
    assert 0.98 * 0.4 * handle.gmacs <= result.handle.gmacs <= 0.4 * handle.gmacs
    groups = 1 + 3 * len(handle.model.blocks)
    # the base, per kind its calibration cuts, the smallest rungs of the groups the widths reach; loss: 1 + 5
    # per group
    per_base = 1 + len(CAL_KEPT) * (1 + 3 * CAL_BLOCKS) + groups
    assert 0 < counts["probe"].kl.count <= 2 * per_base < 2 * (1 + 5 * groups)
