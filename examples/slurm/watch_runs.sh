#!/bin/bash
# Login-node watcher: keeps every run under $WANDBLITE_DIR uploaded while jobs write them.
#
#   export WANDBLITE_SERVER=http://tracker:8080 WANDBLITE_API_KEY=wl_...
#   nohup examples/slurm/watch_runs.sh >> ~/wandblite-watch.log 2>&1 &
#
# `wandblite sync --watch` tails growing run files from their last byte offsets, picks up new runs
# and new segments (requeued jobs), marks runs whose job died as crashed once their heartbeat is
# stale, and stops cleanly on Ctrl-C or SIGTERM. Without WANDBLITE_SERVER it fills the local
# embedded store instead (serve it with `wandblite server`). Restarting the watcher is always safe:
# the server's position decides what is sent, so nothing is duplicated or lost.
set -euo pipefail
RUNS="${WANDBLITE_DIR:-$HOME/runs}"
mkdir -p "$RUNS"
exec wandblite sync "$RUNS" --watch --interval "${WATCH_INTERVAL:-5}"
