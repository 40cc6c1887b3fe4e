#!/usr/bin/env bash
# Build, verify, bench or deploy a bundle in its Jetson image, run on the Jetson itself:
#   docker/run-jetson.sh BUNDLE_DIR build|verify|bench|deploy [--max-perf] [flags for scripts/<stage>.sh]
# The image is the bundle target's (engines/common/targets.py): jetson-nano -> snp-edge-jetson:r32.7.1 (JetPack 4.6),
# jetson-orin / jetson-orin-nano -> snp-edge-jetson-orin:r36.4.0 (JetPack 6.1), jetson-orin-jp5 ->
# snp-edge-jetson-orin:r35.4.1 (JetPack 5.1.2); $SNP_EDGE_JETSON_IMAGE overrides it. All run with
# --runtime nvidia (JetPack 4 mounts CUDA and TensorRT from the host; JetPack 5/6 images carry them).
# The container runs as you (--user, plus the video group that owns the GPU device nodes), so everything it
# writes into the bundle (engines, sidecars, JSON) is yours, 0644/0755 by your umask.
# Power mode is a host setting: with --max-perf the host's python3 runs the bundle's power session around
# `docker run` (sudo -n nvpmodel -m <the module's fastest mode> + jetson_clocks, both restored when the
# container exits, also on failure or SIGTERM); `nvpmodel -q` goes into the container (SNP_EDGE_NVPMODEL) so
# bench JSON records it.
# Exit status: the stage's (0 ok, 1 verify failed, 2 bad input, 3 missing prerequisite, 4 power mode/sudo).
set -euo pipefail
usage() { echo "usage: $0 BUNDLE_DIR build|verify|bench|deploy [--max-perf] [flags]" >&2; exit 2; }
[ $# -ge 2 ] || usage
bundle="$(cd "$1" && pwd)" || usage
stage="$2"
shift 2
case "$stage" in build|verify|bench|deploy) ;; *) usage ;; esac
[ -f "$bundle/manifest.json" ] || { echo "error: $bundle has no manifest.json: not a bundle" >&2; exit 2; }
power=()
args=()
for arg in "$@"; do
    if [ "$arg" = "--max-perf" ]; then power=(--max-perf); else args+=("$arg"); fi
done
nvp="$(nvpmodel -q 2>/dev/null || true)"
target="$(python3 -I -c 'import json, sys; print(json.load(open(sys.argv[1]))["target"])' \
    "$bundle/manifest.json" 2>/dev/null)" || { echo "error: $bundle/manifest.json is not readable JSON" >&2; exit 2; }
case "$target" in
    jetson-nano) default_image=snp-edge-jetson:r32.7.1 ;;
    jetson-orin|jetson-orin-nano) default_image=snp-edge-jetson-orin:r36.4.0 ;;
    jetson-orin-jp5) default_image=snp-edge-jetson-orin:r35.4.1 ;;
    *) echo "error: $bundle is for $target, not a Jetson: use the target's run script (docker/run-x86.sh)" >&2
       exit 2 ;;
esac
IMAGE="${SNP_EDGE_JETSON_IMAGE:-$default_image}"
groups=()
video_gid="$(getent group video 2>/dev/null | cut -d: -f3 || true)"
[ -n "$video_gid" ] && groups=(--group-add "$video_gid")
run=(docker run --rm --init --runtime nvidia --user "$(id -u):$(id -g)" ${groups[@]+"${groups[@]}"} -e HOME=/tmp
     -e SNP_EDGE_NVPMODEL="$nvp" -v "$bundle":/bundle -w /bundle "$IMAGE"
     bash scripts/"$stage".sh --no-prompt ${args[@]+"${args[@]}"})
if [ ${#power[@]} -gt 0 ]; then
    exec python3 -I -B "$bundle/engines/__main__.py" power-mode "$bundle" --max-perf --no-prompt -- "${run[@]}"
fi
echo "host power mode: $(python3 -I -B "$bundle/engines/__main__.py" power-mode "$bundle" 2>/dev/null)" >&2
exec "${run[@]}"
