# Shell helpers shared by demo.sh and install-test.sh (sourced, not run).

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# wait_for FILE TEXT PID [line]: waits until FILE contains TEXT, while PID
# lives; with "line", also for the end of that line (a line may be written
# in pieces). Prompts have no newline, so it reads byte by byte; tail -f
# wakes the reader on each write, there is no sleep loop. Exits the script
# after 30 s without it.
wait_for() {
  local file=$1 text=$2 pid=$3 whole=${4:-} buf="" c
  while IFS= read -r -N 1 -t 30 c; do
    buf+=$c
    if [[ $buf == *"$text"* ]]; then
      [ -z "$whole" ] || [[ ${buf##*"$text"} == *$'\n'* ]] && return 0
    fi
  done < <(tail --pid="$pid" -c +1 -f "$file")
  echo "timed out waiting for '$text' in $file:" >&2
  cat "$file" >&2
  exit 1
}
