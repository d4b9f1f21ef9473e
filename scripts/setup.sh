#!/usr/bin/env bash
# Creates a venv (Python >= 3.11) and installs the project with every extra, editable.
#
#   scripts/setup.sh [VENV]     VENV defaults to .venv; e.g. PYTHON=python3.13 scripts/setup.sh .venv-3.13
#
# Quick when nothing changed: pip is skipped while VENV/.setup-stamp is newer than
# pyproject.toml. Set PYTHON=/path/to/python3.x to choose the interpreter; a venv made
# with another interpreter than the one PYTHON names is made again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv}"
[[ "$VENV" == /* ]] || VENV="$PWD/$VENV"
STAMP="$VENV/.setup-stamp"
EXTRAS="kafka,redis,avro,dask,daemon,dev"

log() { echo "setup.sh: $*" >&2; }
die() { log "$*"; exit 1; }

version_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null
}

# PYTHON when set (and nothing else: a wrong PYTHON is an error, not a fallback).
find_python() {
    local cand path
    if [[ -n "${PYTHON:-}" ]]; then
        path="$(bash "$ROOT/scripts/pythons.sh" find "$PYTHON")" && version_ok "$path" \
            || die "PYTHON=$PYTHON: not found, or older than 3.11"
        echo "$path"
        return
    fi
    for cand in python3 python3.13 python3.12 python3.11; do
        if path="$(bash "$ROOT/scripts/pythons.sh" find "$cand")" && version_ok "$path"; then
            echo "$path"
            return
        fi
    done
    return 1
}

# "3.13" for an interpreter.
minor_version() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

venv_ok() {
    [[ -x "$VENV/bin/python" ]] && version_ok "$VENV/bin/python" \
        && "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || return 1
    # PYTHON names another minor version than the venv's: make the venv again.
    if [[ -n "${PYTHON:-}" ]]; then
        [[ "$(minor_version "$(find_python)")" == "$(minor_version "$VENV/bin/python")" ]] || return 1
    fi
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
