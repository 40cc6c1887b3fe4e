# shellcheck shell=bash
# Shared by build.sh, verify.sh and bench.sh (sourced, not run). Run those from anywhere: they cd to the
# bundle root (the folder above scripts/). Script flags, taken out before the rest go to `python3 -m engines`:
#   --max-perf   on a Jetson, set MAXN (nvpmodel -m 0) and run jetson_clocks first (asks sudo)
#   --no-prompt  never ask; only report the power mode

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRTEXEC_JETSON=/usr/src/tensorrt/bin/trtexec
MAX_PERF=0
PROMPT=1
ARGS=()

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 2; }

parse_script_flags() {
    for arg in "$@"; do
        case "$arg" in
            --max-perf) MAX_PERF=1 ;;
            --no-prompt) PROMPT=0 ;;
            *) ARGS+=("$arg") ;;
        esac
    done
}

is_jetson() { [ -f /etc/nv_tegra_release ]; }

power_mode() {
    # "MAXN", "5W", ... or empty (engines/envinfo.py parses nvpmodel -q, or $SNP_EDGE_NVPMODEL in a container)
    python3 -m engines power-mode 2>/dev/null || true
}

set_max_perf() {
    command -v nvpmodel >/dev/null 2>&1 || die "nvpmodel not found (inside a container? use --max-perf with docker/run-jetson.sh on the host)"
    log "setting MAXN (sudo nvpmodel -m 0) and max clocks (sudo jetson_clocks)"
    sudo nvpmodel -m 0
    sudo jetson_clocks
}

# Report the Jetson power mode; switch to MAXN only with --max-perf or an interactive yes.
jetson_power_check() {
    is_jetson || return 0
    local mode answer
    mode="$(power_mode)"
    log "Jetson power mode: ${mode:-unknown (nvpmodel not found)}"
    if [ "$MAX_PERF" = 1 ]; then
        set_max_perf
    elif [ "$mode" != "MAXN" ] && [ "$PROMPT" = 1 ] && [ -t 0 ] && command -v nvpmodel >/dev/null 2>&1; then
        printf 'Not in MAXN: timings will be slower and noisier. Set MAXN + jetson_clocks now (sudo)? [y/N] ' >&2
        read -r answer || answer=""
        case "$answer" in
            y|Y|yes) set_max_perf ;;
            *) log "keeping power mode ${mode:-unknown}" ;;
        esac
    elif [ "$mode" != "MAXN" ]; then
        log "not in MAXN: pass --max-perf to set MAXN + jetson_clocks before timing"
    fi
}

have_trt_python() { python3 -c "import tensorrt" >/dev/null 2>&1; }

find_trtexec() {
    if [ -n "${TRTEXEC:-}" ]; then printf '%s\n' "$TRTEXEC"
    elif command -v trtexec >/dev/null 2>&1; then command -v trtexec
    elif [ -x "$TRTEXEC_JETSON" ]; then printf '%s\n' "$TRTEXEC_JETSON"
    else return 1
    fi
}

engines() { log "python3 -m engines $*"; python3 -m engines "$@"; }

cd "$BUNDLE" || exit 2
