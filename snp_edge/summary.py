"""One summary of a model (cost, size, widths) for the CLI's text and ``--json`` output and model.json."""

from __future__ import annotations

from .arch import Arch, arch_of
from .models import ModelHandle


def widths_of(handle: ModelHandle) -> dict:
    """Per-block kept widths: ``{"embed": E, "blocks": [{"index", "heads", "qk", "v", "mlp"}, ...]}``."""
    arch = Arch.from_dict(handle.arch) if handle.arch else arch_of(handle.model)
    return {"embed": arch.embed, "blocks": [vars(b) for b in arch.blocks],
            "blocks_kept": arch.blocks_kept, "heads_kept": arch.heads_kept}


def summarize(handle: ModelHandle, before: ModelHandle | None = None) -> dict:
    """GMACs (multiply-accumulates / 1e9, DeiT's "GFLOPs"), parameters and widths of ``handle``.

    With ``before``, also ``gmacs_before``/``params_before`` and the ratios.
    """
    out = {
        "model": handle.base_model,
        "pruned": handle.pruned,
        "weights": handle.weights,
        "accuracy_meaningful": handle.accuracy_meaningful,
        "gmacs_after" if before else "gmacs": round(handle.gmacs, 4),
        "params_after" if before else "params": handle.params,
        "widths": widths_of(handle),
    }
    if before is not None:
        out["gmacs_before"] = round(before.gmacs, 4)
        out["params_before"] = before.params
        out["gmacs_ratio"] = round(out["gmacs_after"] / out["gmacs_before"], 4)
        out["params_ratio"] = round(out["params_after"] / out["params_before"], 4)
    if handle.notice:
        out["notice"] = handle.notice
    return out


def format_summary(summary: dict) -> str:
    """Human-readable table of a :func:`summarize` dict."""
    lines = [f"model      {summary['model']}{' (pruned)' if summary['pruned'] else ''}",
             f"weights    {summary['weights']}"]
    if "gmacs_before" in summary:
        lines.append(f"GMACs      {summary['gmacs_before']:.3f} -> {summary['gmacs_after']:.3f} "
                     f"({summary['gmacs_ratio']:.1%})")
        lines.append(f"params     {summary['params_before'] / 1e6:.2f}M -> {summary['params_after'] / 1e6:.2f}M "
                     f"({summary['params_ratio']:.1%})")
    else:
        gm = summary.get("gmacs", summary.get("gmacs_after"))
        pa = summary.get("params", summary.get("params_after"))
        lines.append(f"GMACs      {gm:.3f}")
        lines.append(f"params     {pa / 1e6:.2f}M")
    if summary.get("predicted_ms_after") is not None:
        t = summary.get("latency_table") or {}
        lines.append(f"latency    {summary['predicted_ms_before']:.2f} -> {summary['predicted_ms_after']:.2f} ms "
                     f"predicted ({summary['predicted_speedup']:.2f}x; table: {t.get('backend')}, {t.get('precision')}, "
                     f"batch {t.get('batch')}, threads {t.get('threads')})")
    w = summary["widths"]
    lines.append(f"embed      {w['embed']}")
    lines.append("block  heads  qk/head  v/head  mlp")
    for b in w["blocks"]:
        removed = [name for name, gone in (("attention", b["heads"] == 0), ("FFN", b["mlp"] == 0)) if gone]
        lines.append(f"{b['index']:>5}  {b['heads']:>5}  {b['qk']:>7}  {b['v']:>6}  {b['mlp']:>4}"
                     + (f"  ({' and '.join(removed)} removed)" if removed else ""))
    if summary.get("notice"):
        lines.append(f"NOTICE: {summary['notice']}")
    return "\n".join(lines)
