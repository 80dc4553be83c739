#!/bin/sh
# Installs, enrols and starts the countywatch agent on one server, offline:
# everything it needs is the package or binary copied next to it. Safe to run
# again (it repairs and skips what is done), and `--uninstall` undoes it.
#
#   install-agent.sh --package countywatch-agent_0.1.0-1_amd64.deb \
#       --collector https://collector.county.gov:9782 --token cwt_... --ca-sha256 FINGERPRINT
#   install-agent.sh --binary ./countywatch-agent --collector ... --token ... --ca-sha256 ...
#   install-agent.sh --uninstall [--purge]
#
# Options: --name NAME (default: the token's name, else the host name),
# --no-start (install and enrol only). Needs root. POSIX sh, so it runs on
# CentOS 7, Kylin, UOS and openEuler as well as Debian and Ubuntu.
set -eu

user=countywatch-agent
config=/etc/countywatch/agent.yaml
state=/var/lib/countywatch/agent
unit=countywatch-agent.service
unit_dir=/etc/systemd/system
bin=/usr/bin/countywatch-agent

package="" binary="" collector="" token="" ca_sha256="" name="" start=yes
uninstall=no purge=no

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
say() { echo "install-agent: $*"; }
die() { echo "install-agent: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --package) package=$2; shift 2 ;;
        --binary) binary=$2; shift 2 ;;
        --collector) collector=$2; shift 2 ;;
        --token) token=$2; shift 2 ;;
        --ca-sha256) ca_sha256=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --no-start) start=no; shift ;;
        --uninstall) uninstall=yes; shift ;;
        --purge) purge=yes; shift ;;
        -h|--help) usage ;;
        *) echo "install-agent: unknown option $1" >&2; usage ;;
    esac
done

[ "$(id -u)" -eq 0 ] || die "run as root"
have_systemd=no
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then have_systemd=yes; fi

# Runs a command as the agent's user, so that the key it writes is its own.
as_agent() {
    if command -v runuser >/dev/null 2>&1; then runuser -u "$user" -- "$@"
    else su -s /bin/sh "$user" -c "$(printf '%s ' "$@")"; fi
}

if [ "$uninstall" = yes ]; then
    if [ "$have_systemd" = yes ]; then systemctl disable --now "$unit" >/dev/null 2>&1 || true; fi
    if command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W "$user" >/dev/null 2>&1; then
        if [ "$purge" = yes ]; then dpkg --purge "$user"; else dpkg --remove "$user"; fi
    elif command -v rpm >/dev/null 2>&1 && rpm -q "$user" >/dev/null 2>&1; then
        rpm -e "$user"
    else
        rm -f "$bin" "$unit_dir/$unit"
        if [ "$purge" = yes ]; then
            rm -rf "$state" "$config"
            rmdir /etc/countywatch /var/lib/countywatch 2>/dev/null || true
            if getent passwd "$user" >/dev/null; then userdel "$user"; fi
            if getent group "$user" >/dev/null; then groupdel "$user"; fi
        fi
    fi
    if [ "$purge" = yes ]; then rm -rf "$state"; fi
    if [ "$have_systemd" = yes ]; then systemctl daemon-reload || true; fi
    say "uninstalled (purge: $purge)"
    exit 0
fi

# 1. The software: a package through the system's package manager, or a
# bare binary with the unit and config this script carries.
if [ -n "$package" ]; then
    [ -f "$package" ] || die "no such package: $package"
    case "$package" in
        *.deb) DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$package" >/dev/null ;;
        *.rpm) rpm -U --replacepkgs "$package" ;;
        *) die "a package ends in .deb or .rpm: $package" ;;
    esac
    say "installed $package"
elif [ -n "$binary" ]; then
    [ -x "$binary" ] || die "not an executable: $binary"
    install -m 0755 "$binary" "$bin.new" && mv -f "$bin.new" "$bin"
    getent group "$user" >/dev/null || groupadd --system "$user"
    getent passwd "$user" >/dev/null || useradd --system --gid "$user" --home-dir "$state" \
        --no-create-home --shell /sbin/nologin --comment "countywatch agent" "$user"
    if getent group adm >/dev/null; then usermod -a -G adm "$user"; fi
    install -d -m 0755 /etc/countywatch /var/lib/countywatch
    install -d -m 0700 -o "$user" -g "$user" "$state"
    if [ ! -f "$config" ]; then
        printf 'state_dir: %s\ninterval: 15s\n' "$state" >"$config"
    fi
    chown "root:$user" "$config" && chmod 0640 "$config"
    # The hardened unit travels beside this script (deploy/systemd/ in the
    # source tree, or the same folder when copied to a server).
    here=$(dirname "$0")
    for candidate in "$here/systemd/$unit" "$here/$unit"; do
        if [ -f "$candidate" ]; then
            mkdir -p "$unit_dir"
            install -m 0644 "$candidate" "$unit_dir/$unit"
            break
        fi
    done
    [ -f "$unit_dir/$unit" ] || say "no $unit beside this script: copy deploy/systemd/$unit to $unit_dir/"
    say "installed $bin"
elif [ ! -x "$bin" ]; then
    die "give --package FILE or --binary FILE (nothing installed yet)"
fi

"$bin" check-config "$config" >/dev/null || die "invalid $config (see countywatch-agent check-config $config)"

# 2. Enrolment, once: the agent's own key, a certificate for its name.
if [ -f "$state/identity/enrollment.json" ]; then
    say "already enrolled; keeping the identity in $state/identity"
elif [ -n "$token" ]; then
    [ -n "$collector" ] && [ -n "$ca_sha256" ] || die "--token needs --collector and --ca-sha256"
    set -- enroll --config "$config" --collector "$collector" --token "$token" --ca-sha256 "$ca_sha256"
    if [ -n "$name" ]; then set -- "$@" --name "$name"; fi
    as_agent "$bin" "$@"
else
    say "installed but not enrolled: run again with --collector, --token and --ca-sha256"
    exit 0
fi

# 3. The service, started only once enrolled.
if [ "$start" = yes ] && [ "$have_systemd" = yes ]; then
    systemctl daemon-reload
    systemctl enable "$unit" >/dev/null 2>&1
    systemctl restart "$unit"
    say "started $unit"
elif [ "$start" = yes ]; then
    say "no systemd here: start the agent with: runuser -u $user -- $bin run --config $config"
fi
