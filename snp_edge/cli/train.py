"""``snp-edge finetune`` (distillation fine-tuning) and ``snp-edge eval`` (accuracy, attention fidelity).

Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m snp_edge finetune ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..engines.common.argtypes import (
    FRACTION,
    NONNEGATIVE_FLOAT,
    NONNEGATIVE_INT,
    POSITIVE_FLOAT,
    float_range,
    hidden_alias,
    int_range,
)
from ..train.config import AMP_CHOICES, KD_KINDS, AugConfig, FinetuneConfig
from . import args as groups

UNIT_OPEN = float_range(0.0, 1.0, hi_open=True)


def _float_pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers a,b, got {text!r}") from None
    if not (0 < a <= b) or b == float("inf"):
        raise argparse.ArgumentTypeError(f"expected 0 < a <= b (finite), got {text!r}")
    return a, b


def load_student(spec: str, weights: str, model_arg: list[str]):
    """(handle, model.json or None): a pruned folder (its description too) or a timm model name."""
    from ..saved import read_description
    from ..sources import load_handle, source_kind
    from ..vit import parse_model_args

    handle = load_handle(spec, weights, parse_model_args(model_arg))
    return handle, (read_description(spec) if source_kind(spec) == "pruned" else None)


def add_finetune_args(p: argparse.ArgumentParser) -> None:
    d, a = FinetuneConfig(), AugConfig()
    p.add_argument("model", metavar="MODEL", help="pruned model folder (or a timm model name, to train one)")
    groups.model(p)
    p.add_argument("--data", required=True, help="folder with train/<class>/ and val/<class>/ images")
    p.add_argument("--teacher", default=None, metavar="T",
                   help="original (the unpruned model named in model.json) | timm model name | pruned folder | "
                        "weights file of the base model (default: original for pruned models, none otherwise)")
    p.add_argument("--teacher-weights", default="auto", metavar="W", help="weights of a timm-name teacher: "
                                                                           + groups.WEIGHTS_HELP)
    p.add_argument("--resume", nargs="?", const="auto", metavar="CKPT",
                   help="continue the run in --out from its checkpoint.pt (or from CKPT)")
    g = p.add_argument_group("schedule")
    g.add_argument("--epochs", type=int_range(1, 100_000), default=d.epochs, help="passes over the training split")
    g.add_argument("--batch-size", type=int_range(1, 65536), default=d.batch_size, help="images per process and step")
    g.add_argument("--accum-steps", type=int_range(1, 4096), default=d.accum_steps, help="gradient accumulation steps")
    g.add_argument("--lr", type=POSITIVE_FLOAT, default=None, help="peak learning rate (default: 5e-4 * global batch / 512)")
    g.add_argument("--min-lr", type=NONNEGATIVE_FLOAT, default=d.min_lr, help="final learning rate of the schedule")
    g.add_argument("--warmup-lr", type=NONNEGATIVE_FLOAT, default=d.warmup_lr, help="learning rate at step 0")
    g.add_argument("--warmup-epochs", type=NONNEGATIVE_INT, default=d.warmup_epochs, help="linear warm-up epochs")
    g.add_argument("--weight-decay", type=NONNEGATIVE_FLOAT, default=d.weight_decay, help="decoupled weight decay")
    g.add_argument("--opt", default=d.opt, help="timm optimizer name")
    g.add_argument("--sched", default=d.sched, help="timm scheduler name")
    g.add_argument("--clip-grad", type=POSITIVE_FLOAT, default=None, help="clip the gradient norm to this value")
    g.add_argument("--steps-per-epoch", type=int_range(1), default=None, help="cap optimizer steps per epoch (quick runs)")
    g = p.add_argument_group("augmentation and regularisation (0 or 'none' switches a piece off)")
    g.add_argument("--smoothing", type=UNIT_OPEN, default=d.smoothing, help="label smoothing")
    g.add_argument("--mixup", type=NONNEGATIVE_FLOAT, default=d.mixup, help="mixup alpha")
    g.add_argument("--cutmix", type=NONNEGATIVE_FLOAT, default=d.cutmix, help="cutmix alpha")
    g.add_argument("--mixup-prob", type=FRACTION, default=d.mixup_prob, help="probability of mixup or cutmix per batch")
    g.add_argument("--mixup-switch-prob", type=FRACTION, default=d.mixup_switch_prob,
                   help="probability of cutmix instead of mixup when both are on")
    g.add_argument("--aa", default=a.auto_augment, help="timm RandAugment policy, or none")
    g.add_argument("--reprob", type=FRACTION, default=a.re_prob, help="random erasing probability")
    g.add_argument("--scale", type=_float_pair, default=a.scale, metavar="LO,HI", help="random-resized-crop area")
    g.add_argument("--ratio", type=_float_pair, default=a.ratio, metavar="LO,HI", help="random-resized-crop aspect")
    g.add_argument("--hflip", type=FRACTION, default=a.hflip, help="horizontal flip probability")
    g.add_argument("--color-jitter", type=NONNEGATIVE_FLOAT, default=a.color_jitter, help="colour jitter strength")
    g.add_argument("--no-aug", action="store_true", help="no training augmentation at all (eval transform)")
    g.add_argument("--drop-path", type=UNIT_OPEN, default=d.drop_path, help="stochastic depth of the last block")
    g.add_argument("--model-ema", action="store_true", help="keep an EMA of the weights; best/last hold the EMA")
    g.add_argument("--model-ema-decay", type=FRACTION, default=d.ema_decay, help="EMA decay per step")
    g = p.add_argument_group("distillation")
    g.add_argument("--distill", choices=KD_KINDS, default=None,
                   help="soft (KL, temperature) | hard (DeiT, teacher arg-max) | none (default: soft with a teacher)")
    g.add_argument("--distill-alpha", type=FRACTION, default=d.distill_alpha, help="weight of the distillation loss")
    g.add_argument("--distill-tau", type=POSITIVE_FLOAT, default=d.distill_tau, help="soft distillation temperature")
    g = p.add_argument_group("runtime")
    g.add_argument("--amp", choices=AMP_CHOICES, default=d.amp, help="mixed precision on CUDA (auto: bf16 or fp16)")
    g.add_argument("--workers", type=int_range(0, 256), default=d.workers, help="data loader processes per training process")
    groups.seed(p)
    groups.output(p, "run folder: checkpoint.pt, log.jsonl, best/, last/")


def config_from_args(args: argparse.Namespace, distill: str) -> FinetuneConfig:
    aug = AugConfig(auto_augment=None if str(args.aa).lower() in ("none", "") else args.aa, re_prob=args.reprob,
                    scale=tuple(args.scale), ratio=tuple(args.ratio), hflip=args.hflip,
                    color_jitter=args.color_jitter, no_aug=args.no_aug)
    return FinetuneConfig(
        epochs=args.epochs, batch_size=args.batch_size, accum_steps=args.accum_steps, lr=args.lr, min_lr=args.min_lr,
        warmup_lr=args.warmup_lr, warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay, opt=args.opt,
        sched=args.sched, smoothing=args.smoothing, mixup=args.mixup, cutmix=args.cutmix, mixup_prob=args.mixup_prob,
        mixup_switch_prob=args.mixup_switch_prob, aug=aug, drop_path=args.drop_path, model_ema=args.model_ema,
        ema_decay=args.model_ema_decay, distill=distill, distill_alpha=args.distill_alpha,
        distill_tau=args.distill_tau, amp=args.amp, clip_grad=args.clip_grad, workers=args.workers, seed=args.seed,
        steps_per_epoch=args.steps_per_epoch, progress=not args.json)


def cmd_finetune(args: argparse.Namespace) -> int:
    from ..errors import SnpEdgeError
    from ..sources import load_reference
    from ..train.checkpoint import CHECKPOINT_FILE
    from ..train.finetune import finetune

    out = Path(args.out)
    if args.resume is None and not args.force and out.exists() and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        raise SnpEdgeError(f"output {out} already exists; pass --force to replace it or --resume to continue it")
    student, desc = load_student(args.model, args.weights, args.model_arg)
    spec = args.teacher or ("original" if desc is not None else None)
    teacher = None
    if spec is not None and args.distill != "none":
        teacher = load_reference(spec, student, args.teacher_weights, args.model if desc else None, "teacher").model
    distill = args.distill or ("soft" if teacher is not None else "none")
    cfg = config_from_args(args, distill)
    resume = None
    if args.resume is not None:
        resume = out / CHECKPOINT_FILE if args.resume == "auto" else Path(args.resume)
    extra = {"pruning": desc.get("pruning")} if desc else {}
    result = finetune(student, args.data, out, cfg, teacher=teacher, resume=resume, force=args.force, extra=extra)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"best val top-1 {result['best']:.2f}%; models in {out}/best and {out}/last")
    return 0


def add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="pruned model folder | timm model name | exported .onnx file")
    groups.model(p)
    p.add_argument("--data", required=True, help="image folder: DIR/val/<class>/ or DIR/<class>/")
    p.add_argument("--batch-size", type=int_range(1, 65536), default=64, help="images per forward pass")
    p.add_argument("--workers", type=int_range(0, 256), default=2, help="data loader processes")
    p.add_argument("--max-images", type=int_range(1), default=None, help="evaluate on the first N images only "
                                                                          "(default: all)")
    g = p.add_argument_group("attention fidelity")
    g.add_argument("--attention-fidelity", action="store_true",
                   help="KL and cosine of every block's attention maps and of the logits against the unpruned model")
    g.add_argument("--fidelity-model", default="original", metavar="M",
                   help="unpruned model to compare with: original (named in model.json) | timm name | folder | "
                        "weights file")
    g.add_argument("--fidelity-weights", default="auto", metavar="W", help="weights of a timm-name --fidelity-model")
    g.add_argument("--fidelity-images", type=int_range(1), default=256, help="images used for --attention-fidelity")
    hidden_alias(g, "--reference", "--fidelity-model")
    hidden_alias(g, "--reference-weights", "--fidelity-weights")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def _onnx_data_config(path: Path, chw: tuple[int, int, int]) -> tuple[dict, str | None]:
    """Preprocessing for an ONNX file: its bundle's manifest.json when present, else DeiT's defaults."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from ..engines.common.fileio import read_json
    from ..errors import SnpEdgeError

    manifest = path.parent / "manifest.json"
    if manifest.is_file():
        try:
            pre = read_json(manifest, SnpEdgeError)["preprocess"]
            return {"input_size": chw, "mean": tuple(pre["mean"]), "std": tuple(pre["std"]),
                    "crop_pct": pre["crop"] / pre["resize"], "interpolation": pre["interpolation"],
                    "crop_mode": "center"}, None
        except (KeyError, ValueError, TypeError, ZeroDivisionError):
            raise SnpEdgeError(f"corrupt {manifest}: no usable 'preprocess' section") from None
    return ({"input_size": chw, "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD, "crop_pct": 0.875,
             "interpolation": "bicubic", "crop_mode": "center"},
            "no manifest.json beside the ONNX file: DeiT preprocessing assumed (ImageNet mean/std, crop 0.875)")


def cmd_eval(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import Subset

    from ..errors import SnpEdgeError
    from ..sources import load_reference, source_kind
    from ..train.data import eval_loader, eval_transform, load_split
    from ..train.evaluate import evaluate, onnx_predictor, torch_predictor

    path = Path(args.model)
    notice, handle = None, None
    if source_kind(args.model) == "onnx":
        if args.attention_fidelity:
            raise SnpEdgeError("--attention-fidelity needs the PyTorch model (a pruned folder), not an ONNX file")
        predict, chw = onnx_predictor(path)
        data_config, notice = _onnx_data_config(path, chw)
        num_classes, device, name = None, "cpu", str(path)
    else:
        handle, desc = load_student(args.model, args.weights, args.model_arg)
        notice = handle.notice
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = handle.model.to(device).eval()
        predict, data_config, num_classes, name = torch_predictor(model), handle.data_config, handle.num_classes, \
            handle.name
    ds = load_split(args.data, "val", eval_transform(data_config), num_classes)
    if num_classes is None:  # ONNX: check its output width against the data's classes before the run
        outputs = predict(ds[0][0][None]).shape[-1]
        if outputs != len(ds.classes):
            raise SnpEdgeError(f"data {ds.root} has {len(ds.classes)} classes but {path} outputs {outputs}")
    if args.max_images:
        ds = Subset(ds, range(min(args.max_images, len(ds))))
    loader = eval_loader(ds, args.batch_size, workers=args.workers)
    result = evaluate(predict, loader, device, progress=not args.json)
    report = {"model": name, "data": str(args.data), "device": str(device), "batch_size": args.batch_size,
              **result.to_dict(), "notice": notice}
    if args.attention_fidelity:
        from ..train.fidelity import attention_fidelity

        ref = load_reference(args.fidelity_model, handle, args.fidelity_weights,
                             args.model if desc is not None else None, "fidelity-model")
        fid_ds = Subset(ds, range(min(args.fidelity_images, len(ds))))
        fid = attention_fidelity(handle.model, ref.model.to(device), eval_loader(fid_ds, args.batch_size),
                                 handle.arch, device)
        report["fidelity"] = fid.to_dict()
        report["reference"] = ref.name
    if args.json:
        print(json.dumps(report))
        return 0
    if notice:
        print(f"NOTICE: {notice}", file=sys.stderr)
    print(f"{name}: top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}%  ({result.images} images)  "
          f"{result.images_per_s:.1f} img/s forward-only at batch {args.batch_size} on {device}")
    if args.attention_fidelity:
        f = report["fidelity"]
        print(f"attention vs {report['reference']}: KL {f['attention_kl']:.4f}  cosine {f['attention_cosine']:.4f}; "
              f"logits KL {f['logits_kl']:.4f}  cosine {f['logits_cosine']:.4f}  "
              f"top-1 agreement {f['top1_agreement']:.1f}%  ({f['images']} images)")
        for b in f["blocks"]:
            print(f"  block {b['block']:>2} ({b['heads']} heads): KL {b['kl']:.4f}  cosine {b['cosine']:.4f}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("finetune", help="recover accuracy: distillation fine-tuning (torchrun for many GPUs)",
                       formatter_class=groups.formatter, description=__doc__)
    add_finetune_args(p)
    p.set_defaults(func=cmd_finetune)
    p = sub.add_parser("eval", help="top-1/top-5 and throughput of a pruned folder, timm model or ONNX file",
                       formatter_class=groups.formatter)
    add_eval_args(p)
    p.set_defaults(func=cmd_eval)
