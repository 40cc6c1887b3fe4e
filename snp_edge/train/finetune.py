"""Distillation fine-tuning with the DeiT recipe, in one process or many (torchrun + DistributedDataParallel).

Output folder::

    OUT/checkpoint.pt   resumable state after the last finished epoch (atomic: temporary file, then rename)
    OUT/log.jsonl       one JSON line per epoch: loss, val top-1/top-5, learning rate, throughput
    OUT/config.json     the training configuration
    OUT/last/ OUT/best/ the last and best (val top-1) models: the pruned-model format for pruned models
                        (model.safetensors + model.json, export takes them directly), a state_dict
                        ``model.safetensors`` for unpruned timm models (load it with ``--weights``)

Determinism: every epoch reseeds Python, NumPy and torch from (seed, epoch, rank) and the sampler's
permutation depends on (seed, epoch) only, so a run resumed from an epoch checkpoint reproduces the
uninterrupted run, and N processes of batch B/N follow one process of batch B (up to float reductions).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file
from timm.data import Mixup
from timm.layers import DropPath
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..engines.common.fileio import Output, write_text_atomic
from ..errors import SnpEdgeError, first_line
from ..models import ModelHandle
from ..progress import bar as progress_bar
from ..saved import save_pruned
from .checkpoint import CHECKPOINT_FILE, load_checkpoint, model_identity, save_checkpoint
from .config import AMP_CHOICES, KD_KINDS, AugConfig, FinetuneConfig  # noqa: F401 (re-exported)
from .data import GeneratedData, eval_loader, eval_transform, load_split, train_loader, train_transform
from .distill import DistillationLoss
from .evaluate import evaluate, torch_predictor

LOG_FILE = "log.jsonl"


@dataclass
class DistInfo:
    """This process's place in the job: world size, global rank, local rank, device."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the torchrun job described by WORLD_SIZE/RANK/LOCAL_RANK (NCCL on GPUs, gloo on CPU), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world == 1:
        return DistInfo(device=device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistInfo(world, rank, local_rank, device, owns)


def seed_all(seed: int, epoch: int, rank: int) -> None:
    """Reseed Python, NumPy and torch for one epoch of one process."""
    s = (seed * 1_000_003 + epoch * 1_009 + rank) % 2**31
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def set_drop_path(model: nn.Module, rate: float) -> None:
    """Stochastic depth rising linearly from 0 to ``rate`` over the blocks (timm's schedule)."""
    depth = len(model.blocks)
    for i, blk in enumerate(model.blocks):
        r = rate * i / max(depth - 1, 1)
        for name in ("drop_path1", "drop_path2"):
            if hasattr(blk, name):
                setattr(blk, name, DropPath(r) if r > 0 else nn.Identity())


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if mode == "fp16" else torch.bfloat16


def save_model(handle: ModelHandle, model: nn.Module, out: Path, extra: dict) -> None:
    """``model`` (weights of ``handle``'s shape) to folder ``out``, replacing it atomically."""
    model = copy.deepcopy(model).cpu().eval()
    set_drop_path(model, 0.0)
    if handle.arch is not None:
        saved = ModelHandle(model, handle.base_model, handle.model_args, handle.weights, accuracy_meaningful=True,
                            notice=None, arch=handle.arch)
        save_pruned(saved, out, extra=extra, force=True)
        return
    with Output(out, force=True, kind="dir") as output:
        tmp = Path(output.stage())
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"base_model": handle.base_model})
        desc = {"base_model": handle.base_model, "model_args": handle.model_args, **extra}
        (tmp / "train.json").write_text(json.dumps(desc, indent=2) + "\n")
        output.publish()


def _read_log(path: Path, before_epoch: int) -> list[dict]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("epoch", 0) < before_epoch]


def finetune(handle: ModelHandle, data: str | Path | GeneratedData, out: str | Path, cfg: FinetuneConfig,
             teacher: nn.Module | None = None, resume: str | Path | None = None, force: bool = False,
             extra: dict | None = None) -> dict:
    """Fine-tune ``handle.model`` on ``data`` (train/ and val/ ImageFolders, or :class:`GeneratedData`),
    distilling from ``teacher``.

    Everything that can fail on input (data, classes, teacher, resume checkpoint, output folder) is
    checked before anything is written. ``resume``: a checkpoint path; training continues after its
    epoch in ``out``. Returns the final epoch's log row plus ``best`` (val top-1) and ``out``.
    """
    cfg.check()
    out = Path(out)
    info = init_distributed()
    folder = RunFolder(out)
    try:
        source = data if isinstance(data, GeneratedData) else Path(data)
        return _finetune(handle, source, out, cfg, teacher, Path(resume) if resume else None, force,
                         extra or {}, info, folder)
    except BaseException:
        folder.discard_if_unfinished()
        raise
    finally:
        if info.owns_group and dist.is_initialized():
            dist.destroy_process_group()


class RunFolder:
    """The run folder a fresh (not resumed) run creates; a run that ends before its first checkpoint removes
    it again, so that no empty or unresumable folder blocks the rerun."""

    def __init__(self, path: Path) -> None:
        self.path, self.created = path, False

    def discard_if_unfinished(self) -> None:
        if self.created and not (self.path / CHECKPOINT_FILE).exists():
            shutil.rmtree(self.path, ignore_errors=True)


def _check_teacher(teacher: nn.Module | None, cfg: FinetuneConfig, num_classes: int) -> None:
    """Distillation needs a teacher with the student's classes."""
    if teacher is None and cfg.distill != "none":
        raise SnpEdgeError(f"--distill {cfg.distill} needs a --teacher (or use --distill none)")
    if teacher is not None and cfg.distill != "none":
        t_classes = getattr(teacher, "num_classes", None)
        if t_classes != num_classes:
            raise SnpEdgeError(f"the teacher has {t_classes} classes but the student has {num_classes}")


def _resume_state(resume: Path | None, identity: dict, cfg: FinetuneConfig) -> dict | None:
    """The checkpoint to resume from (None: a fresh run), refused when trained with other options."""
    state = load_checkpoint(resume, identity) if resume is not None else None
    if state is not None:
        ignore = {"progress", "workers"}
        mine, theirs = cfg.to_dict(), state.get("config") or {}
        differ = sorted(k for k in mine if k not in ignore and mine[k] != theirs.get(k))
        if differ:
            raise SnpEdgeError(f"resume checkpoint {resume} was trained with other options ({', '.join(differ)}); "
                               "resume with the options of the interrupted run")
    return state


def _check_output(out: Path, force: bool, fresh: bool) -> None:
    """The output folder: free (or ``force``) for a fresh run, present for a resumed one."""
    if fresh:
        Output(out, force, kind="dir")  # checks: exists without --force, parent missing or read-only
    elif not out.is_dir():
        raise SnpEdgeError(f"--resume needs the run's output folder {out}; it does not exist")


def _create_output(out: Path, fresh: bool, info: DistInfo, folder: RunFolder) -> None:
    """Once every process has checked its inputs, the main one creates a fresh run's folder."""
    if info.world > 1:
        dist.barrier()  # every process has checked the output folder before the main one creates it
    if fresh and info.main:
        if out.exists():  # --force: clear the old run only now that every input has been checked
            shutil.rmtree(out)
        out.mkdir(parents=True)
        folder.created = True
    if info.world > 1:
        dist.barrier()


def _loss(cfg: FinetuneConfig, teacher: nn.Module | None, num_classes: int) -> tuple[Mixup | None, DistillationLoss]:
    """Mixup/cutmix (None when off) and the training loss: soft targets, label smoothing or cross-entropy, with
    distillation from ``teacher``."""
    mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                  switch_prob=cfg.mixup_switch_prob, label_smoothing=cfg.smoothing,
                  num_classes=num_classes) if cfg.mixup_active else None
    if mixup is not None:
        base_loss = SoftTargetCrossEntropy()
    elif cfg.smoothing > 0:
        base_loss = LabelSmoothingCrossEntropy(cfg.smoothing)
    else:
        base_loss = nn.CrossEntropyLoss()
    return mixup, DistillationLoss(base_loss, teacher, cfg.distill, cfg.distill_alpha, cfg.distill_tau)


def _optimizer(model: nn.Module, cfg: FinetuneConfig, lr: float):
    """timm's optimizer factory; a bad --opt is one line."""
    try:
        return create_optimizer_v2(model, opt=cfg.opt, lr=lr, weight_decay=cfg.weight_decay)
    except (ValueError, KeyError) as exc:
        raise SnpEdgeError(f"--opt {cfg.opt}: {first_line(exc)}") from None


def _scheduler(optimizer, cfg: FinetuneConfig, updates_per_epoch: int):
    """timm's scheduler factory, stepped per optimizer update; a bad --sched is one line."""
    try:
        scheduler, _ = create_scheduler_v2(
            optimizer, sched=cfg.sched, num_epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs,
            warmup_lr=cfg.warmup_lr, min_lr=cfg.min_lr, step_on_epochs=False, updates_per_epoch=updates_per_epoch)
    except (ValueError, KeyError) as exc:
        raise SnpEdgeError(f"--sched {cfg.sched}: {first_line(exc)}") from None
    return scheduler


def _restore(state: dict | None, model: nn.Module, optimizer, scheduler, ema, scaler) -> tuple[int, int, float]:
    """Load a resumed run's states; (first epoch, optimizer steps done, best val top-1)."""
    if state is None:
        return 0, 0, -1.0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if ema is not None and state.get("ema") is not None:
        ema.module.load_state_dict(state["ema"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return state["epoch"], state["updates"], state["best"]


def _finetune(handle: ModelHandle, data: Path | GeneratedData, out: Path, cfg: FinetuneConfig, teacher: nn.Module | None,
              resume: Path | None, force: bool, extra: dict, info: DistInfo, folder: RunFolder) -> dict:
    num_classes = handle.num_classes
    _check_teacher(teacher, cfg, num_classes)
    data_config = handle.data_config
    train_ds = load_split(data, "train", train_transform(data_config, cfg.aug), num_classes)
    val_ds = load_split(data, "val", eval_transform(data_config), num_classes, classes=train_ds.classes)
    identity = model_identity(handle.base_model, handle.model_args, handle.arch, num_classes)
    state = _resume_state(resume, identity, cfg)
    _check_output(out, force, state is None)
    global_batch = cfg.batch_size * info.world * cfg.accum_steps
    if len(train_ds) < cfg.batch_size * info.world:
        raise SnpEdgeError(f"train data has {len(train_ds)} images, fewer than one global batch ({global_batch})")
    _create_output(out, state is None, info, folder)

    device = info.device
    seed_all(cfg.seed, -1, 0)  # identical model-side randomness in every process
    model = handle.model
    set_drop_path(model, cfg.drop_path)
    distilled = hasattr(model, "set_distilled_training") and teacher is not None and cfg.distill != "none"
    if hasattr(model, "set_distilled_training"):
        model.set_distilled_training(distilled)
    model.to(device)
    ema = ModelEmaV3(model, decay=cfg.ema_decay, device=device) if cfg.model_ema else None
    if teacher is not None:
        teacher = teacher.to(device).eval()

    lr = cfg.lr if cfg.lr is not None else 5e-4 * global_batch / 512
    optimizer = _optimizer(model, cfg, lr)
    loader = train_loader(train_ds, cfg.batch_size, info.world, info.rank, cfg.seed, cfg.workers)
    updates_per_epoch = len(loader) // cfg.accum_steps
    if cfg.steps_per_epoch:
        updates_per_epoch = min(updates_per_epoch, cfg.steps_per_epoch)
    if updates_per_epoch < 1:
        raise SnpEdgeError(f"one epoch of {len(train_ds)} images makes no optimizer step at global batch {global_batch}")
    scheduler = _scheduler(optimizer, cfg, updates_per_epoch)
    dtype = amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    mixup, criterion = _loss(cfg, teacher, num_classes)
    start_epoch, updates, best = _restore(state, model, optimizer, scheduler, ema, scaler)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if info.world > 1 else None
    net = ddp or model

    log_path = out / LOG_FILE
    rows = _read_log(log_path, start_epoch) if info.main else []
    if info.main:
        write_text_atomic(out / "config.json", json.dumps({"config": cfg.to_dict(), "world_size": info.world,
                                                           "global_batch": global_batch, "lr": lr,
                                                           "model": identity}, indent=2) + "\n")
        write_text_atomic(log_path, "".join(json.dumps(r) + "\n" for r in rows))
    eval_dl = eval_loader(val_ds, cfg.eval_batch_size or cfg.batch_size, info.world, info.rank, cfg.workers)
    row: dict = rows[-1] if rows else {}
    for epoch in range(start_epoch, cfg.epochs):
        seed_all(cfg.seed, epoch, info.rank)
        loader.sampler.set_epoch(epoch)
        if hasattr(train_ds, "set_epoch"):  # generated data: new images every epoch
            train_ds.set_epoch(epoch)
        train_stats = _train_epoch(net, model, criterion, optimizer, scheduler, loader, mixup, ema, scaler, dtype,
                                   cfg, info, epoch, updates, updates_per_epoch)
        updates += updates_per_epoch
        if not math.isfinite(train_stats["train_loss"]):
            raise SnpEdgeError(f"training diverged in epoch {epoch} (loss {train_stats['train_loss']}); the models "
                               "saved so far are kept: lower --lr or set --clip-grad")
        result = evaluate(torch_predictor(model, dtype), eval_dl, device)
        model.train()
        ema_result = evaluate(torch_predictor(ema.module, dtype), eval_dl, device) if ema is not None else None
        chosen = ema_result or result
        row = {"epoch": epoch, **train_stats, "val_top1": result.top1, "val_top5": result.top5,
               "val_loss": result.loss}
        if ema_result is not None:
            row.update(ema_top1=ema_result.top1, ema_top5=ema_result.top5)
        is_best = chosen.top1 > best
        best = max(best, chosen.top1)
        if info.main:
            keep = ema.module if ema is not None else model
            meta = {**extra, "finetune": {"epoch": epoch, "val_top1": chosen.top1, "val_top5": chosen.top5,
                                          "ema": ema is not None, "data": str(data), "config": cfg.to_dict()}}
            save_model(handle, keep, out / "last", meta)
            if is_best:
                save_model(handle, keep, out / "best", meta)
            save_checkpoint(out / CHECKPOINT_FILE, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "ema": ema.module.state_dict() if ema is not None else None,
                "scaler": scaler.state_dict() if scaler is not None else None, "epoch": epoch + 1,
                "updates": updates, "best": best, "identity": identity, "config": cfg.to_dict()})
            with open(log_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            if cfg.progress:
                print(f"epoch {epoch}: loss {row['train_loss']:.4f}  val top-1 {chosen.top1:.2f}%  "
                      f"top-5 {chosen.top5:.2f}%  lr {row['lr']:.2e}  {row['images_per_s']:.0f} img/s", flush=True)
        if info.world > 1:
            dist.barrier()
    model.eval()
    return {**row, "best": best, "out": str(out)}


def _train_epoch(net: nn.Module, model: nn.Module, criterion: DistillationLoss, optimizer, scheduler, loader,
                 mixup, ema, scaler, dtype, cfg: FinetuneConfig, info: DistInfo, epoch: int, updates: int,
                 updates_per_epoch: int) -> dict:
    """One epoch of ``updates_per_epoch`` optimizer steps; returns mean loss, lr and throughput."""
    net.train()
    micro_total = updates_per_epoch * cfg.accum_steps
    loss_sum, images, start = 0.0, 0, time.perf_counter()
    bar = progress_bar(total=micro_total, desc=f"epoch {epoch}", unit="batch",
                       disable=not (cfg.progress and info.main))
    optimizer.zero_grad(set_to_none=True)
    for micro, (x, y) in enumerate(loader):
        if micro >= micro_total:
            break
        x, y = x.to(info.device, non_blocking=True), y.to(info.device, non_blocking=True)
        if mixup is not None:
            x, y = mixup(x, y)
        sync = (micro + 1) % cfg.accum_steps == 0
        ctx = net.no_sync() if isinstance(net, DistributedDataParallel) and not sync else contextlib.nullcontext()
        with ctx:
            with torch.autocast(info.device.type, dtype=dtype, enabled=dtype is not None):
                loss = criterion(x, net(x), y)
            if not math.isfinite(loss.item()):
                raise SnpEdgeError(f"loss is {loss.item()} at epoch {epoch}; lower --lr or disable --amp")
            scaled = loss / cfg.accum_steps
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        loss_sum += loss.item() * len(x)
        images += len(x)
        if sync:
            if scaler is not None:
                scaler.unscale_(optimizer)
            if cfg.clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            updates += 1
            if ema is not None:
                ema.update(model, step=updates)
            scheduler.step_update(updates)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    bar.close()
    elapsed = time.perf_counter() - start
    stats = [loss_sum, float(images)]
    if info.world > 1:
        t = torch.tensor(stats, dtype=torch.float64, device=info.device)
        dist.all_reduce(t)
        stats = t.tolist()
    return {"train_loss": stats[0] / max(stats[1], 1), "lr": optimizer.param_groups[0]["lr"],
            "images_per_s": stats[1] / max(elapsed, 1e-9), "epoch_s": elapsed}
