"""Derive a per-device preset from a latency table: widths whose predicted latency equals a reference model's.

    python benchmarks/derive_preset.py --table deit_s_ort_1t.json --name deit_s_1.3g_ort \
        --reference deit_tiny_patch16_224 --heads 3 --round-to 8 > snp_edge/presets/deit_s_1.3g_ort.yaml

The widths come from the ``uniform`` allocation with the table as the cost (scores are not used: a preset
must not depend on the weights it was derived with), ``--heads`` heads per block and ``--round-to``
alignment; the budget is the table's prediction for ``--reference`` (a model the table's grid covers), or
``--target-ms``. Prints the preset YAML (with the prediction and GMACs in its comment).
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--reference", default="deit_tiny_patch16_224")
    p.add_argument("--target-ms", type=float)
    p.add_argument("--heads", type=int)
    p.add_argument("--round-to", type=int, default=8)
    args = p.parse_args()

    from snp_edge.engines import latency_table as lt

    from snp_edge.allocation import allocate, structure
    from snp_edge.arch import arch_of
    from snp_edge.latency import LatencyCost, predict_ms
    from snp_edge.macs import macs_constants, predict_macs
    from snp_edge.models import ModelHandle
    from snp_edge.vit import create_model

    table = lt.read_table(args.table)
    name = table["model"]["name"]
    handle = ModelHandle(create_model(name, device="meta"), name)
    cost = LatencyCost.from_file(args.table, handle)
    base = arch_of(handle.model)
    target = args.target_ms or predict_ms(table, arch_of(create_model(args.reference, device="meta")))
    arch = allocate("uniform", structure(base, None, 0, args.heads), target, cost, args.round_to)
    gmacs = predict_macs(arch, **macs_constants(handle.model)) / 1e9
    env = table.get("environment") or {}
    cpu = (env.get("cpu") or {}).get("model", "?")
    print(f"# snp-edge's own, derived from a latency table ({table['backend']}, {table['precision']}, batch "
          f"{table['batch']}, {table['threads']} thread(s), {cpu}) by\n# benchmarks/derive_preset.py: uniform widths, "
          f"{args.heads or base.num_heads} heads, multiples of {args.round_to}, predicted "
          f"{predict_ms(table, arch):.2f} ms = the table's prediction for {args.reference if not args.target_ms else 'the target'}"
          f" ({target:.2f} ms); {gmacs:.2f} GMACs.\n# Measured speed: docs/results/latency/results.md.")
    print(f'description: "snp-edge: {name} pruned to {args.reference if not args.target_ms else f"{target:.1f} ms"}\'s '
          f'latency on {table["backend"]} ({table["threads"]} thread), {gmacs:.2f} GMACs"')
    print(f"model: {name}")
    print(f"signature: {{embed: {base.embed_orig}, depth: {base.depth}, num_heads: {base.num_heads}, "
          f"head_dim: {base.head_dim}, mlp: {base.mlp}}}")
    print(f"embed: {arch.embed}")
    if args.heads:
        print(f"heads: {args.heads}")
    for comp in ("qk", "v", "mlp"):
        values = [getattr(b, comp) for b in arch.blocks]
        print(f"{comp}: {values[0] if len(set(values)) == 1 else values}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
