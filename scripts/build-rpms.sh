#!/usr/bin/env bash
# Builds the RPMs into target/generate-rpm/ (Fedora/RHEL paths, see docs/rhel.md):
#   pam_pushmfa     the PAM module (/usr/lib64/security)
#   pushmfa         helper (socket-activated, user _pushmfa), CLI, software authenticator
#   pushmfa-relay   the relay and its (disabled) unit
# and compiles the SELinux module in packaging/selinux/ with the refpolicy
# development files, to prove it builds (it is shipped as source).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh rpm selinux-policy-dev checkpolicy semodule-utils
command -v cargo-generate-rpm >/dev/null || cargo install cargo-generate-rpm --locked
cargo build --release --workspace
# -p takes the member's directory (not its crate name) in cargo-generate-rpm 0.21.
for member in pam_pushmfa helper relay; do
  cargo generate-rpm -p "$member"
done
selinux=$(mktemp -d)
trap 'rm -rf "$selinux"' EXIT
cp packaging/selinux/pushmfa.{te,if,fc} "$selinux/"
make -s -C "$selinux" -f /usr/share/selinux/devel/Makefile pushmfa.pp >/dev/null
mkdir -p target/selinux && cp "$selinux/pushmfa.pp" target/selinux/
ls -l target/generate-rpm/*.rpm target/selinux/pushmfa.pp
