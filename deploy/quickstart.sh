#!/usr/bin/env bash
# README command 1: builds countywatch, starts a collector with its embedded
# defaults and an agent for this host connected to it, and prints where to
# look. Data lives in ./.countywatch/. `deploy/quickstart.sh stop` stops both.
# `--no-build` uses the binaries in target/release as they are; without it
# they are rebuilt only when a source file is newer than them.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.countywatch
mkdir -p "$state"

stop() {
    for name in agent collector; do
        if [ -f "$state/$name.pid" ] && kill -0 "$(cat "$state/$name.pid")" 2>/dev/null; then
            kill "$(cat "$state/$name.pid")"
            echo "stopped the $name"
        fi
        rm -f "$state/$name.pid"
    done
}

build=yes
case "${1:-}" in
    stop)
        stop
        exit 0
        ;;
    --no-build) build=no ;;
    "") ;;
    *)
        echo "usage: deploy/quickstart.sh [stop | --no-build]" >&2
        exit 2
        ;;
esac
stop >/dev/null

bin=target/release
# Rebuild only when a source or manifest is newer than a binary: cargo
# itself would also notice, but it takes a while to say so.
# The crates the daemons are built from: the workspace's members, read from
# Cargo.toml so that a new crate cannot be forgotten here (the test crate
# builds no daemon).
crates=$(sed -n 's/^members = \[\(.*\)\]/\1/p' Cargo.toml | tr -d '",' | tr ' ' '\n' | grep -vx tests)
up_to_date() {
    for name in countywatch-collector countywatch-agent; do
        [ -x "$bin/$name" ] || return 1
        # shellcheck disable=SC2086 # one word per crate directory
        if [ -n "$(find Cargo.toml Cargo.lock $crates \
            -newer "$bin/$name" \( -name '*.rs' -o -name '*.toml' -o -name '*.yaml' \
            -o -name '*.css' -o -name '*.json' -o -name Cargo.lock \) -print -quit 2>/dev/null)" ]; then
            return 1
        fi
    done
}
if [ "$build" = no ]; then
    for name in countywatch-collector countywatch-agent; do
        [ -x "$bin/$name" ] || { echo "--no-build: $bin/$name is missing" >&2; exit 1; }
    done
elif up_to_date; then
    echo "binaries in $bin are up to date; not rebuilding"
else
    cargo build --release --bins -p countywatch-collector -p countywatch-agent
fi

"$bin/countywatch-collector" --log-format json run --data-dir "$state/collector" \
    >"$state/collector.log" 2>&1 &
echo $! >"$state/collector.pid"

# Wait until both listeners are up; the log says where.
http_addr=""
for _ in $(seq 1 100); do
    http_addr=$(grep -o '"listener":"http","addr":"[^"]*"' "$state/collector.log" | head -1 | cut -d'"' -f8 || true)
    if [ -n "$http_addr" ] && grep -q '"listener":"ingest"' "$state/collector.log"; then
        break
    fi
    if ! kill -0 "$(cat "$state/collector.pid")" 2>/dev/null; then
        echo "the collector did not start:" >&2
        cat "$state/collector.log" >&2
        exit 1
    fi
    sleep 0.1
done
ingest_addr=$(grep -o '"listener":"ingest","addr":"[^"]*"' "$state/collector.log" | head -1 | cut -d'"' -f8)
fingerprint=$("$bin/countywatch-collector" fingerprint --data-dir "$state/collector")

# Enrol this host's agent once: a single-use token, then the agent's own
# key and a certificate from the collector's CA.
if [ ! -f "$state/agent/identity/enrollment.json" ]; then
    enroll_addr=$(grep -o '"listener":"enroll","addr":"[^"]*"' "$state/collector.log" | head -1 | cut -d'"' -f8)
    token=$("$bin/countywatch-collector" token create --data-dir "$state/collector" --ttl 10m \
        | sed -n 's/^token: //p')
    "$bin/countywatch-agent" enroll --collector "https://$enroll_addr" --token "$token" \
        --ca-sha256 "$fingerprint" --state-dir "$state/agent"
fi

"$bin/countywatch-agent" --log-format json run --state-dir "$state/agent" \
    >"$state/agent.log" 2>&1 &
echo $! >"$state/agent.pid"

# The first start creates the user admin with a random password in this
# file; the first login replaces it and the file goes.
password_file="$state/collector/initial-admin-password"
if [ -f "$password_file" ]; then
    password=$(cat "$password_file")
    password_note="(from $password_file; you choose a new one at first login)"
else
    password="the one you chose at your first login"
    password_note="(forgotten? countywatch-collector user add admin --role admin --data-dir $state/collector)"
fi

cat <<MSG
countywatch is running.
  metrics (Prometheus format): http://$http_addr/metrics
  web page:                    http://$http_addr/
    user:                      admin
    password:                  $password
                               $password_note
  agent reports to:            https://$ingest_addr (mutual TLS; CA SHA-256 $fingerprint)
  enrol another server:        $bin/countywatch-collector token create --data-dir $state/collector
  logs:                        $state/collector.log, $state/agent.log
  stop both:                   deploy/quickstart.sh stop
The agent's first batch arrives within a few seconds; try
  curl -s http://$http_addr/metrics | grep node_memory_MemTotal_bytes
MSG
