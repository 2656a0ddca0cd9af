#!/usr/bin/env bash
# Checks the RPMs as far as a Debian machine can (root; CI runs it): builds
# them (and the SELinux module), checks names, paths, config flags and
# scriptlets, then installs them with rpm into a scratch root whose /usr is a
# writable overlay of this machine's (so the scriptlets run for real, with
# this machine's sh and systemd-sysusers), loads the installed module
# through real libpam, reinstalls (the upgrade scriptlet path) and erases
# them, leaving nothing behind. Runs in a private mount namespace: nothing it
# mounts is visible outside or outlives it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "rpm-test: run it as root (it mounts an overlay for the scratch root)" >&2
  exit 1
fi
if [ -z "${PUSHMFA_RPM_TEST_NS:-}" ]; then
  scripts/build-rpms.sh >/dev/null
  exec env PUSHMFA_RPM_TEST_NS=1 unshare --mount --propagation private "$0" "$@"
fi
rpms=(target/generate-rpm/pam_pushmfa-*.rpm target/generate-rpm/pushmfa-[0-9]*.rpm target/generate-rpm/pushmfa-relay-*.rpm)
root=$(mktemp -d /tmp/pushmfa-rpm.XXXXXX)
ovl=$(mktemp -d /tmp/pushmfa-rpm-ovl.XXXXXX)
cleanup() {
  umount "$root/proc" "$root/usr" 2>/dev/null || true
  rm -rf --one-file-system "$root" "$ovl"
}
trap cleanup EXIT
fail() { echo "rpm-test: FAILED: $*" >&2; exit 1; }

echo "== packages"
for r in "${rpms[@]}"; do
  printf '%-40s %8s bytes\n' "$(basename "$r")" "$(stat -c %s "$r")"
done

echo "== contents"
has() { # rpm, path
  # grep reads the whole list: with -q it would stop early, and rpm's SIGPIPE
  # would fail the pipeline (pipefail) once the list outgrows the pipe.
  rpm -qlp "$1" 2>/dev/null | grep -x "$2" >/dev/null || fail "$(basename "$1") lacks $2"
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
rpm -qp --requires "${rpms[0]}" 2>/dev/null | grep 'libpam.so.0' >/dev/null || fail "pam_pushmfa does not require libpam"
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
rpm -qp --scripts "${rpms[1]}" 2>/dev/null | grep -F "$(grep '^u ' packaging/systemd/pushmfa.sysusers)" >/dev/null ||
  fail "the pre-install user line differs from pushmfa.sysusers"
echo "ok: valid sh, no PAM stack changes, the user matches sysusers.d"

echo "== install into a scratch root (scriptlets run), load the module, upgrade, erase"
mkdir -p "$root"/{usr,etc,dev,proc,run,tmp,var/lib} "$ovl"/{upper,work}
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$ovl/upper,workdir=$ovl/work" "$root/usr"
mount -t proc proc "$root/proc"
for l in bin lib lib64 sbin; do ln -s "usr/$l" "$root/$l"; done
mknod -m 666 "$root/dev/null" c 1 3
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
: >"$root/etc/shadow"
: >"$root/etc/gshadow"
base_etc=$(cd "$root/etc" && ls -A | sort)
quiet() { grep -v -e 'should not be used directly' -e 'assuming you know what you are doing' || true; }
rpm --root "$root" --initdb
rpm --root "$root" -i --nodeps --nosignature "${rpms[@]}" 2>&1 | quiet
rpm --root "$root" -qa | sort
grep -q '^_pushmfa:x:[0-9]*:[0-9]*:pushmfa helper:/var/lib/pushmfa:/usr/sbin/nologin$' "$root/etc/passwd" ||
  fail "%pre did not create the _pushmfa user"
echo "ok: %pre created $(grep '^_pushmfa:' "$root/etc/passwd")"
so=$root/usr/lib64/security/pam_pushmfa.so
[ -f "$so" ] || fail "the module was not installed"
# Real libpam loads it; with no helper it must fail closed (not "module unknown").
pam=$root/tmp/pam.d
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
# A changed configuration survives an upgrade (%config(noreplace)).
echo '# local change' >>"$root/etc/pushmfa/pushmfa.toml"
rpm --root "$root" -U --replacepkgs --nodeps --nosignature "${rpms[@]}" 2>&1 | quiet
grep -q '^# local change$' "$root/etc/pushmfa/pushmfa.toml" || fail "an upgrade replaced the changed pushmfa.toml"
sed -i '$d' "$root/etc/pushmfa/pushmfa.toml"
echo "ok: upgrade kept the changed configuration"
rpm --root "$root" -e pam_pushmfa pushmfa pushmfa-relay 2>&1 | quiet
# Left behind: nothing in /etc but the user database (the user stays, as
# with every distro), no file in /usr, no directory /usr did not have.
# (The rpm database stays too: Debian's rpm keeps it in ~/.rpmdb.)
etc_now=$(cd "$root/etc" && ls -A | grep -v -e '-$' -e '^\.pwd\.lock$' | sort)
[ "$etc_now" = "$base_etc" ] || fail "left in /etc after erase: $(comm -13 <(echo "$base_etc") <(echo "$etc_now"))"
left=$(find "$ovl/upper" -mindepth 1 -type f)
[ -z "$left" ] || fail "files left in /usr after erase: $left"
# (/usr/lib64/security belongs to the pam package on EL; Debian has no such directory.)
left=$(cd "$ovl/upper" && find . -mindepth 1 -type d | while read -r d; do
  [ -d "/usr/$d" ] || [ "$d" = ./lib64/security ] || echo "$d"
done)
[ -z "$left" ] || fail "directories left in /usr after erase: $left"
echo "ok: installed with scriptlets, loaded by libpam (fails closed without a helper), upgraded, erased cleanly"
echo
echo "rpm-test: passed"
