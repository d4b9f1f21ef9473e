#!/usr/bin/env bash
# Private Redis server for the test suite.
#
#   scripts/redis.sh start  [DIR]   start (or find running) server; prints REDIS_URL=...
#   scripts/redis.sh stop   [DIR]   clean shutdown, waits for the process to exit
#   scripts/redis.sh kill   [DIR]   SIGKILL (a crash, for recovery tests); data stays in DIR
#   scripts/redis.sh status [DIR]   exit 0 and print REDIS_URL when running, else exit 3
#
# DIR defaults to .services/redis in the repository. The server listens on a free
# 127.0.0.1 port (kept across stop/start in the same DIR when still free, so clients
# can reconnect), uses an append-only file in DIR/data, and writes REDIS_URL to DIR/env.
# Installs Debian's redis-server package when the binary is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CMD="${1:-}"
DIR="${2:-$ROOT/.services/redis}"
READY_TIMEOUT="${REDIS_READY_TIMEOUT:-20}"
STOP_TIMEOUT="${REDIS_STOP_TIMEOUT:-20}"

log() { echo "redis.sh: $*" >&2; }
die() { log "$*"; exit 1; }

usage() {
    echo "usage: $0 start|stop|kill|status [DIR]" >&2
    exit 2
}

[[ -n "$CMD" ]] || usage
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
PIDFILE="$DIR/redis.pid"
CONF="$DIR/redis.conf"
LOGFILE="$DIR/redis.log"
PORTFILE="$DIR/port"
ENVFILE="$DIR/env"

as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

ensure_installed() {
    if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
        return
    fi
    log "redis-server not found; installing Debian's redis-server package"
    # Keep the package from starting the system-wide service: tests run their own.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e "$policy" ]]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        added_policy=1
    fi
    local rc=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || rc=$?
    if [[ $rc == 0 ]]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server || rc=$?
    fi
    if [[ $added_policy == 1 ]]; then
        as_root rm -f "$policy"
    fi
    [[ $rc == 0 ]] || die "apt-get failed (exit $rc)"
    command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after install"
}

free_port() {
    local py
    py="$(command -v python3 || true)"
    [[ -n "$py" ]] || py="$ROOT/.venv/bin/python"
    "$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

port_is_free() {
    local py
    py="$(command -v python3 || true)"
    [[ -n "$py" ]] || py="$ROOT/.venv/bin/python"
    "$py" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()' "$1"
}

# Prints the server's pid when the pidfile names a live redis-server, else fails.
running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q redis-server || return 1
    echo "$pid"
}

ping() {
    [[ "$(redis-cli -h 127.0.0.1 -p "$1" --no-auth-warning ping 2>/dev/null || true)" == PONG ]]
}

url_for() { echo "redis://127.0.0.1:$1/0"; }

write_conf() {
    local port="$1"
    mkdir -p "$DIR/data"
    cat >"$CONF" <<EOF
# Written by scripts/redis.sh; rewritten on every start.
bind 127.0.0.1
port $port
protected-mode yes
daemonize yes
pidfile $PIDFILE
logfile $LOGFILE
dir $DIR/data
appendonly yes
appendfsync everysec
maxmemory-policy noeviction
save ""
databases 16
EOF
}

# True while PID is a live process; an exited one not yet reaped (zombie) counts as gone.
alive() {
    local state
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

wait_exit() {
    local pid="$1" deadline=$((SECONDS + $2))
    while alive "$pid"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

cmd_start() {
    ensure_installed
    local pid port
    if pid="$(running_pid)"; then
        port="$(cat "$PORTFILE")"
        if ping "$port"; then
            echo "REDIS_URL=$(url_for "$port")" | tee "$ENVFILE"
            return
        fi
        die "redis-server pid $pid is running but does not answer on port $port"
    fi
    port=""
    if [[ -f "$PORTFILE" ]]; then
        port="$(cat "$PORTFILE")"
        port_is_free "$port" || port=""
    fi
    [[ -n "$port" ]] || port="$(free_port)"
    echo "$port" >"$PORTFILE"
    write_conf "$port"
    rm -f "$PIDFILE" "$ENVFILE"
    : >>"$LOGFILE"
    local log_start
    log_start="$(wc -l <"$LOGFILE")"
    if ! redis-server "$CONF"; then
        tail -n +"$((log_start + 1))" "$LOGFILE" >&2 || true
        die "redis-server failed to start"
    fi
    local deadline=$((SECONDS + READY_TIMEOUT))
    until ping "$port"; do
        if ((SECONDS >= deadline)); then
            log "no PONG from 127.0.0.1:$port within ${READY_TIMEOUT}s; log follows"
            tail -n +"$((log_start + 1))" "$LOGFILE" >&2 || true
            if pid="$(running_pid)"; then kill -9 "$pid" 2>/dev/null || true; fi
            exit 1
        fi
        sleep 0.1
    done
    echo "REDIS_URL=$(url_for "$port")" | tee "$ENVFILE"
}

cmd_stop() {
    local pid port
    if ! pid="$(running_pid)"; then
        rm -f "$PIDFILE" "$ENVFILE"
        log "not running"
        return
    fi
    port="$(cat "$PORTFILE" 2>/dev/null || true)"
    if [[ -n "$port" ]] && command -v redis-cli >/dev/null 2>&1; then
        redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
    else
        kill -TERM "$pid" 2>/dev/null || true
    fi
    if ! wait_exit "$pid" "$STOP_TIMEOUT"; then
        log "pid $pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_exit "$pid" 10 || die "pid $pid did not exit"
    fi
    rm -f "$PIDFILE" "$ENVFILE"
    log "stopped"
}

cmd_kill() {
    local pid
    if ! pid="$(running_pid)"; then
        log "not running"
        return
    fi
    kill -KILL "$pid" 2>/dev/null || true
    wait_exit "$pid" 10 || die "pid $pid did not exit"
    rm -f "$PIDFILE" "$ENVFILE"
    log "killed"
}

cmd_status() {
    local pid port
    if pid="$(running_pid)"; then
        port="$(cat "$PORTFILE")"
        if ping "$port"; then
            echo "REDIS_URL=$(url_for "$port")"
            return 0
        fi
        log "pid $pid running, not answering on port $port"
        return 3
    fi
    log "not running"
    return 3
}

case "$CMD" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    kill) cmd_kill ;;
    status) cmd_status ;;
    *) usage ;;
esac
