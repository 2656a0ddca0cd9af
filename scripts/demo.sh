#!/usr/bin/env bash
# The whole flow on loopback, with a transcript: a relay and a helper on
# temporary ports and sockets, a software authenticator enrolled through
# `pushmfa enroll` (QR code + URI), then real PAM logins (pamtester under
# pam_wrapper, loading the built pam_pushmfa.so): one approved on the
# "phone", one denied, one with a recovery code, one with an offline code
# (no network on the phone); then the phone web app in
# a headless Chromium, enrolled from the link and approving a login (a
# screenshot lands in target/demo-phone.png). Nothing outside a temporary
# directory and that file is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --workspace --quiet
bin=$PWD/target/release

work=$(mktemp -d /tmp/pushmfa-demo.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  # A process killed here exits 143: that is not the demo failing.
  for p in "${pids[@]}"; do { kill "$p" && wait "$p"; } 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

. scripts/lib.sh
run() { printf '$ %s\n' "$*" >&2; "$@"; }

step "Start the relay (untrusted: it carries signed messages, it cannot approve)"
: > "$work/relay.log"
"$bin/pushmfa-relay" --listen 127.0.0.1:0 2>"$work/relay.log" & pids+=($!)
wait_for "$work/relay.log" "listening on" "${pids[-1]}" line
relay_url=$(sed -n 's/.*listening on //p' "$work/relay.log")
cat "$work/relay.log"

step "Start the helper with the relay as its push backend"
cat > "$work/pushmfa.toml" <<TOML
[helper]
socket = "$work/helper.sock"
state_dir = "$work/state"
[backend]
kind = "relay"
url = "$relay_url"
[push]
host_name = "demo-host"
TOML
mkdir "$work/pam.d"
echo "auth required $bin/libpam_pushmfa.so socket=$work/helper.sock" > "$work/pam.d/sshd"
printf 'auth required pam_deny.so\naccount required pam_deny.so\n' > "$work/pam.d/other"
: > "$work/helper.log"
"$bin/pushmfa-helper" --config "$work/pushmfa.toml" --log-stderr 2>"$work/helper.log" & pids+=($!)
wait_for "$work/helper.log" "listening on" "${pids[-1]}" line
cat "$work/helper.log"

user=$(id -un)
phone=("$bin/pushmfa-authenticator" --store "$work/phone")
step "Enroll a software authenticator for $user (the phone scans the QR code; here it gets the URI)"
printf '$ pushmfa enroll --user %s\n' "$user"
: > "$work/enroll.out"
"$bin/pushmfa" --socket "$work/helper.sock" enroll --user "$user" >"$work/enroll.out" 2>"$work/enroll.err" & enroll_pid=$!
pids+=($enroll_pid)
wait_for "$work/enroll.out" "pushmfa://enroll?" "$enroll_pid" line
uri=$(grep '^pushmfa://' "$work/enroll.out")
run "${phone[@]}" enroll "$uri" --name "demo phone"
wait "$enroll_pid"
cat "$work/enroll.out"
code=$(grep -E '^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$' "$work/enroll.out" | head -n1)

# One ssh-style login (PAM_RHOST set, so the number is in the prompt itself).
# $1: what the phone does once the prompt shows the number (approve|deny|none);
# $2: what the user types at the prompt (empty: just Enter).
# Starts pamtester under pam_wrapper (answers go to fd 3); sets rt, out,
# err (its output files) and pt (its pid), and waits for the push prompt.
start_login() {
  rt=$(mktemp -d "$work/pwrap.XXXX"); out=$rt/out; err=$rt/err
  mkfifo "$rt/in"
  LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$work/pam.d" PAM_WRAPPER_RUNTIME_DIR="$rt" \
    pamtester -I rhost=203.0.113.7 sshd "$user" authenticate <"$rt/in" >"$out" 2>"$err" &
  pt=$!
  exec 3>"$rt/in"
  wait_for "$err" "Approve on your phone" "$pt"
}

login() {
  local action=$1 typed=$2 rt out err pt
  start_login
  printf '%s' "$(cat "$err")"; echo
  local number; number=$(grep -o 'number [0-9][0-9]' "$err" | head -n1 | cut -d' ' -f2)
  case $action in
    approve) run "${phone[@]}" approve --number "$number" ;;
    deny) run "${phone[@]}" deny ;;
    browser)
      browser '{"cmd":"wait_request"}'
      browser "{\"cmd\":\"type\",\"digits\":\"$number\"}"
      browser '{"cmd":"screenshot","path":"'"$PWD"'/target/demo-phone.png"}'
      browser '{"cmd":"press","button":"Approve"}' ;;
  esac
  printf '(types: %s)\n' "${typed:-Enter}"
  echo "$typed" >&3
  exec 3>&-
  set +e; wait "$pt"; local rc=$?; set -e
  # What pamtester showed after the prompt (same line first: no newline after a prompt).
  sed '1s/^.*recovery code): //' "$err" | sed '/^$/d'; cat "$out"
  echo "(pamtester exit code $rc)"
  return $rc
}

step "ssh-style login: the phone approves with the number from the prompt"
login approve ""

step "Another login: the phone denies it"
if login deny ""; then echo "UNEXPECTED: a denied login succeeded" >&2; exit 1; fi

step "No phone at hand: type a recovery code at the same prompt"
login none "$code"

# The phone has no signal: the user types o, the prompt shows the request
# as a QR code and a line of text, the authenticator checks it (no network)
# and prints the code, which the user types.
offline_login() {
  local rt out err pt
  start_login
  printf '%s\n(types: o)\n' "$(cat "$err")"
  echo o >&3
  wait_for "$err" "Code from your phone" "$pt"
  sed '1s/^.*phone is offline): //' "$err"; echo
  local request; request=$(grep -o 'PUSHMFA-OFFLINE:[A-Z2-7]*' "$err" | head -n1)
  local shown; shown=$("${phone[@]}" offline --yes "$request")
  printf '$ pushmfa-authenticator offline --yes PUSHMFA-OFFLINE:...\n%s\n' "$shown"
  local code; code=$(printf '%s\n' "$shown" | sed -n 's/^Code: //p')
  printf '(types: %s)\n' "$code"
  echo "$code" >&3
  exec 3>&-
  set +e; wait "$pt"; local rc=$?; set -e
  cat "$out"
  echo "(pamtester exit code $rc)"
  return $rc
}

step "No network on the phone: type o, the phone reads the QR code (here: the line of text) and shows a code"
offline_login

step "The phone web app: a headless Chromium opens the link pushmfa enroll prints"
coproc BROWSER { node webapp/tests/phone.mjs; }
pids+=($BROWSER_PID)
# One command to the browser (webapp/tests/phone.mjs), its answer shown.
browser() {
  printf '  browser: %s\n' "$1"
  echo "$1" >&"${BROWSER[1]}"
  local reply; read -r reply <&"${BROWSER[0]}"
  printf '  -> %s\n' "$reply"
  case $reply in '{"ok":true'*) ;; *) echo "UNEXPECTED: the browser failed" >&2; return 1 ;; esac
}
printf '$ pushmfa enroll --user %s\n' "$user"
: > "$work/enroll-app.out"
"$bin/pushmfa" --socket "$work/helper.sock" enroll --user "$user" >"$work/enroll-app.out" 2>"$work/enroll-app.err" & enroll_pid=$!
pids+=($enroll_pid)
wait_for "$work/enroll-app.out" "/app/#enroll?" "$enroll_pid" line
link=$(grep -m1 "/app/#enroll?" "$work/enroll-app.out")
browser "{\"cmd\":\"open\",\"url\":\"$link\"}"
browser '{"cmd":"enroll","name":"demo browser"}'
wait "$enroll_pid"
grep -v '^.\[' "$work/enroll-app.out" | grep -v '^[0-9A-Z]\{4\}-' || true

step "ssh-style login: approved in the web app with the number from the prompt"
login browser ""
echo '{"cmd":"quit"}' >&"${BROWSER[1]}"
wait "$BROWSER_PID" || true

step "Status"
run "$bin/pushmfa" --socket "$work/helper.sock" status --user "$user"

step "What the helper logged (syslog authpriv in production; never a code)"
cat "$work/helper.log"
if grep -q "$code" "$work/helper.log"; then echo "UNEXPECTED: a code reached the log" >&2; exit 1; fi
echo
echo "Demo finished: approved on the phone, denied on the phone, a recovery code at the same prompt,"
echo "an offline code from the phone with no network,"
echo "and an approval in the phone web app (screenshot: target/demo-phone.png)."
