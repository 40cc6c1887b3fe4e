"""Sensitivity probes on a masked model: the same output as the model surgery builds, in a fraction of the time."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from snp_edge.arch import arch_of
from snp_edge.criteria.residual import output_kl, reference_log_probs
from snp_edge.models import ModelHandle, create_model
from snp_edge.sensitivity import KLProbe, MaskedViT
from snp_edge.surgery import apply_widths
from tests.host.test_allocation import _scores

ARGS = {"img_size": 32, "patch_size": 8, "depth": 4, "num_classes": 10}


def _handle() -> ModelHandle:
    torch.manual_seed(0)
    model = create_model("deit_tiny_patch16_224", ARGS)
    with torch.no_grad():  # a trained-looking spread: random biases and LayerNorm affines
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.2 * torch.randn_like(p))
            elif "qkv.weight" in name:  # peaked attention: query/key cuts matter
                p.mul_(8)
    return ModelHandle(model.eval(), "deit_tiny_patch16_224", ARGS)


def _cuts(base):
    b = base.blocks

    def block(j, **w):
        return replace(base, blocks=[replace(x, **w) if x.index == j else x for x in b])

    return {
        "residual": replace(base, embed=120),
        "qk": block(1, qk=24),
        "v": block(2, v=8),
        "mlp": block(3, mlp=200),
        "mlp to one": block(0, mlp=1),
        "heads": block(2, heads=2, qk=40),
        "block dropped": replace(base, blocks=[x for x in b if x.index != 1]),
        "everything": replace(base, embed=96, blocks=[replace(x, heads=2, qk=32, v=48, mlp=300) if x.index else
                                                      replace(x, qk=16, mlp=64) for x in b if x.index != 2]),
    }


@pytest.mark.slow
def test_masked_probe_matches_the_model_surgery_builds():
    """For cuts of every kind (residual width, query/key pairs, values, FFN neurons, heads, a dropped block,
    all at once) the masked model's logits equal the pruned model's (float32 round-off), and so does the
    probe's KL divergence, whether it runs from the images or from the cached block inputs of a base."""
    handle = _handle()
    base = replace(arch_of(handle.model), heads_kept=[])  # as the allocator's shell: heads chosen by score
    scores = _scores(base, seed=3)
    images = torch.randn(6, 3, 32, 32)
    ref = reference_log_probs(handle.model, images, 4)
    probe = KLProbe(handle, scores, images, batch_size=4)
    for name, arch in _cuts(base).items():
        pruned = apply_widths(handle, arch, scores).model.eval()
        with torch.no_grad(), MaskedViT(handle.model, scores) as masked:
            masked.set(arch)
            want = pruned(images)
            assert torch.allclose(handle.model(images), want, atol=2e-5, rtol=1e-4), name
        kl = output_kl(pruned, images, ref, 4)
        assert kl > 1e-5, name  # a cut that changes nothing would prove nothing
        assert probe(arch) == pytest.approx(kl, rel=1e-4, abs=1e-7), name
    probe.rebase(base)
    for name in ("qk", "v", "mlp", "heads"):  # start at the block cut, from the cached inputs
        arch = _cuts(base)[name]
        assert probe._start(arch) > 0
        assert probe(arch) == pytest.approx(output_kl(apply_widths(handle, arch, scores).model, images, ref, 4),
                                            rel=1e-4, abs=1e-7), name
    assert probe(base) == pytest.approx(0.0, abs=1e-6)
    probe.close()
    # the hooks are gone: the model is the unpruned one again
    assert torch.equal(handle.model(images).log_softmax(-1), torch.cat(ref))
