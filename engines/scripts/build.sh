#!/usr/bin/env bash
# Build the TensorRT engine for this bundle (cached in trt-cache/ under its cache key; reused when nothing
# changed; --force rebuilds). TensorRT's Python builder where its bindings import, else trtexec (same cache
# key and sidecar; no --fp32-norms there).
#   scripts/build.sh [--max-perf] [--no-prompt] [--force] [--builder trtexec] [--json-file build.json] ...
set -euo pipefail
# shellcheck source=SCRIPTDIR/_common.sh
. "$(dirname "$0")/_common.sh"
engines build "$BUNDLE" "$@"
