#!/usr/bin/env bash
# Build, verify or bench a bundle in the Jetson image (JetPack 4.6), run on the Jetson itself:
#   docker/run-jetson.sh BUNDLE_DIR build|verify|bench [--max-perf] [flags for scripts/<stage>.sh]
# Power mode is a host setting: this script reports it, sets MAXN + jetson_clocks only with --max-perf, and
# passes `nvpmodel -q` into the container (SNP_EDGE_NVPMODEL) so bench JSON records it.
set -euo pipefail
usage() { echo "usage: $0 BUNDLE_DIR build|verify|bench [--max-perf] [flags]" >&2; exit 2; }
[ $# -ge 2 ] || usage
bundle="$(cd "$1" && pwd)" || usage
stage="$2"
shift 2
case "$stage" in build|verify|bench) ;; *) usage ;; esac
[ -f "$bundle/manifest.json" ] || { echo "error: $bundle has no manifest.json: not a bundle" >&2; exit 2; }
args=()
for arg in "$@"; do
    if [ "$arg" = "--max-perf" ]; then
        echo "setting MAXN (sudo nvpmodel -m 0) and max clocks (sudo jetson_clocks)" >&2
        sudo nvpmodel -m 0
        sudo jetson_clocks
    else
        args+=("$arg")
    fi
done
nvp="$(nvpmodel -q 2>/dev/null || true)"
echo "host power mode: $(cd "$bundle" && python3 -m engines power-mode 2>/dev/null)" >&2
IMAGE="${SNP_EDGE_JETSON_IMAGE:-snp-edge-jetson:r32.7.1}"
exec docker run --rm --runtime nvidia -e SNP_EDGE_NVPMODEL="$nvp" \
    -v "$bundle":/bundle -w /bundle "$IMAGE" bash scripts/"$stage".sh --no-prompt ${args[@]+"${args[@]}"}
