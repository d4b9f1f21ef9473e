#!/usr/bin/env bash
# Finds Python interpreters for the test command and scripts/setup.sh.
#
#   scripts/pythons.sh find NAME    absolute path of a working NAME (python3.13, 3.13, a path)
#   scripts/pythons.sh newest       the newest working python3.X above 3.11, if any
#
# A name on PATH counts only when it runs: pyenv puts shims for every installed version
# on PATH, and a shim for a version that is not selected exits with "command not found".
# Then pyenv's own versions/ directory is looked at (newest patch release first).
# Exits 1 with no output when nothing is found.
set -uo pipefail

NEWEST_MINORS=(14 13 12)

# Prints the absolute path of the interpreter $1 when it runs.
works() {
    "$1" -c 'import sys; print(sys.executable)' 2>/dev/null
}

find_python() {
    local name="$1" path root cand
    [[ "$name" =~ ^3\.[0-9]+$ ]] && name="python$name"
    if [[ "$name" == */* ]]; then
        works "$name"
        return
    fi
    if path="$(command -v "$name" 2>/dev/null)" && works "$path"; then
        return 0
    fi
    # python3.13 -> pyenv's versions/3.13.*/bin/python3.13
    if [[ "$name" =~ ^python(3\.[0-9]+)$ ]]; then
        root="${PYENV_ROOT:-$HOME/.pyenv}"
        for cand in $(ls -d "$root/versions/${BASH_REMATCH[1]}".* 2>/dev/null | sort -rV); do
            [[ -x "$cand/bin/$name" ]] && works "$cand/bin/$name" && return 0
        done
    fi
    return 1
}

case "${1:-}" in
    find) find_python "${2:?usage: pythons.sh find NAME}" ;;
    newest)
        for minor in "${NEWEST_MINORS[@]}"; do
            find_python "python3.$minor" && exit 0
        done
        exit 1
        ;;
    *) echo "usage: pythons.sh find NAME | newest" >&2; exit 2 ;;
esac
