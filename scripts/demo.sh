#!/usr/bin/env bash
# The whole recovery-code flow on loopback, with a transcript:
#   a helper on a temporary socket and state directory, recovery codes for
#   the current user, a real PAM login (pamtester under pam_wrapper, loading
#   the built pam_pushmfa.so) that succeeds with a code, then fails when the
#   same code is used again. Nothing outside a temporary directory is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --workspace --quiet
bin=$PWD/target/release

work=$(mktemp -d /tmp/pushmfa-demo.XXXXXX)
chmod 755 "$work"
helper_pid=
cleanup() {
  [ -n "$helper_pid" ] && kill "$helper_pid" 2>/dev/null && wait "$helper_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/pushmfa.toml" <<TOML
[helper]
socket = "$work/helper.sock"
state_dir = "$work/state"
TOML
mkdir "$work/pam.d"
echo "auth required $bin/libpam_pushmfa.so socket=$work/helper.sock" > "$work/pam.d/pushmfa-demo"
printf 'auth required pam_deny.so\naccount required pam_deny.so\n' > "$work/pam.d/other"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

step "Start the helper (foreground daemon; here in the background on a temp socket)"
: > "$work/helper.log"
"$bin/pushmfa-helper" --config "$work/pushmfa.toml" --log-stderr 2>"$work/helper.log" &
helper_pid=$!
# tail -f wakes on each new line (inotify), and ends with the helper.
if ! timeout 10 grep -q -m1 "listening on" < <(tail --pid="$helper_pid" -n +1 -f "$work/helper.log"); then
  echo "the helper did not start:" >&2; cat "$work/helper.log" >&2; exit 1
fi
cat "$work/helper.log"

user=$(id -un)
step "Generate recovery codes for $user"
run "$bin/pushmfa" --socket "$work/helper.sock" recovery generate --user "$user" | tee "$work/codes"
code=$(head -n1 "$work/codes")

login() {
  local rt; rt=$(mktemp -d "$work/pwrap.XXXX")
  printf '$ echo %s | pamtester pushmfa-demo %s authenticate   # PAM stack: %s\n' "$1" "$user" "$(cat "$work/pam.d/pushmfa-demo")"
  set +e
  echo "$1" | LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$work/pam.d" \
    PAM_WRAPPER_RUNTIME_DIR="$rt" pamtester -I rhost=203.0.113.7 -I tty=pts/4 pushmfa-demo "$user" authenticate 2>&1
  local rc=$?
  set -e
  echo "(pamtester exit code $rc)"
  return $rc
}

step "Log in with the first code"
login "$code"

step "Log in again with the same code: it was used up (pamtester has no second line for the retry prompt)"
if login "$code"; then echo "UNEXPECTED: a used code was accepted" >&2; exit 1; fi

step "Status"
run "$bin/pushmfa" --socket "$work/helper.sock" status --user "$user"

step "What the helper logged (syslog authpriv in production; never a code)"
cat "$work/helper.log"
if grep -q "$code" "$work/helper.log"; then echo "UNEXPECTED: a code reached the log" >&2; exit 1; fi
echo
echo "Demo finished: one login succeeded with a recovery code, its reuse was refused."
