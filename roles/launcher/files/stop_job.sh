#!/usr/bin/env bash
# Stop a run's job on this node: launch.sh, every process below it, and its container.
# torchrun starts its workers in sessions of their own, so a process-group kill would miss them;
# walk the tree. A container's processes live under the runtime's monitor, not under launch.sh:
# remove the container by the name launch.sh recorded.
# Usage: stop_job.sh RUN_DIR REASON RC   (records REASON and RC unless the job already ended)
set -u
cd "$1" || exit 0

remove_container() {
  local runtime name
  read -r runtime name < container 2>/dev/null || return 0
  case "$runtime" in
    podman) podman rm --force --ignore --time 5 "$name" > /dev/null 2>&1 ;;
    enroot) enroot remove --force "$name" > /dev/null 2>&1 ;;
  esac
}

if [ -e rc ]; then remove_container; exit 0; fi
read -r root started < pid 2>/dev/null || exit 0

# The PID file names launch.sh and its start time: after a reboot or PID reuse the same number is
# another process, which must not be touched.
still_the_job() {
  local stat
  stat=$(cat "/proc/$root/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "$(echo "$stat" | cut -d' ' -f20)" = "${started:-}" ]
}

tree() { local c; for c in $(ps -o pid= --ppid "$1"); do tree "$c"; done; echo "$1"; }
alive() { local p; for p in $pids; do
  [ -r "/proc/$p/stat" ] && [ "$(cut -d' ' -f3 "/proc/$p/stat")" != Z ] && return 0; done; return 1; }

if still_the_job; then
  pids=$(tree "$root")
  kill -TERM $pids 2>/dev/null
  for _ in $(seq 30); do alive || break; sleep 0.5; done   # torchrun gets time to stop its workers
  alive && kill -KILL $pids 2>/dev/null
else
  echo "pid $root is no longer this run's launch.sh: not signalled" >&2
fi
remove_container
printf '%s\n' "$2" > reason
[ -e rc ] || echo "$3" > rc
echo stopped
