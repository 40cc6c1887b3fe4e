"""Iterative pruning: prune to an intermediate MAC budget, distil briefly from the unpruned model, re-score and
re-allocate on the distilled model, repeat down to the final budget, then distil for the final epochs (the
schedule of NViT, ViT-Slim, HALP and Torch-Pruning's iterative pruner). ``steps=1`` is one-shot pruning.

Each step goes through the public API: :func:`snp_edge.api.prune_spec` on the current (pruned) model, then
:func:`snp_edge.train.finetune.finetune` with the ORIGINAL unpruned model as the teacher. Output folder::

    OUT/plan.json        the schedule (budgets per step, epochs): a rerun with another plan is refused
    OUT/step-K.train/    step K's fine-tuning run (checkpoint.pt, log.jsonl, best/, last/)
    OUT/step-K/          step K's model (model.safetensors + model.json), written last: the step is done

A rerun skips the steps whose ``step-K/`` exists, resumes an interrupted step's fine-tuning from its
checkpoint (pruning is deterministic: the same seed and calibration images give the same widths and
neurons), and does the rest. The last step's folder holds the result.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..allocation import MacCost, total_cost
from ..api import prune_spec
from ..arch import arch_of
from ..engines.common.fileio import write_text_atomic
from ..errors import SnpEdgeError
from ..macs import macs_constants
from ..models import ModelHandle, load_model
from ..saved import load_pruned_handle, save_pruned
from ..spec import PruneSpec
from .checkpoint import CHECKPOINT_FILE
from .config import FinetuneConfig
from .data import GeneratedData

PLAN_FILE = "plan.json"
SPACINGS = ("geometric", "linear")


@dataclass(frozen=True)
class Schedule:
    """``steps`` prune-distil rounds from the unpruned MACs to the final budget, spaced ``geometric`` (the same
    fraction removed each step) or ``linear`` (the same GMACs each step); ``epochs_per_step`` of distillation
    after every step but the last, ``final_epochs`` after the last (0: none)."""

    steps: int = 3
    spacing: str = "geometric"
    epochs_per_step: int = 1
    final_epochs: int = 1

    def check(self) -> None:
        if self.steps < 1:
            raise SnpEdgeError(f"--steps must be at least 1, got {self.steps}")
        if self.spacing not in SPACINGS:
            raise SnpEdgeError(f"unknown spacing {self.spacing!r}; use one of {', '.join(SPACINGS)}")
        if self.epochs_per_step < 0 or self.final_epochs < 0:
            raise SnpEdgeError("--epochs-per-step and --final-epochs must be >= 0")

    def epochs(self, step: int) -> int:
        """Distillation epochs after step ``step`` (1-based)."""
        return self.final_epochs if step == self.steps else self.epochs_per_step

    @property
    def total_epochs(self) -> int:
        return (self.steps - 1) * self.epochs_per_step + self.final_epochs


def budgets(full: float, target: float, steps: int, spacing: str = "geometric") -> list[float]:
    """GMACs budget of each step, from ``full`` (unpruned, not included) down to ``target`` (the last)."""
    if not 0 < target < full:
        raise SnpEdgeError(f"--target-gmacs {target:g} must be positive and below the unpruned model's "
                           f"{full:.4g} GMACs")
    if spacing == "geometric":
        out = [full * (target / full) ** (k / steps) for k in range(1, steps + 1)]
    else:
        out = [full + (target - full) * k / steps for k in range(1, steps + 1)]
    out[-1] = target  # exactly the target, not a rounding of it
    return out


def model_gmacs(handle: ModelHandle) -> float:
    """GMACs per image of ``handle``'s model as the budget counts them (:mod:`snp_edge.allocation`)."""
    return total_cost(MacCost(**macs_constants(handle.model)), arch_of(handle.model)) / 1e9


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def _check_plan(out: Path, plan: dict, force: bool) -> None:
    """``out`` free, or holding a run of the same plan (resumed); ``force``: any old content is removed."""
    if not out.exists():
        return
    if force:
        shutil.rmtree(out)
        return
    if not out.is_dir():
        raise SnpEdgeError(f"output {out} exists and is not a folder")
    path = out / PLAN_FILE
    if not path.is_file():
        if any(out.iterdir()):
            raise SnpEdgeError(f"output {out} exists and holds no {PLAN_FILE}; pass --force to replace it")
        return
    try:
        old = json.loads(path.read_text())
    except ValueError:
        raise SnpEdgeError(f"corrupt {path}; pass --force to start over") from None
    if old != plan:
        differ = sorted(k for k in {*plan, *old} if plan.get(k) != old.get(k))
        raise SnpEdgeError(f"{out} holds a run of another plan ({', '.join(differ)} differ); rerun with the same "
                           "options to resume it, or pass --force to start over")


def iterate(spec: PruneSpec, data: str | Path | GeneratedData, out: str | Path, cfg: FinetuneConfig, schedule: Schedule,
            force: bool = False, progress: bool = True) -> dict:
    """Prune ``spec.model`` to ``spec.target.target_gmacs`` in ``schedule.steps`` prune-distil rounds.

    ``cfg``: the fine-tuning options of every round (its ``epochs`` replaced by the schedule's); distillation
    from the unpruned model unless ``cfg.distill`` is ``none``. Returns the plan, one row per step (budget,
    GMACs reached, val top-1 of the last epoch, whether it was done by an earlier run) and the final folder.
    """
    from .finetune import finetune

    schedule.check()
    t = spec.target
    if t.target_gmacs is None or t.given() != ["target_gmacs"]:
        raise SnpEdgeError("iterative pruning takes a --target-gmacs budget (only)")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SnpEdgeError("iterative pruning runs in one process; torchrun is not supported yet")
    out = Path(out)
    original = load_model(spec.model, spec.weights, spec.model_args)
    full = model_gmacs(original)
    plan_budgets = budgets(full, t.target_gmacs, schedule.steps, schedule.spacing)
    plan = json.loads(json.dumps({
        "model": spec.model, "weights": spec.weights, "model_args": spec.model_args, "data": str(data),
        "unpruned_gmacs": full, "budgets_gmacs": plan_budgets, "schedule": asdict(schedule),
        "finetune": {k: v for k, v in cfg.to_dict().items() if k not in ("epochs", "progress", "workers")},
        "prune": {"calibration": asdict(spec.calibration), "scoring": asdict(spec.scoring),
                  "alignment": asdict(spec.alignment)}}, default=str))
    _check_plan(out, plan, force)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / PLAN_FILE, json.dumps(plan, indent=2) + "\n")
    teacher = original.model if cfg.distill != "none" else None
    current, rows = original, []
    for k, budget in enumerate(plan_budgets, 1):
        folder, run = out / f"step-{k}", out / f"step-{k}.train"
        head = f"step {k}/{schedule.steps}"
        if (folder / "model.json").is_file():
            current = load_pruned_handle(folder)
            rows.append({"step": k, "budget_gmacs": budget, "gmacs": model_gmacs(current), "skipped": True,
                         **json.loads((folder / "model.json").read_text()).get("iterative", {}).get("result", {})})
            _say(progress, f"{head}: done by an earlier run ({folder}), {rows[-1]['gmacs']:.4g} GMACs")
            continue
        _say(progress, f"{head}: pruning {model_gmacs(current):.4g} -> {budget:.4g} GMACs")
        step_spec = spec.with_target("target_gmacs", budget)
        if k > 1:  # blocks are dropped once, by the first step
            step_spec = replace(step_spec, alignment=replace(spec.alignment, drop_blocks=0))
        if k < schedule.steps:  # sublayers are removed by the last step only (a model without one is not re-scored)
            step_spec = replace(step_spec, scoring=replace(step_spec.scoring, sublayers=False))
        result = prune_spec(step_spec, current, progress=progress)
        pruned, epochs = result.handle, schedule.epochs(k)
        row = {"step": k, "budget_gmacs": budget, "gmacs": model_gmacs(pruned), "skipped": False}
        meta = {"pruning": result.recipe, "iterative": {"step": k, "steps": schedule.steps, "plan": PLAN_FILE}}
        if epochs > 0:
            resume = run / CHECKPOINT_FILE if (run / CHECKPOINT_FILE).is_file() else None
            _say(progress, f"{head}: {row['gmacs']:.4g} GMACs; distilling {epochs} epoch(s)"
                           + (f", resuming {resume}" if resume else ""))
            fit = finetune(pruned, data, run, replace(cfg, epochs=epochs), teacher=teacher, resume=resume,
                           force=resume is None, extra=meta)
            row.update(val_top1=fit["val_top1"], best_top1=fit["best"])
            pruned = load_pruned_handle(run / "last")
        meta["iterative"]["result"] = {k2: v for k2, v in row.items() if k2 in ("val_top1", "best_top1")}
        save_pruned(pruned, folder, extra=meta, force=True)
        current = pruned
        rows.append(row)
        _say(progress, f"{head}: done, {row['gmacs']:.4g} GMACs"
                       + (f", val top-1 {row['val_top1']:.2f}%" if "val_top1" in row else "") + f" -> {folder}")
    return {"plan": plan, "steps": rows, "out": str(out / f"step-{schedule.steps}"),
            "total_epochs": schedule.total_epochs}
