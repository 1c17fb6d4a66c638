#!/bin/sh
# The demo's log source: a terminal log that rolls over every minute and a ROS-style run folder every ten
# minutes, under /data/logs, so that the agent always has fresh files to upload and the dashboards fill.
set -eu
root=${LOG_ROOT:-/data/logs}
mkdir -p "$root/terminal" "$root/ros"
n=0
while :; do
    minute=$(date -u +%Y-%m-%d_%H-%M)
    run=$(date -u +%Y-%m-%d-%H-%M | sed 's/.$/0/')
    mkdir -p "$root/ros/$run"
    n=$((n + 1))
    echo "$(date -u +%FT%TZ) INFO planner: cycle $n speed=$((n % 30)) m/s" >> "$root/terminal/terminal_$minute.log"
    echo "$(date -u +%FT%TZ) [rosout] /localization: pose $n ok" >> "$root/ros/$run/rosout.log"
    sleep 2
done
