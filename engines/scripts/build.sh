#!/usr/bin/env bash
# Build the TensorRT engine for this bundle (cached in trt-cache/; reused when nothing changed).
#   scripts/build.sh [--max-perf] [--no-prompt] [python3 -m engines build flags, e.g. --fp32-norms]
# Without the TensorRT Python bindings, falls back to trtexec (no --fp32-norms there).
set -euo pipefail
# shellcheck source=SCRIPTDIR/_common.sh
. "$(dirname "$0")/_common.sh"
parse_script_flags "$@"
jetson_power_check
if have_trt_python; then
    engines build . ${ARGS[@]+"${ARGS[@]}"}
else
    trtexec="$(find_trtexec)" || die "neither the TensorRT Python bindings nor trtexec are available"
    log "TensorRT Python bindings do not import: building with $trtexec"
    mkdir -p trt-cache
    cmd="$(TRTEXEC="$trtexec" python3 -m engines trtexec-cmd . --stage build ${ARGS[@]+"${ARGS[@]}"})"
    log "$cmd"
    eval "$cmd"
fi
