#!/usr/bin/env bash
# Time the engine: per-run latency statistics (and JSON with --json PATH).
#   scripts/bench.sh [--max-perf] [--no-prompt] [--batch 1 --warmup 200 --runs 1000 --json bench.json ...]
# Without the TensorRT Python bindings, times the trtexec-built engine with trtexec.
set -euo pipefail
# shellcheck source=SCRIPTDIR/_common.sh
. "$(dirname "$0")/_common.sh"
parse_script_flags "$@"
jetson_power_check
if have_trt_python; then
    engines bench . ${ARGS[@]+"${ARGS[@]}"}
else
    trtexec="$(find_trtexec)" || die "neither the TensorRT Python bindings nor trtexec are available"
    log "TensorRT Python bindings do not import: timing with $trtexec"
    TRTEXEC="$trtexec" engines bench . --trtexec ${ARGS[@]+"${ARGS[@]}"}
fi
