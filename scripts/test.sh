#!/usr/bin/env bash
# The project's one test command.
#
#   scripts/test.sh [PYTEST ARGS...]      e.g. scripts/test.sh tests/runtime -k window
#
# 1. scripts/setup.sh: .venv with Python 3.11, and .venv-3.X with the newest Python found
#    (scripts/pythons.sh newest; PYTHON=python3.X chooses it); quick when up to date
# 2. starts a private Redis and Kafka under .services/run-<pid>/ (stopped on exit), once
# 3. ruff check, mypy (once, in .venv), then (scripts/browser.sh) a headless chromium
# 4. pytest -q -ra with the arguments given, on 3.11 and then on the newer Python, both
#    against the same Redis and Kafka
#
# Without a Python newer than 3.11 (or with PYTHON=python3.11) only 3.11 runs, and the
# output says so. The closing line sums both runs: "tests: N passed, N failed, N skipped".
# Exits non-zero when any phase fails, in either run. With CI=true, a skipped test also
# fails the run (see tests/conftest.py). Set STREAMCORE_TEST_SKIP_LINT=1 to skip ruff and mypy.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
BIN="$ROOT/.venv/bin"  # 3.11: ruff, mypy, the JUnit counts
SERVICES="$ROOT/.services"
RUN_DIR="$SERVICES/run-$$"
T0=$SECONDS
declare -a SUMMARY=()
FAILED=0

note() { echo "==> $*"; }

# Runs one named phase, records its duration and outcome.
phase() {
    local name="$1" start=$SECONDS rc=0
    shift
    note "$name"
    "$@" || rc=$?
    local took=$((SECONDS - start))
    if [[ $rc == 0 ]]; then
        SUMMARY+=("$(printf '%-12s ok      %4ss' "$name" "$took")")
    else
        SUMMARY+=("$(printf '%-12s FAILED  %4ss  (exit %s)' "$name" "$took" "$rc")")
        FAILED=1
    fi
    note "$name: $([[ $rc == 0 ]] && echo ok || echo "FAILED (exit $rc)") in ${took}s"
    return "$rc"
}

print_summary() {
    echo
    echo "==> summary"
    local line
    for line in "${SUMMARY[@]}"; do echo "    $line"; done
    echo "    total        $((SECONDS - T0))s"
}

stop_services() {
    local dir="$1"
    [[ -d "$dir" ]] || return 0
    bash "$ROOT/scripts/redis.sh" stop "$dir/redis" >/dev/null 2>&1 &
    local p1=$!
    bash "$ROOT/scripts/kafka.sh" stop "$dir/kafka" >/dev/null 2>&1 &
    local p2=$!
    wait "$p1" "$p2" || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # Let start-up jobs finish first, so that nothing they launch outlives the run.
    [[ -n "${REDIS_JOB:-}" ]] && wait "$REDIS_JOB" 2>/dev/null
    [[ -n "${KAFKA_JOB:-}" ]] && wait "$KAFKA_JOB" 2>/dev/null
    local counts
    counts="$(count_tests)"  # before the reports go with $RUN_DIR
    if [[ -d "$RUN_DIR" ]]; then
        local start=$SECONDS
        stop_services "$RUN_DIR"
        if [[ $rc == 0 && $FAILED == 0 ]]; then
            rm -rf "$RUN_DIR"
        else
            echo "==> service logs kept in $RUN_DIR (redis/redis.log, kafka/broker.log)"
        fi
        SUMMARY+=("$(printf '%-12s         %4ss' "stop" "$((SECONDS - start))")")
    fi
    print_summary
    if [[ -n "$counts" ]]; then echo "$counts"; fi
    if [[ $rc == 0 && $FAILED != 0 ]]; then rc=1; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Removes what earlier runs left behind when their owner (this script, or a pytest
# that started its own services) is gone: killed, crashed, or a failed run's logs.
clean_stale_runs() {
    local d pid
    for d in "$SERVICES"/run-* "$SERVICES"/pytest-*; do
        [[ -d "$d" ]] || continue
        pid="${d##*-}"
        if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            continue
        fi
        stop_services "$d"
        rm -rf "$d"
    done
}

start_services() {
    mkdir -p "$RUN_DIR"
    bash "$ROOT/scripts/redis.sh" start "$RUN_DIR/redis" >"$RUN_DIR/redis-start.log" 2>&1 &
    REDIS_JOB=$!
    bash "$ROOT/scripts/kafka.sh" start "$RUN_DIR/kafka" >"$RUN_DIR/kafka-start.log" 2>&1 &
    KAFKA_JOB=$!
}

await_services() {
    local ok=0
    local job="$REDIS_JOB"
    REDIS_JOB=""
    if ! wait "$job"; then
        echo "Redis failed to start:" >&2
        cat "$RUN_DIR/redis-start.log" >&2
        ok=1
    fi
    job="$KAFKA_JOB"
    KAFKA_JOB=""
    if ! wait "$job"; then
        echo "Kafka failed to start:" >&2
        cat "$RUN_DIR/kafka-start.log" >&2
        ok=1
    fi
    [[ $ok == 0 ]] || return 1
    # shellcheck disable=SC1091
    source "$RUN_DIR/redis/env"
    # shellcheck disable=SC1091
    source "$RUN_DIR/kafka/env"
    export REDIS_URL KAFKA_BOOTSTRAP
    export REDIS_DIR="$RUN_DIR/redis" KAFKA_DIR="$RUN_DIR/kafka"
    echo "REDIS_URL=$REDIS_URL"
    echo "KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP"
}

# Counts from the JUnit reports of the runs so far: one line per interpreter, then the
# closing line CI reads, summed over them: "tests: N passed, N failed, N skipped".
declare -a JUNITS=()
count_tests() {
    [[ ${#JUNITS[@]} -gt 0 && -x "$BIN/python" ]] || return 0
    "$BIN/python" - "${JUNITS[@]}" <<'PY' 2>/dev/null || true
import os
import sys
import xml.etree.ElementTree as ET

keys = ("tests", "failures", "errors", "skipped")
total = dict.fromkeys(keys, 0)
lines = []
for arg in sys.argv[1:]:
    version, path = arg.split("=", 1)
    if not os.path.exists(path):
        lines.append(f"tests on {version}: no report")
        continue
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    run = {k: sum(int(s.get(k, 0)) for s in suites) for k in keys}
    failed = run["failures"] + run["errors"]
    lines.append(f"tests on {version}: {run['tests'] - failed - run['skipped']} passed, "
                 f"{failed} failed, {run['skipped']} skipped")
    for k in keys:
        total[k] += run[k]
failed = total["failures"] + total["errors"]
if len(lines) > 1:
    print("\n".join(lines))
print(f"tests: {total['tests'] - failed - total['skipped']} passed, {failed} failed, {total['skipped']} skipped")
PY
}

# "3.13" for a venv's interpreter.
venv_version() {
    "$1/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])'
}

# run_pytest VENV [PYTEST ARGS...]
run_pytest() {
    local venv="$1" rc=0 version
    shift
    version="$(venv_version "$venv")"
    local junit="$RUN_DIR/junit-$version.xml"
    JUNITS+=("$version=$junit")
    "$venv/bin/python" -m pytest -q -ra --junitxml="$junit" "$@" || rc=$?
    if [[ $rc == 5 ]]; then
        echo "pytest collected no tests (exit 5): counted as a failure" >&2
    fi
    return "$rc"
}

# The interpreters: 3.11 (the main one) and the newest newer one, each in its own venv.
BASE_PYTHON="$(bash "$ROOT/scripts/pythons.sh" find python3.11)" || BASE_PYTHON=""
if [[ -n "${PYTHON:-}" ]]; then
    NEWER_PYTHON="$(bash "$ROOT/scripts/pythons.sh" find "$PYTHON")" \
        || { echo "PYTHON=$PYTHON: no such interpreter" >&2; exit 1; }
else
    NEWER_PYTHON="$(bash "$ROOT/scripts/pythons.sh" newest)" || NEWER_PYTHON=""
fi

# Without python3.11 setup.sh picks python3 (>= 3.11) for .venv.
PYTHON="$BASE_PYTHON" phase setup bash "$ROOT/scripts/setup.sh" "$ROOT/.venv" || exit 1
BASE_VERSION="$(venv_version "$ROOT/.venv")"
NEWER_VENV=""
if [[ -n "$NEWER_PYTHON" ]]; then
    NEWER_VERSION="$("$NEWER_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    [[ "$NEWER_VERSION" != "$BASE_VERSION" ]] && NEWER_VENV="$ROOT/.venv-$NEWER_VERSION"
fi
if [[ -n "$NEWER_VENV" ]]; then
    note "pythons: the suite runs on $BASE_VERSION and on $NEWER_VERSION ($NEWER_PYTHON)"
elif [[ -n "$NEWER_PYTHON" ]]; then
    note "pythons: the suite runs on $BASE_VERSION only (PYTHON=$PYTHON)"
else
    note "pythons: the suite runs on $BASE_VERSION only: no newer Python found (PYTHON=python3.X names one)"
fi
clean_stale_runs

SERVICES_T0=$SECONDS
note "services: starting Redis and Kafka in $RUN_DIR (in the background)"
start_services

# While the services start.
if [[ -n "$NEWER_VENV" ]]; then
    PYTHON="$NEWER_PYTHON" phase "setup $NEWER_VERSION" bash "$ROOT/scripts/setup.sh" "$NEWER_VENV" \
        || NEWER_VENV=""  # a failed phase: the run fails, and there is no venv to test in
fi

if [[ "${STREAMCORE_TEST_SKIP_LINT:-}" != 1 ]]; then
    phase ruff "$BIN/ruff" check . || true
    phase mypy "$BIN/mypy" || true
fi

# Time from launch to ready; overlaps the lint phases above.
note "services: waiting"
if await_services; then
    SUMMARY+=("$(printf '%-12s ok      %4ss' "services" "$((SECONDS - SERVICES_T0))")")
    note "services: ready $((SECONDS - SERVICES_T0))s after launch"
else
    SUMMARY+=("$(printf '%-12s FAILED  %4ss' "services" "$((SECONDS - SERVICES_T0))")")
    FAILED=1
    exit 1
fi

# After the services (their start may apt-get too): the live page's browser test needs it.
browser_env() {
    local out
    out="$(bash "$ROOT/scripts/browser.sh" ensure)" || return 1
    eval "$out"
    export CHROMIUM CHROMEDRIVER
}
phase browser browser_env || true

phase "pytest $BASE_VERSION" run_pytest "$ROOT/.venv" "$@" || true
if [[ -n "$NEWER_VENV" ]]; then
    phase "pytest $NEWER_VERSION" run_pytest "$NEWER_VENV" "$@" || true
fi
[[ $FAILED == 0 ]] || exit 1
exit 0
