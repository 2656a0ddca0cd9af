#!/usr/bin/env bash
# Installs the Debian packages pushmfa builds and tests with, if missing:
# libpam0g-dev (links the module), pamtester + libpam-wrapper (drive real PAM
# logins without root or /etc/pam.d edits), libnss-wrapper, util-linux (setpriv),
# systemd (systemd-socket-activate, to test socket activation), openssh-server,
# openssh-client and sudo (real logins in a private mount namespace).
# Arguments name more packages (the packaging scripts add theirs).
set -euo pipefail
pkgs=(libpam0g-dev libpam-wrapper libnss-wrapper pamtester util-linux systemd openssh-server openssh-client sudo "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
