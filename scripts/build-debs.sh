#!/usr/bin/env bash
# Builds the Debian packages into target/debian/:
#   libpam-pushmfa  the PAM module and the pam-auth-update profile
#   pushmfa         helper (socket-activated, user _pushmfa), CLI, software authenticator
#   pushmfa-relay   the relay and its (disabled) unit
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo build --release --workspace
for pkg in pam_pushmfa pushmfa-helper pushmfa-relay; do
  cargo deb --no-build -p "$pkg"
done
ls -l target/debian/*.deb
