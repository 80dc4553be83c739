# countywatch-collector (rpm): stop on erase ($1 is 0), not on upgrade.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now countywatch-collector.service >/dev/null 2>&1 || true
fi
exit 0
