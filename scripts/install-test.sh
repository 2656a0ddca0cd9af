#!/usr/bin/env bash
# Installs the .deb packages on this machine and uses them the way a
# sysadmin would, then purges them (root only; CI runs it):
#   0. lintian must pass (with the justified overrides only);
#   1. dpkg -i the three packages: the PAM stack must not change (Default: no);
#   2. the packaged relay, and `pushmfa configure --relay-url` pointing the host at it;
#   3. the helper started the way its units start it: socket activation
#      (systemd-socket-activate on the .socket's path), as the unit's User=,
#      with the unit's ExecStart= command line;
#   4. a throwaway user with a password, enrolled with the software
#      authenticator through `pushmfa enroll`;
#   5. `pam-auth-update --enable pushmfa`, then pamtester through the real
#      common-auth: password + approval on the authenticator succeeds; a
#      denial fails; a recovery code works; a wrong password never sends a push;
#   6. dpkg -i over itself (upgrade): configuration and PAM stack kept;
#   7. the same through the stack docs/rhel.md's authselect profile renders,
#      used as a substack (its per-service alternative);
#   8. dpkg -P: /etc/pam.d must be byte for byte what it was, state and
#      configuration gone.
# Whatever it added is removed on every exit path; if /etc/pam.d still
# differs then, it is restored from a copy and the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test: run it as root (it installs packages and changes the PAM stack)" >&2
  exit 1
fi
pkgs=(pushmfa-relay pushmfa libpam-pushmfa)
for p in "${pkgs[@]}"; do
  state=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  if [ -n "$state" ] && [ "$state" != not-installed ]; then
    echo "install-test: $p is already on this machine ($state); it would be purged, so stopping here" >&2
    exit 1
  fi
done
for d in /var/lib/pushmfa /etc/pushmfa /run/pushmfa; do
  if [ -e "$d" ]; then
    echo "install-test: $d exists (left from an install?); remove it first" >&2
    exit 1
  fi
done

scripts/build-debs.sh >/dev/null
arch=$(dpkg --print-architecture)
deb() { ls -t target/debian/"$1"_*_"$arch".deb | head -n1; }
# Lintian clean: every remaining override says why in its file.
scripts/install-deps.sh lintian
if ! lint=$(lintian --fail-on error,warning "$(deb libpam-pushmfa)" "$(deb pushmfa)" "$(deb pushmfa-relay)" 2>&1); then
  echo "$lint" >&2
  echo "install-test: lintian found problems" >&2
  exit 1
fi

svc=pushmfa-install-test
user=pmfa-inst-$$
password="inst-$RANDOM-$RANDOM-pw"
had_sysuser=$(getent passwd _pushmfa >/dev/null && echo yes || echo no)
work=$(mktemp -d /tmp/pushmfa-install.XXXXXX)
chmod 755 "$work"
pids=()

# What "byte for byte" is checked against: names, types, modes, owners and contents.
snapshot() {
  (cd /etc/pam.d && find . -printf '%p %y %m %u:%g %l\n' | sort &&
    find . -type f -print0 | sort -z | xargs -0 sha256sum)
}
snapshot >"$work/pam.d.before"
tar -C /etc -cpf "$work/pam.d.tar" pam.d
tar -C /var/lib -cpf "$work/pam-state.tar" pam

cleanup() {
  local rc=$?
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -f "/etc/pam.d/$svc" "/etc/pam.d/$svc-stack"
  local installed=()
  for p in "${pkgs[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = not-installed ] ||
      installed+=("$p")
  done
  [ ${#installed[@]} -eq 0 ] || dpkg -P "${installed[@]}" >/dev/null 2>&1
  if ! snapshot | cmp -s - "$work/pam.d.before"; then
    echo "install-test: /etc/pam.d differed at exit; restored it from the copy" >&2
    rm -rf /etc/pam.d && tar -C /etc -xpf "$work/pam.d.tar"
    rc=1
  fi
  rm -rf /var/lib/pam && tar -C /var/lib -xpf "$work/pam-state.tar"
  userdel "$user" 2>/dev/null
  rm -f "/run/faillock/$user" "/var/run/faillock/$user"
  [ "$had_sysuser" = yes ] || userdel _pushmfa 2>/dev/null
  rm -rf /run/pushmfa /var/lib/pushmfa /etc/pushmfa /etc/pushmfa-relay "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. scripts/lib.sh
run() { printf '# %s\n' "$*"; "$@"; }
fail() { echo "install-test: FAILED: $*" >&2; exit 1; }

step "Install the packages"
run dpkg -i "$(deb libpam-pushmfa)" "$(deb pushmfa)" "$(deb pushmfa-relay)"
getent passwd _pushmfa >/dev/null || fail "the _pushmfa system user was not created"
snapshot | cmp -s - "$work/pam.d.before" || fail "installing changed /etc/pam.d (the profile must be Default: no)"
echo "ok: _pushmfa exists, /etc/pam.d unchanged"

step "Start the packaged relay (on loopback; it cannot approve anything)"
install -d -o nobody -m 0700 "$work/relay"
: >"$work/relay.log"
setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs \
  /usr/bin/pushmfa-relay --config /etc/pushmfa-relay/relay.toml --listen 127.0.0.1:0 --data "$work/relay" \
  2>"$work/relay.log" &
pids+=($!)
wait_for "$work/relay.log" "listening on" "${pids[-1]}" line
relay_url=$(sed -n 's/.*listening on //p' "$work/relay.log")

step "Point the host at the relay: one command"
run pushmfa configure --relay-url "$relay_url" --host-name install-test
grep -q "^url = \"$relay_url\"" /etc/pushmfa/pushmfa.toml || fail "configure did not set the URL"

step "Start the helper the way its units do"
unit=/usr/lib/systemd/system/pushmfa-helper.service
sock_unit=/usr/lib/systemd/system/pushmfa-helper.socket
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
unit_user=$(sed -n 's/^User=//p' "$unit")
listen=$(sed -n 's/^ListenStream=//p' "$sock_unit")
sock_mode=$(sed -n 's/^SocketMode=//p' "$sock_unit")
state_mode=$(sed -n 's/^StateDirectoryMode=//p' "$unit")
# What systemd does for DirectoryMode=, StateDirectory= and StateDirectoryMode=.
install -d -m "$(sed -n 's/^DirectoryMode=//p' "$sock_unit")" "$(dirname "$listen")"
install -d -o "$unit_user" -g "$unit_user" -m "$state_mode" /var/lib/pushmfa
: >"$work/helper.log"
# The helper starts on the first connection (Accept=no), as under systemd.
# Its log goes to stderr here: this machine has no syslog socket.
# shellcheck disable=SC2086 # ExecStart= is split into words, as systemd does.
(umask 077 && exec systemd-socket-activate -l "$listen" \
  setpriv --reuid="$unit_user" --regid="$unit_user" --clear-groups --no-new-privs \
  $exec_start --log-stderr) 2>"$work/helper.log" &
pids+=($!)
helper_pid=${pids[-1]}
wait_for "$work/helper.log" "Listening on" "$helper_pid" line
chmod "$sock_mode" "$listen"
printf '# %s (as %s, socket %s mode %s)\n' "$exec_start" "$unit_user" "$listen" "$sock_mode"

step "Create $user and enroll the software authenticator: one command"
useradd --no-create-home --shell /usr/sbin/nologin "$user"
echo "$user:$password" | chpasswd
phone=(pushmfa-authenticator --store "$work/phone")
: >"$work/enroll.out"
echo "# pushmfa enroll --user $user"
pushmfa enroll --user "$user" >"$work/enroll.out" 2>"$work/enroll.err" &
enroll_pid=$!
pids+=($enroll_pid)
wait_for "$work/enroll.out" "pushmfa://enroll?" "$enroll_pid" line
run "${phone[@]}" enroll "$(grep '^pushmfa://' "$work/enroll.out")" --name "install test"
wait "$enroll_pid" || fail "pushmfa enroll failed: $(cat "$work/enroll.err")"
code=$(grep -E '^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$' "$work/enroll.out" | head -n1)
[ -n "$code" ] || fail "enrollment showed no recovery codes"
# The helper really runs as the unit's user.
helper_uid=$(stat -c %u "/proc/$helper_pid")
[ "$helper_uid" = "$(id -u "$unit_user")" ] || fail "helper runs as uid $helper_uid, not $unit_user"
echo "ok: helper pid $helper_pid runs as $unit_user"

step "Enable it in the PAM stack: one command"
run pam-auth-update --enable pushmfa
grep -q 'pam_pushmfa.so' /etc/pam.d/common-auth || fail "common-auth has no pam_pushmfa line"
grep -v '^#' /etc/pam.d/common-auth | sed '/^$/d'
echo "@include common-auth" >"/etc/pam.d/$svc"
run pushmfa doctor || fail "pushmfa doctor found a problem with the installation"

# One login through /etc/pam.d/$svc (an ssh-like login: PAM_RHOST set).
# $1: password typed; $2: what the phone does at the number prompt
# (approve|deny|none); $3: typed at that prompt (empty: Enter).
login() {
  local pw=$1 action=$2 typed=$3 rt number rc
  rt=$(mktemp -d "$work/login.XXXX")
  mkfifo "$rt/in"
  pamtester -I rhost=203.0.113.7 "$svc" "$user" authenticate <"$rt/in" >"$rt/out" 2>"$rt/err" &
  local pt=$!
  exec 3>"$rt/in"
  wait_for "$rt/err" "assword:" "$pt"
  echo "$pw" >&3
  if [ "$action" != wrong-password ]; then
    wait_for "$rt/err" "Approve on your phone" "$pt"
    number=$(grep -o 'number [0-9][0-9]' "$rt/err" | head -n1 | cut -d' ' -f2)
    case $action in
      approve) "${phone[@]}" approve --number "$number" ;;
      deny) "${phone[@]}" deny ;;
    esac
    echo "$typed" >&3
  fi
  exec 3>&-
  set +e
  wait "$pt"
  rc=$?
  set -e
  sed 's/^/    /' "$rt/err" "$rt/out"
  echo "    (pamtester exit code $rc)"
  LAST_ERR=$(cat "$rt/err")
  return $rc
}

step "Login through common-auth: password, then approve on the authenticator"
login "$password" approve "" || fail "the approved login failed"

step "Login through common-auth: the authenticator denies"
if login "$password" deny ""; then fail "a denied login succeeded"; fi

step "Login through common-auth: no phone, a recovery code at the same prompt"
login "$password" none "$code" || fail "the recovery-code login failed"

step "Wrong password: the push is never sent"
# The recovery-code login's request may still be pending on the phone
# until it expires; no new one may appear.
pending_ids() { "${phone[@]}" pending | awk '$1 != "no" { print $1 }' | sort; }
before=$(pending_ids)
if login "wrong-$password" wrong-password ""; then fail "a wrong password succeeded"; fi
[[ $LAST_ERR != *"Approve on your phone"* ]] || fail "a wrong password reached pam_pushmfa"
new_requests=$(comm -13 <(echo "$before") <(pending_ids))
[ -z "$new_requests" ] || fail "a push was sent after a wrong password: $new_requests"
echo "ok: no push request after the wrong password"

step "Reinstall over itself (the upgrade path): configuration and PAM stack stay"
cp /etc/pam.d/common-auth "$work/common-auth.enabled"
run dpkg -i "$(deb libpam-pushmfa)" "$(deb pushmfa)" "$(deb pushmfa-relay)" >/dev/null
cmp -s /etc/pam.d/common-auth "$work/common-auth.enabled" || fail "an upgrade changed common-auth"
grep -q "^url = \"$relay_url\"" /etc/pushmfa/pushmfa.toml || fail "an upgrade lost the configured relay"
login "$password" approve "" || fail "the approved login failed after the upgrade"

step "The stack docs/rhel.md renders from its authselect profile (with-pushmfa with-faillock)"
# Taken from the document itself, so the documented stack is the tested one.
# Used as docs/rhel.md's per-service alternative uses it: as a substack.
awk '/^Rendered with `with-pushmfa with-faillock`/ { f = 1; next }
     f && /^```$/ { if (n++) exit; next }
     f && n == 1 { print }' docs/rhel.md >"/etc/pam.d/$svc-stack"
grep -q 'pam_pushmfa.so' "/etc/pam.d/$svc-stack" || fail "no rendered stack found in docs/rhel.md"
echo "auth substack $svc-stack" >"/etc/pam.d/$svc"
sed 's/^/    /' "/etc/pam.d/$svc-stack"
login "$password" approve "" || fail "the approved login failed through the rhel.md stack"
before=$(pending_ids)
if login "wrong-$password" wrong-password ""; then fail "a wrong password succeeded through the rhel.md stack"; fi
[[ $LAST_ERR != *"Approve on your phone"* ]] || fail "a wrong password reached pam_pushmfa (rhel.md stack)"
[ -z "$(comm -13 <(echo "$before") <(pending_ids))" ] || fail "a push was sent after a wrong password (rhel.md stack)"
echo "ok: right password + approval succeeds, a wrong password fails with no push"

step "Purge"
kill "$helper_pid" && wait "$helper_pid" 2>/dev/null || true
rm -f "/etc/pam.d/$svc" "/etc/pam.d/$svc-stack"
run dpkg -P "${pkgs[@]}"
if ! snapshot | diff -u "$work/pam.d.before" -; then
  fail "/etc/pam.d is not what it was before the install"
fi
for f in /etc/pushmfa /etc/pushmfa-relay /var/lib/pushmfa /usr/share/pam-configs/pushmfa \
  /usr/lib/x86_64-linux-gnu/security/pam_pushmfa.so /usr/libexec/pushmfa; do
  [ ! -e "$f" ] || fail "$f is still there after purge"
done
echo "ok: /etc/pam.d is byte for byte what it was; configuration and state are gone"
echo
echo "install-test: passed"
