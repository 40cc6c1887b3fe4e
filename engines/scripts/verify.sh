#!/usr/bin/env bash
# Check the engine against the bundle's golden ONNX Runtime logits; exits 1 when outside tolerance.
#   scripts/verify.sh [python3 -m engines verify flags: the same engine flags as build, --json PATH]
set -euo pipefail
# shellcheck source=SCRIPTDIR/_common.sh
. "$(dirname "$0")/_common.sh"
parse_script_flags "$@"
have_trt_python || die "verify needs the TensorRT Python bindings and pycuda/cuda-python: on a Jetson use the system python3 or docker/run-jetson.sh"
engines verify . ${ARGS[@]+"${ARGS[@]}"}
