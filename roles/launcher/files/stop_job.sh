#!/usr/bin/env bash
# Stop a run's job on this node: launch.sh and every process below it. torchrun starts its
# workers in sessions of their own, so a process-group kill would miss them; walk the tree.
# Usage: stop_job.sh RUN_DIR REASON RC   (records REASON and RC unless the job already ended)
set -u
cd "$1" || exit 0
[ -e rc ] && exit 0
root=$(cat pid 2>/dev/null) || exit 0

tree() { local c; for c in $(ps -o pid= --ppid "$1"); do tree "$c"; done; echo "$1"; }
alive() { local p; for p in $pids; do
  [ -r "/proc/$p/stat" ] && [ "$(cut -d' ' -f3 "/proc/$p/stat")" != Z ] && return 0; done; return 1; }

pids=$(tree "$root")
kill -TERM $pids 2>/dev/null
for _ in $(seq 30); do alive || break; sleep 0.5; done   # torchrun gets time to stop its workers
alive && kill -KILL $pids 2>/dev/null
printf '%s\n' "$2" > reason
[ -e rc ] || echo "$3" > rc
echo stopped
