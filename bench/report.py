"""Writing a results document as ``results.json`` (validated), ``results.md`` (a table shaped like the SNP
paper's) and ``results.png`` (latency and, where known, accuracy against GMACs), each written atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from snp_edge.engines.common.fileio import write_bytes_atomic, write_json_atomic, write_text_atomic

from snp_edge.errors import SnpEdgeError, first_line

from .schema import validate

OUTPUTS = ("results.json", "results.md", "results.png")
ROLE_COLORS = {"unpruned": "tab:blue", "pruned": "tab:orange", "reference": "tab:green", "unknown": "tab:gray"}
KERNEL_EFF_NOTE = ("Speed-ups are relative to {baseline}, by median and by mean latency. Kernel eff. = "
                   "speed-up (median) / (baseline GMACs / model GMACs): 1.00 means latency fell in proportion "
                   "to the multiply-accumulates removed.")


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse to overwrite results already in ``out`` (unless ``force``); call before measuring."""
    existing = [name for name in OUTPUTS if (out / name).exists()]
    if existing and not force:
        raise SnpEdgeError(f"{out} already holds {', '.join(existing)}; pass --force to overwrite")
    if out.exists() and not out.is_dir():
        raise SnpEdgeError(f"--out {out} exists and is not a folder")


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(doc: dict[str, Any]) -> str:
    """The Markdown report: notices, the results table (one row per candidate), protocol and environment;
    one such section per batch size for a device batch sweep (``by_batch``)."""
    text = _markdown_section(doc)
    for extra in doc.get("by_batch") or []:
        text += "\n" + _markdown_section(extra, level="##")
    return text


def _device_columns(c: dict[str, Any]) -> str:
    """End-to-end median and energy per image of a device sweep section, where the file has them."""
    s = c.get("settings") or {}
    e2e, tel = s.get("e2e_ms") or {}, s.get("telemetry") or {}
    parts = []
    if e2e.get("median") is not None:
        parts.append(f"end-to-end median {e2e['median']:.2f} ms")
    if tel.get("energy_mj_per_image") is not None:
        parts.append(f"{tel['energy_mj_per_image']:.1f} mJ/image")
    if tel.get("throttled"):
        parts.append("THROTTLED: " + "; ".join(tel.get("throttle_reasons") or []))
    return ", ".join(parts)


def _markdown_section(doc: dict[str, Any], level: str = "#") -> str:
    p, env = doc["protocol"], doc["environment"]
    title = f"{level} snp-edge bench: {p['backend']} on {p.get('device', '?')}, batch {p['batch']}"
    if p.get("precision"):
        title += f", {p['precision']}"
    lines = [title + (" (PARTIAL: interrupted)" if doc["partial"] else ""), ""]
    if doc["notice"]:
        lines += [f"> **Notice:** {doc['notice']}", ""]
    lines += ["| Model | Top-1 % | GMACs | Params (M) | Mean ms | Median ms | p90 ms | p95 ms | p99 ms "
              "| Throughput img/s | Speed-up (median) | Speed-up (mean) | Kernel eff. |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in doc["candidates"]:
        lat = c["latency_ms"] or {}
        params = c["params"] / 1e6 if c["params"] is not None else None
        lines.append("| " + " | ".join([
            _cell(c["label"]), _fmt(c["top1"], ".2f"), _fmt(c["gmacs"], ".3g"), _fmt(params, ".2f"),
            *(_fmt(lat.get(k), ".2f") for k in ("mean", "median", "p90", "p95", "p99")),
            _fmt(c["throughput_ips"], ".1f"), _fmt(c["speedup_median"], ".2f", "x"),
            _fmt(c["speedup_mean"], ".2f", "x"), _fmt(c["kernel_efficiency"], ".2f"),
        ]) + " |")
    device = [(c["label"], _device_columns(c)) for c in doc["candidates"] if _device_columns(c)]
    if device:
        metric = (doc["candidates"][0].get("settings") or {}).get("metric", "latency")
        lines += ["", f"Latencies above: {metric}. " + "; ".join(f"{_cell(label)}: {text}" for label, text in device)
                  + "."]
    predicted = [c for c in doc["candidates"] if c.get("predicted_ms")]
    if predicted:
        lines += ["", "Predicted by the latency table each model was pruned with, against the median measured here "
                  "(comparable where the table's backend, batch and threads are this run's):", "",
                  "| Model | Predicted ms | Measured median ms | Error | Table |", "|---|---:|---:|---:|---|"]
        for c in predicted:
            pf = c.get("predicted_for") or {}
            lines.append(f"| {_cell(c['label'])} | {c['predicted_ms']:.2f} | {_fmt((c['latency_ms'] or {}).get('median'), '.2f')} "
                         f"| {_fmt(None if c.get('predicted_error') is None else 100 * c['predicted_error'], '+.1f', '%')} | "
                         f"{pf.get('backend')}, {pf.get('precision')}, batch {pf.get('batch')}, "
                         f"threads {pf.get('threads')} |")
    runs = [c["latency_ms"]["n"] for c in doc["candidates"] if c["latency_ms"] and "n" in c["latency_ms"]]
    warmup = p.get("warmup")
    if isinstance(warmup, dict):  # device bench: {"warmup_runs": 200} or {"warmup_ms": 1000}
        warmup = ", ".join(f"{v} {k.removeprefix('warmup_')}" for k, v in warmup.items())
    proto = (f"Protocol: {p['backend']}, batch {p['batch']}, warm-up {'-' if warmup is None else warmup}, "
             f"runs {'/'.join(map(str, sorted(set(runs)))) or '-'} per model")
    if p["interleaved"]:
        proto += (f", interleaved in blocks of {p['block']} runs (seed {p['seed']}, {p['rewarm']} untimed run "
                  f"after each switch), {p['threads']} thread{'s' if p['threads'] != 1 else ''}")
    else:
        proto += f", measured on the device ({', '.join(p.get('sources', []))})"
    cpu = env.get("cpu") or {}
    gpu = (env.get("gpu") or {}).get("name") or (env.get("device") or {}).get("gpu_name")
    versions = env.get("versions") or {}
    lines += ["", KERNEL_EFF_NOTE.format(baseline=_cell(p["baseline"])), "", proto + ".",
              f"Environment: {env.get('os', '?')}; CPU {cpu.get('model', '?')} ({cpu.get('usable_cores', '?')} cores)"
              + (f"; GPU {gpu}" if gpu else "")
              + "; " + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + ".",
              f"Created {doc['created']}; schema version {doc['schema_version']}.", ""]
    return "\n".join(lines)


def plot(doc: dict[str, Any]) -> bytes:
    """PNG: median latency (whiskers min..p90) against GMACs, labelled, coloured by role; an accuracy
    panel where top-1 is known. Candidates without GMACs are drawn as bars instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands = [c for c in doc["candidates"] if c["latency_ms"]]
    with_acc = [c for c in cands if c["top1"] is not None and c["gmacs"] is not None]
    fig, axes = plt.subplots(1, 2 if with_acc else 1, figsize=(12 if with_acc else 7, 5), squeeze=False)
    ax = axes[0][0]
    p = doc["protocol"]
    ax.set_title(f"{p['backend']} {p.get('device', '')}, batch {p['batch']}" + (" (PARTIAL)" if doc["partial"] else ""))
    if cands and all(c["gmacs"] is not None for c in cands):
        span = max(c["gmacs"] for c in cands) - min(c["gmacs"] for c in cands) or 1.0
        level, prev = 0, None
        for c in sorted(cands, key=lambda c: (c["gmacs"], c["latency_ms"]["median"])):
            lat = c["latency_ms"]
            high = lat.get("p90", lat["median"])
            ax.errorbar([c["gmacs"]], [lat["median"]], yerr=[[lat["median"] - lat["min"]], [high - lat["median"]]],
                        fmt="o", color=ROLE_COLORS[c["role"]], capsize=3)
            level = level + 1 if prev is not None and c["gmacs"] - prev < 0.05 * span else 0
            prev = c["gmacs"]
            ax.annotate(c["label"], (c["gmacs"], lat["median"]), textcoords="offset points",
                        xytext=(8, -4 - 11 * level), fontsize=8)  # points at nearly equal GMACs: labels stacked
        ax.margins(0.15)
        ax.set_xlabel("GMACs per image")
        ax.set_ylabel("median latency (ms), whiskers min..p90")
        handles = [plt.Line2D([], [], marker="o", linestyle="", color=ROLE_COLORS[r], label=r)
                   for r in ROLE_COLORS if any(c["role"] == r for c in cands)]
        ax.legend(handles=handles, fontsize=8)
    else:
        ax.barh([c["label"] for c in cands], [c["latency_ms"]["median"] for c in cands],
                color=[ROLE_COLORS[c["role"]] for c in cands])
        ax.invert_yaxis()
        ax.set_xlabel("median latency (ms)")
    ax.grid(alpha=0.3)
    if with_acc:
        ax2 = axes[0][1]
        for c in with_acc:
            ax2.plot(c["gmacs"], c["top1"], "o", color=ROLE_COLORS[c["role"]])
            ax2.annotate(c["label"], (c["gmacs"], c["top1"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax2.margins(0.15)
        ax2.set_xlabel("GMACs per image")
        ax2.set_ylabel("top-1 accuracy (%)")
        ax2.set_title("accuracy")
        ax2.grid(alpha=0.3)
    if doc["notice"]:
        fig.text(0.5, 0.01, f"Notice: {doc['notice']}", ha="center", va="bottom", color="tab:red", fontsize=8, wrap=True)
    fig.tight_layout(rect=(0, 0.06 if doc["notice"] else 0, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def write_report(doc: dict[str, Any], out: Path, force: bool = False) -> list[Path]:
    """Validate ``doc`` and write results.json, results.md and results.png into ``out``; their paths."""
    import jsonschema

    try:
        for part in [doc] + list(doc.get("by_batch") or []):  # a device batch sweep: one document per batch
            validate(part)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise SnpEdgeError(f"refusing to write a report with bad numbers: {where + ': ' if where else ''}"
                           f"{first_line(exc.message)}") from None
    check_out_dir(out, force)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in OUTPUTS]
    write_json_atomic(paths[0], doc, sort_keys=False)
    write_text_atomic(paths[1], markdown(doc))
    write_bytes_atomic(paths[2], plot(doc))
    return paths
