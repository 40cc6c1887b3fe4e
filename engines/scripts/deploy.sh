#!/usr/bin/env bash
# Make this device ready, unattended: preflight (bundle hashes, TensorRT, GPU, disk, memory + swap, power
# mode), build (or reuse) the engine, verify it. Writes one status JSON even on failure
# (BUNDLE/deploy-status.json, or --status-file PATH). No network access; never prompts with --no-prompt.
#   scripts/deploy.sh [--no-prompt] [--max-perf] [--status-file PATH] [--backend onnxruntime] [--preflight-only]
#   PYTHON=/path/to/python3 scripts/deploy.sh ...    (another interpreter, e.g. a venv's; default: python3)
# The status JSON is rewritten first on every exit, usage errors included; --json also prints it on failure.
# Exit status: 0 deployed; 1 verification failed; 2 bad input (bundle modified, bad flag); 3 missing
# prerequisite (TensorRT, GPU, disk, memory, Pillow); 4 power mode / sudo (sudo -n needs a password).
set -euo pipefail
# shellcheck source=SCRIPTDIR/_common.sh
. "$(dirname "$0")/_common.sh"
engines deploy "$BUNDLE" "$@"
