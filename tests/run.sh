#!/usr/bin/env bash
# Installs the system packages the test suite needs (once, quietly) and runs
# every test. README command 2; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests start for real: promtool (prometheus), a real
# node_exporter to compare against, curl as an HTTPS client, iproute2 for the
# network namespaces of the link-cut test, OpenSSH (server, client, sshpass)
# for the replay test over a real sshd's log, an SMTP server (aiosmtpd, run
# with /usr/bin/python3) and Alertmanager for the notification tests, rsyslog
# (with its gtls driver) as the syslog receiver of event forwarding; for the
# packaging tests (tests/tests/e2e/packaging.rs): debootstrap for a Debian 12
# root, rpm to list the .rpm, systemd for systemd-analyze, binutils for
# objdump, strace to check the daemons against the units' system call filter;
# bsdutils for logger, the syslog client of tests/tests/e2e/syslog.rs
# (essential on Debian, listed so the dependency is written down).
# One package per line, so that issues adding peers do not collide.
packages=(
    prometheus
    prometheus-node-exporter
    curl
    iproute2
    openssh-server
    openssh-client
    sshpass
    python3-aiosmtpd
    prometheus-alertmanager
    rsyslog
    rsyslog-gnutls
    debootstrap
    rpm
    systemd
    binutils
    strace
    # The TLS audit (tests/tests/e2e/tls_audit.rs) is done with openssl s_client.
    openssl
    # libfaketime (its thread-safe libfaketimeMT, from the libfaketime
    # dependency), to move the daemons' wall clock (faults.rs, county_report.rs).
    faketime
    # The incident page's browser test (tests/tests/e2e/incident_web.rs):
    # headless Chromium driven over WebDriver by chromedriver.
    chromium
    chromium-driver
    # CJK glyphs, so the console's Chinese pages render (and are judged)
    # in Chromium's screenshots (tests/tests/e2e/console_web.rs).
    fonts-noto-cjk
    # The audit test edits incidents.db with the sqlite3 CLI, as an intruder
    # would; a fault test holds a lock on collector.db with it.
    sqlite3
    bsdutils
    # A real SNMP agent (net-snmp) the SNMP probe polls (e2e snmp).
    snmpd
    # snmpget/snmpwalk, to compare the agent's figures with net-snmp's (e2e snmp).
    snmp
    # The reference for the SNMP probe's names, labels and values (e2e snmp).
    prometheus-snmp-exporter
    # Active response (tests/tests/e2e/response.rs): the agent's nftables
    # table in namespaces the tests create, and the iptables + ipset
    # fallback; the packaging test traces all three against the unit's
    # system call filter.
    nftables
    ipset
    iptables
    # The system tzdb the agent reads log times' zones from (Asia/Shanghai
    # in the parse and agent tests, TZ=Asia/Shanghai in e2e local_time).
    tzdata
)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Packaging tools, pinned, installed only when missing: cargo-zigbuild
# builds for glibc 2.17 with zig (from PyPI), cargo-deb and
# cargo-generate-rpm make the packages. A first install compiles for
# several minutes; later runs find them.
cargo_tools=(cargo-zigbuild@0.24.1 cargo-deb@3.8.0 cargo-generate-rpm@0.21.1)
for tool in "${cargo_tools[@]}"; do
    if ! command -v "${tool%@*}" >/dev/null 2>&1; then
        cargo install --locked --quiet "$tool"
    fi
done
if ! python3 -c 'import ziglang' 2>/dev/null; then
    python3 -m pip install --quiet 'ziglang==0.17.1'
fi

# The end-to-end tests start the real binaries, so build them first; the
# packaging tests need the glibc 2.17 build and the packages.
cargo build --workspace --bins
time deploy/build-packages.sh
cargo test --workspace -- --skip packaging::
# The packaging tests print exposure scores and the time of each heavy step.
cargo test -p countywatch-e2e --test e2e packaging:: -- --nocapture --test-threads=1
