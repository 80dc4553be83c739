# countywatch-agent (rpm): never starts an unenrolled agent; restarts an
# enrolled one on upgrade.
install -d -m 0755 /var/lib/countywatch
install -d -m 0700 -o countywatch-agent -g countywatch-agent /var/lib/countywatch/agent
# The textfile collector's directory (probes.textfile.directory).
install -d -m 0755 -o root -g root /var/lib/countywatch/textfile
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
    systemctl enable countywatch-agent.service >/dev/null 2>&1 || true
    if [ -f /var/lib/countywatch/agent/identity/enrollment.json ]; then
        systemctl restart countywatch-agent.service || true
    fi
fi
exit 0
