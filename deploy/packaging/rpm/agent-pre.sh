# countywatch-agent (rpm): the service user, before the files land.
getent group countywatch-agent >/dev/null || groupadd --system countywatch-agent
getent passwd countywatch-agent >/dev/null || useradd --system --gid countywatch-agent \
    --home-dir /var/lib/countywatch/agent --no-create-home --shell /sbin/nologin \
    --comment "countywatch agent" countywatch-agent
exit 0
