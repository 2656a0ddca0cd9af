#!/usr/bin/env bash
# Installs the Debian packages pushmfa builds and tests with, if missing:
# libpam0g-dev (links the module), pamtester + libpam-wrapper (drive real PAM
# logins without root or /etc/pam.d edits), libnss-wrapper, util-linux (setpriv),
# systemd (systemd-socket-activate, to test socket activation), openssh-server,
# openssh-client and sudo (real logins in a private mount namespace),
# chromium, nodejs and npm (the phone web app in a real browser, driven by
# playwright-core, which `npm ci` installs into webapp/node_modules from
# webapp/package-lock.json; it downloads no browser), openssl (test
# certificates), nginx-light (the documented TLS front-end) and redis-server
# (the relay's shared store, also its Sentinel; redis-cli comes with it),
# both started by the tests on private ports, never as a service.
# Arguments name more packages (the packaging scripts add theirs).
set -euo pipefail
pkgs=(libpam0g-dev libpam-wrapper libnss-wrapper pamtester util-linux systemd openssh-server openssh-client sudo chromium openssl nginx-light redis-server "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
webapp_tools() {
  [ -d "$(dirname "$0")/../webapp/node_modules/playwright-core" ] && return 0
  echo "installing the web app's test tools (npm ci)" >&2
  (cd "$(dirname "$0")/../webapp" && npm ci --no-audit --no-fund --loglevel=error)
}
if [ ${#missing[@]} -eq 0 ]; then
  webapp_tools
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
webapp_tools
