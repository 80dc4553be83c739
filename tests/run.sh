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
# (with its gtls driver) as the syslog receiver of event forwarding.
packages=(prometheus prometheus-node-exporter curl iproute2 openssh-server openssh-client sshpass python3-aiosmtpd prometheus-alertmanager rsyslog rsyslog-gnutls)
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

# The end-to-end tests start the real binaries, so build them first.
cargo build --workspace --bins
cargo test --workspace
