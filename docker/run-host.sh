#!/usr/bin/env bash
# Run the host-stage image with the current folder mounted at /work:
#   docker/run-host.sh bundle ...    (any `snp-edge` arguments; paths relative to the current folder)
set -euo pipefail
IMAGE="${SNP_EDGE_HOST_IMAGE:-snp-edge-host}"
tty_flag=()
[ -t 0 ] && tty_flag=(-it)
exec docker run --rm --init ${tty_flag[@]+"${tty_flag[@]}"} --user "$(id -u):$(id -g)" -e HOME=/tmp \
    -v "$PWD":/work -w /work "$IMAGE" "$@"
