#!/usr/bin/env bash
# The project's one test command.
#
#   scripts/test.sh [PYTEST ARGS...]      e.g. scripts/test.sh tests/runtime -k window
#
# 1. scripts/setup.sh (venv + editable install; quick when up to date)
# 2. starts a private Redis and Kafka under .services/run-<pid>/ (stopped on exit)
# 3. ruff check, mypy, then (scripts/browser.sh) makes sure a headless chromium is there
# 4. pytest -q -ra with the arguments given
#
# Exits non-zero when any phase fails. With CI=true, a skipped test also fails the run
# (see tests/conftest.py). Set STREAMCORE_TEST_SKIP_LINT=1 to run only pytest.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
BIN="$ROOT/.venv/bin"
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
        SUMMARY+=("$(printf '%-10s ok      %4ss' "$name" "$took")")
    else
        SUMMARY+=("$(printf '%-10s FAILED  %4ss  (exit %s)' "$name" "$took" "$rc")")
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
    echo "    total      $((SECONDS - T0))s"
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
    if [[ -d "$RUN_DIR" ]]; then
        local start=$SECONDS
        stop_services "$RUN_DIR"
        if [[ $rc == 0 && $FAILED == 0 ]]; then
            rm -rf "$RUN_DIR"
        else
            echo "==> service logs kept in $RUN_DIR (redis/redis.log, kafka/broker.log)"
        fi
        SUMMARY+=("$(printf '%-10s         %4ss' "stop" "$((SECONDS - start))")")
    fi
    print_summary
    if [[ -n "${TEST_COUNTS:-}" ]]; then echo "$TEST_COUNTS"; fi
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

# Counts from the JUnit report, as one closing line: "tests: N passed, N failed, N skipped".
count_tests() {
    "$BIN/python" - "$1" <<'PY' 2>/dev/null || true
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
failed = total["failures"] + total["errors"]
passed = total["tests"] - failed - total["skipped"]
print(f"tests: {passed} passed, {failed} failed, {total['skipped']} skipped")
PY
}

run_pytest() {
    local rc=0 junit="$RUN_DIR/junit.xml"
    "$BIN/python" -m pytest -q -ra --junitxml="$junit" "$@" || rc=$?
    if [[ -f "$junit" ]]; then TEST_COUNTS="$(count_tests "$junit")"; fi
    if [[ $rc == 5 ]]; then
        echo "pytest collected no tests (exit 5): counted as a failure" >&2
    fi
    return "$rc"
}

phase setup bash "$ROOT/scripts/setup.sh" || exit 1
clean_stale_runs

SERVICES_T0=$SECONDS
note "services: starting Redis and Kafka in $RUN_DIR (in the background)"
start_services

if [[ "${STREAMCORE_TEST_SKIP_LINT:-}" != 1 ]]; then
    phase ruff "$BIN/ruff" check . || true
    phase mypy "$BIN/mypy" || true
fi

# Time from launch to ready; overlaps the lint phases above.
note "services: waiting"
if await_services; then
    SUMMARY+=("$(printf '%-10s ok      %4ss' "services" "$((SECONDS - SERVICES_T0))")")
    note "services: ready $((SECONDS - SERVICES_T0))s after launch"
else
    SUMMARY+=("$(printf '%-10s FAILED  %4ss' "services" "$((SECONDS - SERVICES_T0))")")
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

phase pytest run_pytest "$@" || true
[[ $FAILED == 0 ]] || exit 1
exit 0
