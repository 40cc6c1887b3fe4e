#!/usr/bin/env bash
# Time the engine over a batch sweep (1, 2, 4, ... up to the profile maximum): GPU and end-to-end latency
# percentiles, tegrastats telemetry, energy per image; JSON with --json-file.
#   scripts/bench.sh [--max-perf] [--no-prompt] [--batch 1 --batch 8] [--runs 1000] [--json-file bench.json]
set -euo pipefail
# shellcheck source=SCRIPTDIR/_common.sh
. "$(dirname "$0")/_common.sh"
engines bench "$BUNDLE" "$@"
