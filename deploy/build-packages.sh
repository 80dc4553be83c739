#!/usr/bin/env bash
# Builds the county-server packages: both binaries for glibc 2.17 and later
# (CentOS 7, Kylin, UOS, openEuler, every Debian/Ubuntu) with cargo-zigbuild,
# then a .deb (cargo-deb) and an .rpm (cargo-generate-rpm) of each, into
# target/packages/. Needs cargo-zigbuild, cargo-deb, cargo-generate-rpm and
# zig (`pip install ziglang`); tests/run.sh installs them.
# TARGET=aarch64-unknown-linux-gnu.2.17 builds for Kunpeng/Phytium servers
# (docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${TARGET:-x86_64-unknown-linux-gnu.2.17}
# The glibc suffix is zigbuild's; cargo's own triple is without it.
triple=${target%.2.*}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/glibc217}
out=target/packages
mkdir -p "$out"

cargo zigbuild --release --locked --target "$target" \
    -p countywatch-agent -p countywatch-collector

for package in countywatch-agent countywatch-collector; do
    cargo deb --no-build --no-strip --target "$triple" -p "$package" --output "$out/"
    cargo generate-rpm --target "$triple" --target-dir "$CARGO_TARGET_DIR" \
        -p "${package#countywatch-}" --output "$out/"
done
ls -l "$out"
