# countywatch-collector (rpm): the state directory; enable and (re)start.
install -d -m 0755 /var/lib/countywatch
install -d -m 0700 -o countywatch -g countywatch /var/lib/countywatch/collector
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
    systemctl enable countywatch-collector.service >/dev/null 2>&1 || true
    systemctl restart countywatch-collector.service || true
fi
exit 0
