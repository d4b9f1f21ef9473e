#!/usr/bin/env bash
# Creates bench/.venv-kafka-peers with the pinned versions of requirements.txt beside
# this file: Quix Streams and faust-streaming, the peers of bench/bench_kafka.py.
# Quick when nothing changed: pip is skipped while the venv's stamp is newer than
# requirements.txt. Set PYTHON=/path/to/python3.x to choose the interpreter.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$(dirname "$HERE")/.venv-kafka-peers"
REQS="$HERE/requirements.txt"
STAMP="$VENV/.setup-stamp"

log() { echo "peers-kafka/setup.sh: $*" >&2; }
die() { log "$*"; exit 1; }

py="${PYTHON:-python3}"
command -v "$py" >/dev/null 2>&1 || die "no $py found (set PYTHON=...)"

if ! [[ -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    log "creating $VENV with $py ($("$py" --version 2>&1))"
    rm -rf "$VENV"
    "$py" -m venv "$VENV" || die "'$py -m venv' failed (Debian: apt-get install python3-venv)"
    rm -f "$STAMP"
fi

if [[ -f "$STAMP" && "$STAMP" -nt "$REQS" ]]; then
    exit 0
fi

log "installing $(grep -cv '^\s*\(#\|$\)' "$REQS") pinned packages from $REQS"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
touch "$STAMP"
log "done"
