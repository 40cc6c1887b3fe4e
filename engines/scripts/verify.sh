#!/usr/bin/env bash
# Check preprocessing, logits and top-k against the bundle's golden data; exit 1 when a gate fails.
# The engine runs through TensorRT's Python bindings, else through trtexec (--backend onnxruntime checks the
# whole pipeline with ONNX Runtime instead).
#   scripts/verify.sh [same engine flags as build] [--json-file verify.json]
set -euo pipefail
# shellcheck source=SCRIPTDIR/_common.sh
. "$(dirname "$0")/_common.sh"
engines verify "$BUNDLE" "$@"
