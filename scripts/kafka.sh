#!/usr/bin/env bash
# Private single-node Kafka (KRaft, combined broker + controller) for the test suite.
#
#   scripts/kafka.sh start  [DIR]   start (or find running) broker; prints KAFKA_BOOTSTRAP=...
#   scripts/kafka.sh stop   [DIR]   SIGTERM, wait, SIGKILL after a deadline
#   scripts/kafka.sh kill   [DIR]   SIGKILL at once (a crash); data stays in DIR
#   scripts/kafka.sh status [DIR]   exit 0 and print KAFKA_BOOTSTRAP when running, else exit 3
#   scripts/kafka.sh fetch          only download the broker jars into the cache
#
# DIR defaults to .services/kafka in the repository. The broker jars come from Maven
# Central through the holder POM scripts/kafka/pom.xml, copied once into
# ${STREAMCORE_CACHE:-~/.cache/streamcore}/kafka/<pom hash>/libs. Readiness is a real
# metadata request made with aiokafka (scripts/kafka/ready.py), so the project's venv
# (or $KAFKA_PYTHON) must have aiokafka installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/kafka"
CMD="${1:-}"
DIR="${2:-$ROOT/.services/kafka}"
READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HEAP="${KAFKA_HEAP:-512m}"
CACHE_ROOT="${STREAMCORE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamcore}"

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

usage() {
    echo "usage: $0 start|stop|kill|status [DIR] | fetch" >&2
    exit 2
}

[[ -n "$CMD" ]] || usage

python_bin() {
    if [[ -n "${KAFKA_PYTHON:-}" ]]; then
        echo "$KAFKA_PYTHON"
    elif [[ -x "$ROOT/.venv/bin/python" ]]; then
        echo "$ROOT/.venv/bin/python"
    else
        command -v python3 || die "no python found for readiness checks"
    fi
}

pom_hash() { sha256sum "$HERE/pom.xml" | cut -c1-16; }

LIBS_DIR="$CACHE_ROOT/kafka/$(pom_hash)/libs"

# Copies the broker and its runtime dependencies into LIBS_DIR once; later runs reuse it.
fetch_libs() {
    [[ -f "$LIBS_DIR/.complete" ]] && return
    command -v mvn >/dev/null 2>&1 || die "mvn not found (Debian package: maven)"
    command -v java >/dev/null 2>&1 || die "java not found (Debian package: openjdk-17-jre-headless)"
    local base
    base="$(dirname "$LIBS_DIR")"
    mkdir -p "$base"
    # One download at a time per cache entry, even with concurrent test runs.
    exec 8>"$base/.lock"
    flock 8
    if [[ ! -f "$LIBS_DIR/.complete" ]]; then
        log "fetching Kafka broker jars into $LIBS_DIR (first run only)"
        local tmp="$base/libs.tmp.$$" started=$SECONDS
        rm -rf "$tmp"
        if ! mvn -B -q -f "$HERE/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >"$base/mvn.log" 2>&1; then
            cat "$base/mvn.log" >&2
            rm -rf "$tmp"
            die "mvn dependency:copy-dependencies failed"
        fi
        ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "broker jar missing after download"
        touch "$tmp/.complete"
        rm -rf "$LIBS_DIR"
        mv "$tmp" "$LIBS_DIR"
        log "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars in $((SECONDS - started))s"
    fi
    flock -u 8
    exec 8>&-
}

[[ "$CMD" == fetch ]] && { fetch_libs; echo "$LIBS_DIR"; exit 0; }

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
PIDFILE="$DIR/kafka.pid"
PROPS="$DIR/server.properties"
LOGFILE="$DIR/broker.log"
PORTFILE="$DIR/ports"
ENVFILE="$DIR/env"
DATA="$DIR/data"

free_port() {
    "$(python_bin)" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

port_is_free() {
    "$(python_bin)" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()' "$1"
}

# Prints the broker's pid when the pidfile names a live kafka.Kafka JVM, else fails.
running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid state
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/stat" ]] || return 1
    state="$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f1)"
    [[ "$state" != Z && "$state" != X ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    echo "$pid"
}

wait_exit() {
    local pid="$1" deadline=$((SECONDS + $2))
    while running_pid >/dev/null && kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

write_props() {
    local port="$1" cport="$2"
    cat >"$PROPS" <<EOF
# Written by scripts/kafka.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=1
log.segment.bytes=67108864
EOF
}

broker_log_tail() {
    log "broker log ($LOGFILE) follows"
    tail -n "${1:-80}" "$LOGFILE" >&2 2>/dev/null || true
}

cmd_start() {
    local pid port cport
    if pid="$(running_pid)"; then
        port="$(cut -d' ' -f1 "$PORTFILE")"
        if "$(python_bin)" "$HERE/ready.py" "127.0.0.1:$port" "$pid" 10; then
            echo "KAFKA_BOOTSTRAP=127.0.0.1:$port" | tee "$ENVFILE"
            return
        fi
        die "broker pid $pid is running but not answering on 127.0.0.1:$port"
    fi
    fetch_libs
    "$(python_bin)" -c 'import aiokafka' 2>/dev/null \
        || die "$(python_bin) lacks aiokafka (run scripts/setup.sh or set KAFKA_PYTHON)"

    port="" cport=""
    if [[ -f "$PORTFILE" ]]; then
        read -r port cport <"$PORTFILE" || true
        if ! port_is_free "$port" || ! port_is_free "$cport"; then port="" cport=""; fi
    fi
    if [[ -z "$port" ]]; then
        port="$(free_port)"
        cport="$(free_port)"
        while [[ "$cport" == "$port" ]]; do cport="$(free_port)"; done
    fi
    echo "$port $cport" >"$PORTFILE"
    write_props "$port" "$cport"
    rm -f "$PIDFILE" "$ENVFILE"

    local cp="$LIBS_DIR/*"
    local -a jvm=(java "-Xmx$HEAP" -Xms128m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
        "-Dlog4j.configuration=file:$HERE/log4j.properties" "-Dkafka.logs.dir=$DIR/logs"
        -cp "$cp")

    if [[ ! -f "$DATA/meta.properties" ]]; then
        local cluster_id
        if [[ -f "$DIR/cluster-id" ]]; then
            cluster_id="$(cat "$DIR/cluster-id")"
        else
            # 16 random bytes, URL-safe base64 without padding; like Kafka's own ids,
            # never starting with "-" (the storage tool would take it for an option).
            cluster_id="$("$(python_bin)" -c 'import base64, os
while (cid := base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode())[0] == "-":
    pass
print(cid)')"
            echo "$cluster_id" >"$DIR/cluster-id"
        fi
        mkdir -p "$DATA"
        if ! "${jvm[@]}" kafka.tools.StorageTool format "--cluster-id=$cluster_id" -c "$PROPS" \
            --ignore-formatted >"$DIR/format.log" 2>&1; then
            cat "$DIR/format.log" >&2
            die "formatting KRaft storage failed"
        fi
    fi

    echo "==== start $(date -Is) port=$port controller=$cport" >>"$LOGFILE"
    nohup "${jvm[@]}" kafka.Kafka "$PROPS" >>"$LOGFILE" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PIDFILE"

    local rc=0
    "$(python_bin)" "$HERE/ready.py" "127.0.0.1:$port" "$pid" "$READY_TIMEOUT" || rc=$?
    if [[ $rc != 0 ]]; then
        if [[ $rc == 2 ]]; then
            log "broker JVM exited during start-up"
        else
            log "broker not ready within ${READY_TIMEOUT}s"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        broker_log_tail 120
        rm -f "$PIDFILE"
        exit 1
    fi
    echo "KAFKA_BOOTSTRAP=127.0.0.1:$port" | tee "$ENVFILE"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PIDFILE" "$ENVFILE"
        log "not running"
        return
    fi
    kill -TERM "$pid" 2>/dev/null || true
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
        port="$(cut -d' ' -f1 "$PORTFILE")"
        if "$(python_bin)" "$HERE/ready.py" "127.0.0.1:$port" "$pid" 5 2>/dev/null; then
            echo "KAFKA_BOOTSTRAP=127.0.0.1:$port"
            return 0
        fi
        log "pid $pid running, not answering on 127.0.0.1:$port"
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
