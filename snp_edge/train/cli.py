"""``snp-edge finetune`` and ``snp-edge eval``: registered into the main CLI by :func:`add_subparsers`.

Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m snp_edge finetune ...`` (or ``-m snp_edge.train``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import SnpEdgeError
from ..models import ModelHandle


def _float_pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers a,b, got {text!r}") from None
    return a, b


def _model_args(p: argparse.ArgumentParser, weights_default: str) -> None:
    from ..cli import add_model_args

    add_model_args(p, weights_default)


def load_any(src: str, weights: str = "pretrained", model_args: list[str] | None = None) -> tuple[ModelHandle, dict | None]:
    """A pruned folder or a timm model name -> (handle, the folder's model.json or None).

    For pruned folders ``handle.weights`` is set to the original weights the model was pruned from.
    """
    from ..models import load_model, parse_model_args
    from ..saved import load_pruned_handle, read_description

    path = Path(src)
    if path.is_dir() or path.suffix == ".json":
        desc = read_description(path)
        handle = load_pruned_handle(path)
        handle.weights = desc.get("weights") or handle.weights
        return handle, desc
    if path.suffix in (".safetensors", ".pth", ".pt", ".onnx") or "/" in src:
        raise SnpEdgeError(f"model {src} not found (expected a pruned model folder or a timm model name)")
    return load_model(src, weights, parse_model_args(model_args)), None


def original_model(desc: dict, folder: Path) -> ModelHandle:
    """The unpruned model a pruned folder was made from (its model.json names base model and weights)."""
    from ..models import load_model

    weights = str(desc.get("weights") or "random")
    if weights not in ("pretrained", "random", "auto"):
        candidates = [Path(weights), folder / weights, folder.parent / weights]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise SnpEdgeError(f"the original weights {weights} named in {folder}/model.json are not found; "
                               "pass the unpruned model explicitly (--teacher/--reference TIMM_NAME or PATH)")
        weights = str(found)
    return load_model(desc["base_model"], weights, desc.get("model_args") or {})


def resolve_reference(spec: str, student: ModelHandle, desc: dict | None, folder: Path, weights: str,
                      what: str) -> ModelHandle:
    """``original`` | a timm name | a pruned/fine-tuned folder | a weights file of the student's base model."""
    from ..models import load_model

    if spec == "original":
        if desc is None:
            raise SnpEdgeError(f"--{what} original needs a pruned model folder; name the {what} model instead")
        return original_model(desc, folder)
    path = Path(spec)
    if path.is_dir() or path.suffix == ".json":
        return load_any(spec)[0]
    if path.is_file():
        return load_model(student.base_model, str(path), student.model_args)
    if path.suffix in (".safetensors", ".pth", ".pt") or "/" in spec:
        raise SnpEdgeError(f"{what} {spec} not found")
    return load_model(spec, weights, student.model_args)


def add_finetune_args(p: argparse.ArgumentParser) -> None:
    from .data import AugConfig
    from .distill import KD_KINDS
    from .finetune import AMP_CHOICES, FinetuneConfig

    d, a = FinetuneConfig(), AugConfig()
    p.add_argument("model", metavar="MODEL", help="pruned model folder (or a timm model name, to train one)")
    _model_args(p, "pretrained")
    p.add_argument("--data", required=True, help="folder with train/<class>/ and val/<class>/ images")
    p.add_argument("--teacher", default=None, metavar="T",
                   help="original (the unpruned model named in model.json) | timm model name | pruned folder | "
                        "weights file of the base model (default: original for pruned models, none otherwise)")
    p.add_argument("--teacher-weights", default="pretrained", help="weights of a timm-name teacher (default pretrained)")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.jsonl, best/, last/")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CKPT",
                   help="continue the run in --out from its checkpoint.pt (or from CKPT)")
    g = p.add_argument_group("schedule")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="per process (default %(default)s)")
    g.add_argument("--accum-steps", type=int, default=d.accum_steps, help="gradient accumulation steps")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate (default 5e-4 * global batch / 512)")
    g.add_argument("--min-lr", type=float, default=d.min_lr)
    g.add_argument("--warmup-lr", type=float, default=d.warmup_lr)
    g.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--opt", default=d.opt, help="timm optimizer name (default adamw)")
    g.add_argument("--sched", default=d.sched, help="timm scheduler name (default cosine)")
    g.add_argument("--clip-grad", type=float, default=None, help="clip the gradient norm to this value")
    g.add_argument("--steps-per-epoch", type=int, default=None, help="cap optimizer steps per epoch (quick runs)")
    g = p.add_argument_group("augmentation and regularisation (0 or 'none' switches a piece off)")
    g.add_argument("--smoothing", type=float, default=d.smoothing, help="label smoothing")
    g.add_argument("--mixup", type=float, default=d.mixup, help="mixup alpha")
    g.add_argument("--cutmix", type=float, default=d.cutmix, help="cutmix alpha")
    g.add_argument("--mixup-prob", type=float, default=d.mixup_prob)
    g.add_argument("--mixup-switch-prob", type=float, default=d.mixup_switch_prob)
    g.add_argument("--aa", default=a.auto_augment, help="timm RandAugment policy, or none")
    g.add_argument("--reprob", type=float, default=a.re_prob, help="random erasing probability")
    g.add_argument("--scale", type=_float_pair, default=a.scale, metavar="LO,HI", help="random-resized-crop area")
    g.add_argument("--ratio", type=_float_pair, default=a.ratio, metavar="LO,HI", help="random-resized-crop aspect")
    g.add_argument("--hflip", type=float, default=a.hflip, help="horizontal flip probability")
    g.add_argument("--color-jitter", type=float, default=a.color_jitter)
    g.add_argument("--no-aug", action="store_true", help="no training augmentation at all (eval transform)")
    g.add_argument("--drop-path", type=float, default=d.drop_path, help="stochastic depth of the last block")
    g.add_argument("--model-ema", action="store_true", help="keep an EMA of the weights; best/last hold the EMA")
    g.add_argument("--model-ema-decay", type=float, default=d.ema_decay)
    g = p.add_argument_group("distillation")
    g.add_argument("--distill", choices=KD_KINDS, default=None,
                   help="soft (KL, temperature) | hard (DeiT, teacher arg-max) | none (default soft with a teacher)")
    g.add_argument("--distill-alpha", type=float, default=d.distill_alpha, help="weight of the distillation loss")
    g.add_argument("--distill-tau", type=float, default=d.distill_tau, help="soft distillation temperature")
    g = p.add_argument_group("runtime")
    g.add_argument("--amp", choices=AMP_CHOICES, default=d.amp, help="mixed precision on CUDA (auto: bf16 or fp16)")
    g.add_argument("--workers", type=int, default=d.workers, help="data loader processes per training process")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--json", action="store_true", help="print the final summary as one JSON line")


def config_from_args(args: argparse.Namespace, distill: str):
    from .data import AugConfig
    from .finetune import FinetuneConfig

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
    from .checkpoint import CHECKPOINT_FILE
    from .finetune import finetune

    out = Path(args.out)
    if args.resume is None and not args.force and out.exists() and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        raise SnpEdgeError(f"output {out} already exists; pass --force to replace it or --resume to continue it")
    student, desc = load_any(args.model, args.weights, args.model_arg)
    spec = args.teacher or ("original" if desc is not None else None)
    teacher = None
    if spec is not None and args.distill != "none":
        teacher = resolve_reference(spec, student, desc, Path(args.model), args.teacher_weights, "teacher").model
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
    _model_args(p, "pretrained")
    p.add_argument("--data", required=True, help="image folder: DIR/val/<class>/ or DIR/<class>/")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-images", type=int, default=None, help="evaluate on the first N images only")
    p.add_argument("--attention-fidelity", action="store_true",
                   help="KL and cosine of every block's attention maps and of the logits against the unpruned model")
    p.add_argument("--reference", default="original",
                   help="unpruned model for --attention-fidelity: original | timm name | folder | weights file")
    p.add_argument("--reference-weights", default="pretrained", help="weights of a timm-name reference")
    p.add_argument("--fidelity-images", type=int, default=256, help="images used for --attention-fidelity")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")


def _onnx_data_config(path: Path, chw: tuple[int, int, int]) -> tuple[dict, str | None]:
    """Preprocessing for an ONNX file: its bundle's manifest.json when present, else DeiT's defaults."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    manifest = path.parent / "manifest.json"
    if manifest.is_file():
        try:
            pre = json.loads(manifest.read_text())["preprocess"]
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

    from .data import eval_loader, eval_transform, load_split
    from .evaluate import evaluate, onnx_predictor, torch_predictor

    path = Path(args.model)
    notice, desc, handle = None, None, None
    if path.suffix == ".onnx":
        if not path.is_file():
            raise SnpEdgeError(f"ONNX file not found: {path}")
        if args.attention_fidelity:
            raise SnpEdgeError("--attention-fidelity needs the PyTorch model (a pruned folder), not an ONNX file")
        predict, chw = onnx_predictor(path)
        data_config, notice = _onnx_data_config(path, chw)
        num_classes, device, name = None, "cpu", str(path)
    else:
        handle, desc = load_any(args.model, args.weights, args.model_arg)
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
        from .fidelity import attention_fidelity

        ref = resolve_reference(args.reference, handle, desc, path, args.reference_weights, "reference")
        fid_ds = Subset(ds, range(min(args.fidelity_images, len(ds))))
        fid = attention_fidelity(handle.model, ref.model.to(device), eval_loader(fid_ds, args.batch_size),
                                 handle.arch, device)
        report["fidelity"] = fid.to_dict()
        report["reference"] = ref.name
    if args.json:
        print(json.dumps(report))
        return 0
    if notice:
        print(f"notice: {notice}", file=sys.stderr)
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


def add_subparsers(sub) -> None:
    """Register ``finetune`` and ``eval`` on the main ``snp-edge`` parser's subparsers."""
    p = sub.add_parser("finetune", help="recover accuracy: distillation fine-tuning (torchrun for many GPUs)")
    add_finetune_args(p)
    p.set_defaults(func=cmd_finetune)
    p = sub.add_parser("eval", help="top-1/top-5 and throughput of a pruned folder, timm model or ONNX file")
    add_eval_args(p)
    p.set_defaults(func=cmd_eval)


def main(argv: list[str] | None = None) -> int:
    """``python -m snp_edge.train``: these two subcommands with the main CLI's error handling."""
    parser = argparse.ArgumentParser(prog="snp-edge", description="fine-tuning and evaluation of pruned ViTs")
    add_subparsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    from snp_edge.cli import run_parsed

    return run_parsed(parser.parse_args(argv))
