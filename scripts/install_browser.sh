#!/usr/bin/env bash
# Install the headless browser the end-to-end app test drives (tests/test_app_browser.py):
# Debian's chromium and chromium-driver, from apt. Idempotent: exits at once when both are
# already installed. Needs root (or sudo) and network access to the Debian mirrors.
set -euo pipefail

PACKAGES=(chromium chromium-driver)

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ] && [ -x /usr/bin/chromium ]; then
    echo "install_browser: chromium and chromium-driver already installed ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version))"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "install_browser: need root or sudo to install ${missing[*]}" >&2
    exit 1
fi

echo "install_browser: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" fonts-liberation >/dev/null
/usr/bin/chromium --version
