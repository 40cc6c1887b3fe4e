#!/usr/bin/env bash
# Build, verify or bench a bundle in the TensorRT x86 image (RTX 3090):
#   docker/run-x86.sh BUNDLE_DIR build|verify|bench [flags for scripts/<stage>.sh]
set -euo pipefail
usage() { echo "usage: $0 BUNDLE_DIR build|verify|bench [flags]" >&2; exit 2; }
[ $# -ge 2 ] || usage
bundle="$(cd "$1" && pwd)" || usage
stage="$2"
shift 2
case "$stage" in build|verify|bench) ;; *) usage ;; esac
[ -f "$bundle/manifest.json" ] || { echo "error: $bundle has no manifest.json: not a bundle" >&2; exit 2; }
IMAGE="${SNP_EDGE_X86_IMAGE:-snp-edge-trt-x86:25.01}"
exec docker run --rm --gpus all --user "$(id -u):$(id -g)" -e HOME=/tmp \
    -v "$bundle":/bundle -w /bundle "$IMAGE" bash scripts/"$stage".sh "$@"
