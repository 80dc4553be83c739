#!/usr/bin/env bash
# Usage: fuzz/run-all.sh [SECONDS] [TARGET...]
# Runs every fuzz target (or only the TARGETs named) for SECONDS (default
# 600) each and prints `target: executions, crashes` for each. Not part of
# CI's time budget.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Crashes are kept in fuzz/artifacts/TARGET/; each must become a regression
# test next to the parser it broke.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
shift || true
root=..

# Seed corpora from the project's own fixtures, once.
seed() {
    local target=$1
    mkdir -p "corpus/$target"
    [ -n "$(ls -A "corpus/$target")" ] && return 0
    case "$target" in
    auth_line)
        split -l 1 -d seeds/auth_line.txt "corpus/$target/line-" ;;
    ingest_body)
        cp seeds/ingest_body/* "corpus/$target/" ;;
    promql_eval)
        grep -h -o 'expr: .*' "$root"/rules/packs/*.yaml "$root"/rules/testdata/corpus/*.yaml |
            sed 's/^expr: //; s/^["'\'']//; s/["'\'']$//' | sort -u |
            split -l 1 -d -a 4 - "corpus/$target/expr-" ;;
    annotation_template)
        grep -h -E '^\s+(summary|description):' "$root"/rules/packs/*.yaml |
            sed -E 's/^\s+(summary|description): //; s/^["'\'']//; s/["'\'']$//' | sort -u |
            split -l 1 -d -a 4 - "corpus/$target/template-" ;;
    rule_file)
        cp "$root"/rules/packs/*.yaml "corpus/$target/"
        find "$root"/rules/testdata/rulefmt -name '*.yaml' -exec cp {} "corpus/$target/" \; ;;
    device_message)
        split -l 1 -d -a 4 seeds/device_message.txt "corpus/$target/message-" ;;
    syslog_stream)
        # A read size byte (7), then the messages newline-framed, and one
        # octet-counted stream.
        i=0
        while IFS= read -r line; do
            printf '\x07%s\n' "$line" >"corpus/$target/stream-$i"
            i=$((i + 1))
        done <seeds/device_message.txt
        message='<13>Nov 28 01:02:03 h app: one'
        printf '\x03%d %s<13>two\n' "${#message}" "$message" >"corpus/$target/octets" ;;
    detection_rules)
        cp "$root"/rules/detection/*.yaml "corpus/$target/" ;;
    snmp_response)
        # Real snmpd answers (a system GET, IF-MIB GETBULK walks) captured
        # on loopback with `snmpbulkwalk -d`, in pairs behind a u16 length.
        cp seeds/snmp_response/* "corpus/$target/" ;;
    agent_config)
        cp "$root"/deploy/agent.example.yaml "$root"/deploy/packaging/agent.yaml "corpus/$target/" 2>/dev/null || true ;;
    collector_config)
        cp "$root"/deploy/collector.example.yaml "$root"/deploy/notify.example.yaml "$root"/deploy/packaging/collector.yaml "corpus/$target/" 2>/dev/null || true ;;
    esac
}

if [ "$#" -gt 0 ]; then
    targets="$*"
else
    targets=$(cargo +nightly fuzz list)
fi
for target in $targets; do
    seed "$target"
done
cargo +nightly fuzz build --release $targets >/dev/null 2>&1 || cargo +nightly fuzz build --release

printf '%-22s %14s %8s\n' target executions crashes
for target in $targets; do
    log="artifacts/$target.log"
    mkdir -p "artifacts/$target"
    cargo +nightly fuzz run --release "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || true
    executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    crashes=$(find "artifacts/$target" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    printf '%-22s %14s %8s\n' "$target" "${executions:-?}" "$crashes"
done
