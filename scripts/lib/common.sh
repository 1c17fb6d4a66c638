# Shared by the deployment scripts (install.sh, uninstall.sh, agent.sh); sourced, not run. The sourcing script
# sets `me` to its name for the message prefix.
# shellcheck shell=bash

# shellcheck disable=SC2154 # `me` is set by the script that sources this file
say() { echo "$me: $*"; }
warn() { echo "$me: warning: $*" >&2; }
# die CODE MESSAGE…: the one-line reason on stderr, then exit CODE.
die() {
    local code=$1
    shift
    echo "$me: $*" >&2
    exit "$code"
}
# The script's header comment, as its --help.
usage() { sed -n '2,/^set -euo/s/^# \{0,1\}//p' "$0"; }
