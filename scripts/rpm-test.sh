#!/usr/bin/env bash
# Checks the RPMs as far as a Debian machine can: builds them (and the
# SELinux module), checks names, paths, config flags and scriptlets, installs
# them into a scratch root with rpm (files only: scriptlets need an EL
# system), loads the installed module through real libpam, and erases them
# again leaving nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-rpms.sh >/dev/null
rpms=(target/generate-rpm/pam_pushmfa-*.rpm target/generate-rpm/pushmfa-[0-9]*.rpm target/generate-rpm/pushmfa-relay-*.rpm)
root=$(mktemp -d /tmp/pushmfa-rpm.XXXXXX)
trap 'rm -rf "$root"' EXIT
fail() { echo "rpm-test: FAILED: $*" >&2; exit 1; }

echo "== packages"
for r in "${rpms[@]}"; do
  printf '%-40s %8s bytes\n' "$(basename "$r")" "$(stat -c %s "$r")"
done

echo "== contents"
has() { # rpm, path
  rpm -qlp "$1" 2>/dev/null | grep -qx "$2" || fail "$(basename "$1") lacks $2"
}
has "${rpms[0]}" /usr/lib64/security/pam_pushmfa.so
has "${rpms[1]}" /usr/libexec/pushmfa/pushmfa-helper
has "${rpms[1]}" /usr/lib/systemd/system/pushmfa-helper.socket
has "${rpms[1]}" /usr/lib/sysusers.d/pushmfa.conf
has "${rpms[1]}" /usr/share/pushmfa/selinux/pushmfa.te
has "${rpms[2]}" /usr/bin/pushmfa-relay
[ "$(rpm -qp --configfiles "${rpms[1]}" 2>/dev/null)" = /etc/pushmfa/pushmfa.toml ] || fail "pushmfa.toml is not %config"
[ "$(rpm -qp --configfiles "${rpms[2]}" 2>/dev/null)" = /etc/pushmfa-relay/relay.toml ] || fail "relay.toml is not %config"
# %config(noreplace): file flag RPMFILE_NOREPLACE (16) besides RPMFILE_CONFIG (1).
flags=$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS}\n]' "${rpms[1]}" 2>/dev/null | awk '$1 == "/etc/pushmfa/pushmfa.toml" { print $2 }')
[ $((flags & 17)) -eq 17 ] || fail "pushmfa.toml is not %config(noreplace) (flags $flags)"
rpm -qp --requires "${rpms[0]}" 2>/dev/null | grep -q 'libpam.so.0' || fail "pam_pushmfa does not require libpam"
echo "ok: paths, %config(noreplace), dependencies"

echo "== scriptlets"
for r in "${rpms[@]}"; do
  script=$(rpm -qp --scripts "$r" 2>/dev/null)
  # Each scriptlet must be valid sh (rpm runs them with /bin/sh).
  printf '%s\n' "$script" | grep -v 'scriptlet' | sh -n || fail "$(basename "$r"): scriptlet syntax"
  if [[ $script == *"pam-auth-update"* || $script == *authselect* || $script == *"/etc/pam.d"* ]]; then
    fail "$(basename "$r"): a scriptlet touches the PAM stack"
  fi
done
rpm -qp --scripts "${rpms[1]}" 2>/dev/null | grep -qF "$(grep '^u ' packaging/systemd/pushmfa.sysusers)" ||
  fail "the pre-install user line differs from pushmfa.sysusers"
echo "ok: valid sh, no PAM stack changes, the user matches sysusers.d"

echo "== install into a scratch root, load the module, erase"
rpm --root "$root" --initdb
rpm --root "$root" -i --nodeps --noscripts --nosignature "${rpms[@]}"
rpm --root "$root" -qa | sort
so=$root/usr/lib64/security/pam_pushmfa.so
[ -f "$so" ] || fail "the module was not installed"
# Real libpam loads it; with no helper it must fail closed (not "module unknown").
pam=$root/pam.d
mkdir -p "$pam"
echo "auth required $so socket=$root/no-helper.sock" >"$pam/rpm-test"
printf 'auth required pam_deny.so\naccount required pam_deny.so\n' >"$pam/other"
set +e
out=$(LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$pam" \
  pamtester rpm-test "$(id -un)" authenticate 2>&1 </dev/null)
rc=$?
set -e
echo "$out"
[ $rc -ne 0 ] || fail "a login without a helper succeeded"
[[ $out == *"cannot retrieve authentication info"* ]] || fail "expected PAM_AUTHINFO_UNAVAIL from the installed module"
rm -rf "$pam"
rpm --root "$root" -e --nodeps --noscripts pam_pushmfa pushmfa pushmfa-relay
# (the rpm database itself stays: Debian's rpm keeps it in ~/.rpmdb under the root)
left=$(find "$root" -mindepth 1 -type f -not -path "*rpmdb*" -not -path "$root/var/lib/rpm/*")
[ -z "$left" ] || fail "files left after erase: $left"
echo "ok: installed, loaded by libpam (fails closed without a helper), erased cleanly"
echo
echo "rpm-test: passed"
