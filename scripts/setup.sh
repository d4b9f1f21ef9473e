#!/usr/bin/env bash
# Creates .venv (Python >= 3.11) and installs the project with every extra, editable.
# Quick when nothing changed: pip is skipped while .venv/.setup-stamp is newer than
# pyproject.toml. Set PYTHON=/path/to/python3.x to choose the interpreter.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.setup-stamp"
EXTRAS="kafka,redis,avro,dask,daemon,dev"

log() { echo "setup.sh: $*" >&2; }
die() { log "$*"; exit 1; }

version_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null
}

find_python() {
    local cand
    for cand in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
        [[ -n "$cand" ]] || continue
        if command -v "$cand" >/dev/null 2>&1 && version_ok "$cand"; then
            command -v "$cand"
            return
        fi
    done
    return 1
}

venv_ok() {
    [[ -x "$VENV/bin/python" ]] && version_ok "$VENV/bin/python" \
        && "$VENV/bin/python" -m pip --version >/dev/null 2>&1
}

if ! venv_ok; then
    py="$(find_python)" || die "need Python >= 3.11 (set PYTHON=...)"
    log "creating $VENV with $py ($("$py" --version 2>&1))"
    rm -rf "$VENV"
    if ! "$py" -m venv "$VENV"; then
        # Debian's own python3 ships venv support in a separate package.
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "python venv support missing; installing python3-venv"
            rm -rf "$VENV"
            DEBIAN_FRONTEND=noninteractive apt-get update -q
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
            "$py" -m venv "$VENV"
        else
            die "'$py -m venv' failed (Debian: apt-get install python3-venv)"
        fi
    fi
    rm -f "$STAMP"
fi

if [[ -f "$STAMP" && "$STAMP" -nt "$ROOT/pyproject.toml" ]]; then
    exit 0
fi

log "installing streamcore[$EXTRAS] (editable)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "${ROOT}[${EXTRAS}]"
touch "$STAMP"
log "done"
