#!/usr/bin/env bash
# Build, verify or bench a bundle in the TensorRT x86 image (RTX 3090):
#   docker/run-x86.sh BUNDLE_DIR build|verify|bench|deploy [flags for scripts/<stage>.sh]
# Runs as you (--user): what it writes into the bundle is yours, 0644/0755 by your umask.
set -euo pipefail
usage() { echo "usage: $0 BUNDLE_DIR build|verify|bench|deploy [flags]" >&2; exit 2; }
[ $# -ge 2 ] || usage
bundle="$(cd "$1" && pwd)" || usage
stage="$2"
shift 2
case "$stage" in build|verify|bench|deploy) ;; *) usage ;; esac
[ -f "$bundle/manifest.json" ] || { echo "error: $bundle has no manifest.json: not a bundle" >&2; exit 2; }
IMAGE="${SNP_EDGE_X86_IMAGE:-snp-edge-trt-x86:25.01}"
exec docker run --rm --init --gpus all --user "$(id -u):$(id -g)" -e HOME=/tmp \
    -v "$bundle":/bundle -w /bundle "$IMAGE" bash scripts/"$stage".sh "$@"
