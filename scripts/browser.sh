#!/usr/bin/env bash
# A headless browser for the live page's test: Debian's chromium and its WebDriver.
#
#   scripts/browser.sh ensure   install chromium and chromium-driver when missing;
#                               prints CHROMIUM=... and CHROMEDRIVER=...
#
# The test command runs this after the services are up, so two apt-get never run at once.
set -euo pipefail

log() { echo "browser.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[[ "${1:-}" == "ensure" ]] || { echo "usage: $0 ensure" >&2; exit 2; }

as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

find_binaries() {
    CHROMIUM="$(command -v chromium || command -v chromium-browser || true)"
    CHROMEDRIVER="$(command -v chromedriver || true)"
    [[ -n "$CHROMIUM" && -n "$CHROMEDRIVER" ]]
}

if ! find_binaries; then
    command -v apt-get >/dev/null 2>&1 || die "chromium missing and no apt-get to install it"
    log "installing Debian's chromium and chromium-driver"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >&2
    find_binaries || die "chromium still missing after install"
fi
echo "CHROMIUM=$CHROMIUM"
echo "CHROMEDRIVER=$CHROMEDRIVER"
