"""Sensitivity probes: the loss of the unpruned model cut to given widths, for the allocator's ``loss`` group
weights (:func:`snp_edge.allocation.measure_loss`).

A probe does not build the cut model. :class:`MaskedViT` holds the unpruned timm ViT with 0/1 channel masks
where surgery would remove channels (the fused ``qkv`` outputs per head, the FFN hidden neurons, the residual
stream with its LayerNorm statistics as in :class:`~snp_edge.criteria.residual.ResidualMask`, whole blocks);
its output equals the surgery-built model's (``tests/host/test_sensitivity.py``). The probes of one group
differ from a *base* (the allocator's shell) in one block only, so the inputs of every block under the base
widths are kept from one forward pass and a probe of block ``i`` runs blocks ``i`` onwards only.
"""

from __future__ import annotations

import torch
from torch import nn

from .arch import Arch, BlockArch
from .criteria import Scores
from .criteria.residual import ResidualMask, logits
from .models import ModelHandle
from .progress import bar
from .sublayers import attention_kept, mlp_kept
from .surgery import kept_in_block, top_indices

PROBE_IMAGES = (8, 32)  # fewest, most calibration images a probe runs on (the first ones)
PROBE_GMACS = 40.0  # forward work per probe, at most above the fewest images: DeiT-S (4.6 GMACs) 8 images; the
# MNIST ViTs of docs/accuracy.md (0.012 GMACs) 32 images


def probe_images(gmacs: float) -> int:
    """Calibration images per probe for a model of ``gmacs`` GMACs per image."""
    lo, hi = PROBE_IMAGES
    return max(lo, min(hi, int(PROBE_GMACS / max(gmacs, 1e-9))))


class MaskedViT:
    """Context manager: an unpruned timm ViT that computes what the model cut to an :class:`Arch` computes.

    Masks (1 kept, 0 removed; set by :meth:`set`): per block the fused ``qkv`` Linear's outputs
    (``[q heads | k heads | v heads]``, a removed head has all its q, k and v zero, so it adds nothing),
    the FFN hidden neurons (``fc2``'s inputs), the residual channels (:class:`ResidualMask`: LayerNorm
    statistics over the kept channels, as after surgery), and removed blocks pass their input through. A
    sublayer cut to zero width (:mod:`snp_edge.sublayers`) is removed: its branch's output (after its bias and
    LayerScale) is zero, so the block adds nothing for it, as the surgery-built block without it.
    The softmax scale stays the unpruned model's, as :class:`~snp_edge.attention.PrunedAttention` keeps it.
    """

    def __init__(self, model: nn.Module, scores: Scores) -> None:
        self.model, self.scores = model, scores
        E = model.patch_embed.proj.out_channels
        self.embed = torch.ones(E)
        self.qkv = [torch.ones(blk.attn.qkv.out_features) for blk in model.blocks]
        self.mlp = [torch.ones(blk.mlp.fc1.out_features) for blk in model.blocks]
        self.dropped: set[int] = set()
        self.removed: set[tuple[int, str]] = set()  # (block, "attn" | "mlp"): sublayers cut to zero width
        self.embed_kept = E  # the widths the masks hold: the residual width, and per block its BlockArch
        self.block_set: dict[int, BlockArch] = {}
        self.residual = ResidualMask(model, self.embed)
        self.handles: list = []

    def set(self, arch: Arch) -> None:
        """Masks of ``arch``'s widths (the units kept: those ``scores`` rank highest, as in surgery); only the
        residual width and the blocks whose widths differ from the previous ``set`` are computed again."""
        if arch.embed != self.embed_kept:
            self.embed.zero_()[top_indices(self.scores.embed, arch.embed)] = 1
            self.embed_kept = arch.embed
        self.dropped = set(range(len(self.model.blocks))) - set(arch.blocks_kept)
        self.removed = {(b.index, name) for b in arch.blocks
                        for name, kept in (("attn", attention_kept(b)), ("mlp", mlp_kept(b))) if not kept}
        for b in arch.blocks:
            if self.block_set.get(b.index) != b:
                self._set_block(b)

    def _set_block(self, b: BlockArch) -> None:
        keep, heads = kept_in_block(self.scores, b)
        i, attn = b.index, self.model.blocks[b.index].attn
        H = attn.num_heads  # timm's Attention (head_dim) or a pruned block's PrunedAttention (qk_dim, v_dim)
        dqk, dv = getattr(attn, "qk_dim", None) or attn.head_dim, getattr(attn, "v_dim", None) or attn.head_dim
        q, k, v = (part.view(H, -1) for part in self.qkv[i].zero_().split([H * dqk, H * dqk, H * dv]))
        for h in heads:
            q[h, keep[f"blocks.{i}.qk.{h}"]] = 1
            k[h, keep[f"blocks.{i}.qk.{h}"]] = 1
            v[h, keep[f"blocks.{i}.v.{h}"]] = 1
        self.mlp[i].zero_()[keep[f"blocks.{i}.mlp"]] = 1
        self.block_set[i] = b

    def unpruned(self) -> bool:
        """Whether the masks keep every unit (the model computes what the unpruned model computes)."""
        return not (self.embed_kept < self.embed.numel() or self.dropped or self.removed) and \
            all(bool(m.all()) for m in (*self.qkv, *self.mlp))

    def _qkv(self, i: int):
        def hook(_module, _inputs, out):
            return out * self.qkv[i]
        return hook

    def _fc2(self, i: int):
        def hook(_module, inputs):
            return (inputs[0] * self.mlp[i],)
        return hook

    def _branch(self, i: int, name: str):
        def hook(_module, _inputs, out):
            return torch.zeros_like(out) if (i, name) in self.removed else out
        return hook

    def _block(self, i: int):
        def hook(_module, inputs, out):
            return inputs[0] if i in self.dropped else out
        return hook

    def __enter__(self) -> MaskedViT:
        for i, blk in enumerate(self.model.blocks):
            self.handles += [blk.attn.qkv.register_forward_hook(self._qkv(i)),
                             blk.mlp.fc2.register_forward_pre_hook(self._fc2(i)),
                             blk.ls1.register_forward_hook(self._branch(i, "attn")),
                             blk.ls2.register_forward_hook(self._branch(i, "mlp")),
                             blk.register_forward_hook(self._block(i))]
        self.residual.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.residual.__exit__(*exc)
        for h in self.handles:
            h.remove()
        self.handles = []

    def block_inputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The input of every block (B, N, E) under the current masks, for :meth:`logits_from`."""
        return self.trace(images)[0]

    def trace(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The input of every block (B, N, E) and the logits (B, classes) of ``images`` under the current masks."""
        seen: list[torch.Tensor] = []
        handles = [blk.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0]))
                   for blk in self.model.blocks]
        try:
            out = logits(self.model, images)
        finally:
            for h in handles:
                h.remove()
        return seen, out

    def logits_from(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Logits from the input ``x`` of block ``start`` on (the blocks before it are not run)."""
        model = self.model
        for blk in model.blocks[start:]:
            x = blk(x)
        return model.forward_head(model.norm(x))


class KLProbe:
    """KL(unpruned || cut) of the class predictions on the first :func:`probe_images` of ``images``
    (N, C, H, W), mean over images, in nats, computed on a :class:`MaskedViT`.

    The unpruned model's log-probabilities are computed once. :meth:`rebase` names the widths the next probes
    each differ from in one group: the blocks' inputs under them are computed once, and a probe whose residual
    width and blocks before block ``i`` are those of the base starts at block ``i``.
    ``progress``: a bar over the probes (closed by :meth:`close`)."""

    def __init__(self, handle: ModelHandle, scores: Scores, images: torch.Tensor, batch_size: int = 16,
                 progress: bool = False) -> None:
        self.images = images[:probe_images(handle.gmacs)]
        self.batch_size = batch_size
        model = handle.model.eval()
        self.masked = MaskedViT(model, scores)
        with torch.no_grad():  # one pass: the reference, and the blocks' inputs of an unpruned base
            traces = [self.masked.trace(x) for x in self._batches()]
        self.unpruned = [inputs for inputs, _ in traces]
        self.reference = [out.log_softmax(-1) for _, out in traces]
        self.base: Arch | None = None
        self.cache: list[list[torch.Tensor]] = []  # per batch: every block's input under the base widths
        self.bar = bar(total=None, desc="sensitivity", unit="probe", disable=not progress)
        self.count = 0  # probes run

    def _batches(self) -> list[torch.Tensor]:
        return [self.images[i:i + self.batch_size] for i in range(0, len(self.images), self.batch_size)]

    @torch.no_grad()
    def rebase(self, arch: Arch) -> None:
        """Keep the blocks' inputs under ``arch``'s widths for the probes that follow."""
        self.masked.set(arch)
        if self.masked.unpruned():
            self.cache = self.unpruned
        else:
            with self.masked:
                self.cache = [self.masked.block_inputs(x) for x in self._batches()]
        self.base = arch

    def _start(self, arch: Arch) -> int:
        """The first block whose input differs from the base's under ``arch`` (0: run from the images)."""
        base = self.base
        if base is None or arch.embed != base.embed or arch.blocks_kept != base.blocks_kept:
            return 0
        return next((b.index for a, b in zip(arch.blocks, base.blocks, strict=True) if a != b), len(self.cache[0]) - 1)

    @torch.no_grad()
    def __call__(self, arch: Arch) -> float:
        start = self._start(arch)
        self.masked.set(arch)
        total = 0.0
        with self.masked:
            for j, (x, ref) in enumerate(zip(self._batches(), self.reference, strict=True)):
                out = logits(self.masked.model, x) if start == 0 else self.masked.logits_from(self.cache[j][start], start)
                total += float(torch.nn.functional.kl_div(out.log_softmax(-1), ref, log_target=True, reduction="sum"))
        self.bar.update()
        self.count += 1
        return total / len(self.images)

    def close(self) -> None:
        self.bar.close()


# ------------------------------------------------------------------------------------------ Fisher estimate

DRAWS = 2  # random-sign combinations of the classes per image: backward passes of the Fisher pass
CAL_KEPT = (0.75, 0.25)  # fractions of a group's width the calibration probes cut to (per component kind)
CAL_BLOCKS = 2  # blocks per component kind the calibration probes cut (evenly spread over the depth)
REAL_BELOW = 0.125  # a cut keeping less than this fraction of a group is probed for real where it matters (the ladder's last
# rung: a group removed down to its smallest width is where the second-order estimate is furthest off)


def _spread(n: int, k: int) -> list[int]:
    """``k`` positions evenly spread over ``range(n)`` (the middles of ``k`` equal parts), distinct."""
    return sorted({min(n - 1, int((j + 0.5) * n / k)) for j in range(k)})


class FisherProbe:
    """A :data:`~snp_edge.allocation.Probe` for group weight ``fisher``: the KL(unpruned || cut) of a cut
    that differs from the base (:meth:`rebase`) in one group, estimated from one forward and :data:`DRAWS`
    backward passes at the base, calibrated by a few real :class:`KLProbe` probes.

    At the base every kept unit ``i`` (a qkv output of a head, an FFN neuron, a residual channel) gets a 0/1
    mask ``m_i`` per image; for a class-combination ``t = sum_y sqrt(p_y) e_y log p(y|x)`` with random signs
    ``e_y`` (p: the base's predictions), ``g = dt/dm`` gives ``E_e[(g . d)^2] = d^T F d`` with ``F`` the
    Fisher information of the predictions in the masks, so removing the units ``S`` (``d = 1_S``) costs
    ``KL ~ 1/2 mean_images (sum_{i in S} g_i)^2`` (second order; the first-order term vanishes in
    expectation). Every rung of every group's ladder comes from the stored ``g``. The estimate is put on the
    measured scale per component kind (``embed``, ``qk``, ``v``, ``mlp``): the first cut of a kind after a
    rebase probes :data:`CAL_BLOCKS` of its groups at :data:`CAL_KEPT` of their widths for real; the ratio
    measured / estimated (sums over those groups) at each fraction, interpolated linearly in the fraction
    (held beyond the ends), scales every estimate of that kind. A cut that keeps less than ``real_below`` of
    its group (the ladder's last rung: a sublayer removed down to its smallest width, where the second-order
    estimate is furthest off) is estimated too but :meth:`deferred`: the allocator replaces it by a real probe
    (:meth:`exact`) for the groups whose widths reach it (:func:`snp_edge.allocation.confirm_deferred`; the
    widths are those real probes of every smallest width would give). ``progress``: a bar over the real probes."""

    def __init__(self, handle: ModelHandle, scores: Scores, images: torch.Tensor, batch_size: int = 16,
                 progress: bool = False, draws: int = DRAWS, seed: int = 0, real_below: float = REAL_BELOW) -> None:
        self.kl = KLProbe(handle, scores, images, batch_size, progress)
        self.masked = self.kl.masked
        self.draws, self.real_below = draws, real_below
        self.generator = torch.Generator().manual_seed(seed)
        self.base: Arch | None = None
        self.offset = 0.0
        self.grads: dict[str, torch.Tensor] = {}  # location -> (draws * images, units) mask gradients
        self.norm = 1.0  # the estimate's 1 / (images x draws)
        self.base_masks: dict[str, torch.Tensor] = {}
        self.ratios: dict[str, tuple[list[float], list[float]]] = {}  # kind -> (fractions, measured/estimated)

    def _masks(self) -> dict[str, torch.Tensor]:
        m = self.masked
        out = {"embed": m.embed.clone()}
        for i in range(len(m.model.blocks)):
            out[f"qkv.{i}"], out[f"mlp.{i}"] = m.qkv[i].clone(), m.mlp[i].clone()
        return out

    def rebase(self, arch: Arch) -> None:
        """Mask gradients at ``arch``'s widths (one forward, :data:`DRAWS` backward passes per batch); the
        calibration is measured again, lazily."""
        self.kl.rebase(arch)
        self.offset = self.kl(arch)
        self.masked.set(arch)
        self.base, self.base_masks, self.ratios = arch, self._masks(), {}
        grads: dict[str, list[torch.Tensor]] = {k: [] for k in self.base_masks}
        m = self.masked
        saved = m.embed, list(m.qkv), list(m.mlp)
        try:
            for x in self.kl._batches():
                B = len(x)
                leaves = {k: v.expand(B, 1, -1).clone().requires_grad_(True) for k, v in self.base_masks.items()}
                m.embed = m.residual.mask = leaves["embed"]
                m.qkv = [leaves[f"qkv.{i}"] for i in range(len(m.qkv))]
                m.mlp = [leaves[f"mlp.{i}"] for i in range(len(m.mlp))]
                with torch.enable_grad(), m:
                    logp = logits(m.model, x).log_softmax(-1)
                    weight = logp.detach().exp().sqrt()
                    for _ in range(self.draws):
                        signs = torch.randint(0, 2, logp.shape, generator=self.generator).to(logp.dtype) * 2 - 1
                        g = torch.autograd.grad((logp * weight * signs).sum(), list(leaves.values()),
                                                retain_graph=True, allow_unused=True)
                        for k, gk in zip(leaves, g, strict=True):
                            grads[k].append(torch.zeros(B, leaves[k].shape[-1]) if gk is None else gk[:, 0])
        finally:
            m.embed, m.qkv, m.mlp = saved
            m.residual.mask = m.embed
        self.grads = {k: torch.cat(v).double() for k, v in grads.items()}
        self.norm = 1.0 / (len(self.kl.images) * self.draws)

    def estimate(self, arch: Arch) -> float:
        """The uncalibrated second-order KL of ``arch`` against the base (nats, mean over images)."""
        self.masked.set(arch)
        masks = self._masks()
        total = 0.0
        for k, g in self.grads.items():
            d = (self.base_masks[k] - masks[k]).clamp_min(0).double()
            if bool(d.any()):
                total = total + g @ d
        return 0.0 if isinstance(total, float) else 0.5 * self.norm * float((total ** 2).sum())

    def _kind(self, arch: Arch) -> tuple[str, int | None, float]:
        """(component, block position or None, kept fraction) of the one group ``arch`` cuts from the base."""
        base = self.base
        if arch.embed != base.embed:
            return "embed", None, arch.embed / base.embed
        for pos, (a, b) in enumerate(zip(arch.blocks, base.blocks, strict=True)):
            for comp in ("qk", "v", "mlp"):
                if getattr(a, comp) != getattr(b, comp):
                    return comp, pos, getattr(a, comp) / getattr(b, comp)
        return "none", None, 1.0

    def _calibrate(self, comp: str) -> tuple[list[float], list[float]]:
        from dataclasses import replace

        base = self.base
        positions = [None] if comp == "embed" else _spread(len(base.blocks), CAL_BLOCKS)
        fractions, ratios = [], []
        for f in sorted(CAL_KEPT):
            measured = estimated = 0.0
            for pos in positions:
                if pos is None:
                    arch = replace(base, embed=max(1, int(base.embed * f)))
                else:
                    blocks = list(base.blocks)
                    blocks[pos] = replace(blocks[pos], **{comp: max(1, int(getattr(blocks[pos], comp) * f))})
                    arch = replace(base, blocks=blocks)
                measured += max(self.kl(arch) - self.offset, 0.0)
                estimated += self.estimate(arch)
            if estimated > 0:
                fractions.append(f)
                ratios.append(measured / estimated)
        if not ratios:
            fractions, ratios = [1.0], [1.0]
        self.ratios[comp] = fractions, ratios
        return fractions, ratios

    def scale(self, comp: str, fraction: float) -> float:
        """measured / estimated for ``comp`` at kept ``fraction`` (calibrated on first use after a rebase)."""
        fs, rs = self.ratios.get(comp) or self._calibrate(comp)
        if fraction <= fs[0]:
            return rs[0]
        if fraction >= fs[-1]:
            return rs[-1]
        j = next(j for j in range(1, len(fs)) if fraction <= fs[j])
        return rs[j - 1] + (rs[j] - rs[j - 1]) * (fraction - fs[j - 1]) / (fs[j] - fs[j - 1])

    def __call__(self, arch: Arch) -> float:
        if self.base is None:
            self.rebase(arch)
        comp, _pos, fraction = self._kind(arch)
        if comp == "none":
            return self.offset
        return self.offset + self.estimate(arch) * self.scale(comp, fraction)

    def deferred(self, arch: Arch) -> bool:
        """Whether the value of ``arch`` (one group cut from the base) is an estimate that a real probe
        (:meth:`exact`) should replace where it matters: a cut keeping less than ``real_below`` of its group.
        The allocator probes those only for the groups whose widths reach them
        (:func:`snp_edge.allocation.score_driven`)."""
        if self.base is None:
            return False
        comp, _pos, fraction = self._kind(arch)
        return comp != "none" and fraction < self.real_below

    def exact(self, arch: Arch) -> float:
        """The measured KL(unpruned || cut) of ``arch`` (a real :class:`KLProbe` probe)."""
        return self.kl(arch)

    def close(self) -> None:
        self.kl.close()


PROBES = {"loss": KLProbe, "fisher": FisherProbe}  # group weight -> the Probe that measures it (the others: none)
