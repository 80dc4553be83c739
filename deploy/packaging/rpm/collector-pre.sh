# countywatch (rpm): the service user, before the files land.
getent group countywatch >/dev/null || groupadd --system countywatch
getent passwd countywatch >/dev/null || useradd --system --gid countywatch \
    --home-dir /var/lib/countywatch/collector --no-create-home --shell /sbin/nologin \
    --comment "countywatch collector" countywatch
exit 0
