"""Fine-tuning options as plain data (no torch): the command line reads its defaults from here."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..errors import SnpEdgeError

KD_KINDS = ("none", "soft", "hard")
AMP_CHOICES = ("auto", "off", "fp16", "bf16")


@dataclass
class AugConfig:
    """Training augmentation (the DeiT recipe by default); every piece can be switched off.

    ``auto_augment`` is a timm RandAugment string or None; ``re_prob`` is the random-erasing
    probability; ``scale``/``ratio`` drive RandomResizedCrop; ``hflip`` is the flip probability.
    """

    auto_augment: str | None = "rand-m9-mstd0.5-inc1"
    re_prob: float = 0.25
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    color_jitter: float = 0.3
    no_aug: bool = False  # eval-style resize + centre crop for training too


@dataclass
class FinetuneConfig:
    """The DeiT recipe (defaults) plus distillation; every augmentation and regulariser can be turned off.

    ``batch_size`` is per process; the global batch is ``batch_size * world_size * accum_steps``.
    ``lr=None`` means DeiT's linear scaling, 5e-4 * global_batch / 512. Epoch counts are in passes over
    the training split (or ``steps_per_epoch`` optimizer steps when that cap is set).
    """

    epochs: int = 30
    batch_size: int = 64
    accum_steps: int = 1
    lr: float | None = None
    min_lr: float = 1e-5
    warmup_lr: float = 1e-6
    warmup_epochs: int = 5
    weight_decay: float = 0.05
    opt: str = "adamw"
    sched: str = "cosine"
    smoothing: float = 0.1
    mixup: float = 0.8
    cutmix: float = 1.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    aug: AugConfig = field(default_factory=AugConfig)
    drop_path: float = 0.1
    model_ema: bool = False
    ema_decay: float = 0.99996
    distill: str = "soft"
    distill_alpha: float = 0.5
    distill_tau: float = 1.0
    amp: str = "auto"
    clip_grad: float | None = None
    workers: int = 2
    seed: int = 0
    eval_batch_size: int | None = None
    steps_per_epoch: int | None = None
    progress: bool = True

    def check(self) -> None:
        positive = {"epochs": self.epochs, "batch-size": self.batch_size, "accum-steps": self.accum_steps}
        for name, value in positive.items():
            if value < 1:
                raise SnpEdgeError(f"--{name} must be >= 1, got {value}")
        if self.distill not in KD_KINDS:
            raise SnpEdgeError(f"unknown --distill {self.distill!r}; use one of {', '.join(KD_KINDS)}")
        if self.amp not in AMP_CHOICES:
            raise SnpEdgeError(f"unknown --amp {self.amp!r}; use one of {', '.join(AMP_CHOICES)}")
        if not 0 <= self.distill_alpha <= 1:
            raise SnpEdgeError(f"--distill-alpha must be in [0, 1], got {self.distill_alpha}")
        if self.mixup_active and self.batch_size % 2:
            raise SnpEdgeError(f"mixup/cutmix need an even per-process --batch-size, got {self.batch_size}")

    @property
    def mixup_active(self) -> bool:
        return (self.mixup > 0 or self.cutmix > 0) and self.mixup_prob > 0

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))
