#!/usr/bin/env bash
# Removes what scripts/install.sh installed: stops and disables fleet-agent, removes its unit and the
# binaries. The configuration (agent.yaml, agent.env) and the state directory stay unless --purge is given.
# Safe to run again: what is already gone is reported and skipped.
#
#   scripts/uninstall.sh [--prefix DIR] [--config-dir DIR] [--state-dir DIR] [--no-systemd] [--purge]
#
#   --prefix DIR       where install.sh put bin/ and share/fleet-upload (default /usr/local)
#   --config-dir DIR   agent.yaml and agent.env (default /etc/fleet-upload); removed only with --purge
#   --state-dir DIR    the agent's state (default /var/lib/fleet-upload); removed only with --purge
#   --no-systemd       leave systemd alone (automatic when systemctl is missing or systemd is not running)
#   --purge            also delete CONFIG_DIR and STATE_DIR, credentials in agent.env included
#
# The ledger in PostgreSQL and the objects in S3 are never touched.
set -euo pipefail

unit_name=fleet-agent.service
unit_dir=/etc/systemd/system
binaries=(upload retry trigger master)

prefix=/usr/local
config_dir=/etc/fleet-upload
state_dir=/var/lib/fleet-upload
systemd=yes
purge=no

me=uninstall
# shellcheck source=scripts/lib/common.sh
source "$(dirname "$0")/lib/common.sh"

while [ $# -gt 0 ]; do
    case "$1" in
    --prefix | --config-dir | --state-dir)
        if [ $# -lt 2 ] || [ -z "$2" ]; then die 2 "$1 needs a value"; fi
        case "$1" in
        --prefix) prefix=$(realpath -m -- "$2") ;;
        --config-dir) config_dir=$(realpath -m -- "$2") ;;
        --state-dir) state_dir=$(realpath -m -- "$2") ;;
        esac
        shift 2
        ;;
    --no-systemd) systemd=no; shift ;;
    --purge) purge=yes; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die 2 "unknown option: $1 (see scripts/uninstall.sh --help)" ;;
    esac
done

# Refuse to delete a directory that is obviously not ours (an empty value, /, /etc, /var/lib, …).
safe_to_purge() {
    case "$1" in
    '' | / | /etc | /var | /var/lib | /usr | /usr/local | /opt | /home | /root | /tmp | /srv) return 1 ;;
    /*) [ "$1" != "$prefix" ] && [ "$1" != "${HOME:-}" ] ;;
    *) return 1 ;;
    esac
}

if [ "$purge" = yes ]; then
    for d in "$config_dir" "$state_dir"; do
        safe_to_purge "$d" || die 2 "--purge: refusing to delete $d; remove it by hand"
    done
fi

if [ "$systemd" = yes ]; then
    if ! command -v systemctl >/dev/null; then
        systemd=no
        say "systemctl not found: no service to remove (as with --no-systemd)"
    elif [ ! -d /run/systemd/system ]; then
        systemd=no
        say "systemd is not running (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown)): no service to remove (as with --no-systemd)"
    fi
fi
if [ "$(id -u)" != 0 ] && [ "$systemd" = yes ]; then
    die 3 "run as root (sudo scripts/uninstall.sh …)"
fi

# ---- the service -------------------------------------------------------------------------------------
if [ "$systemd" = yes ]; then
    if systemctl is-active --quiet "$unit_name"; then
        # SIGTERM: the agent finishes the uploads in flight (TimeoutStopSec in the unit bounds the wait).
        say "stopping $unit_name (the uploads in flight finish first)"
        systemctl stop "$unit_name"
    fi
    if systemctl is-enabled --quiet "$unit_name" 2>/dev/null; then
        systemctl disable --quiet "$unit_name"
        say "systemctl disable $unit_name"
    fi
    if [ -f "$unit_dir/$unit_name" ]; then
        rm -f "$unit_dir/$unit_name"
        systemctl daemon-reload
        say "$unit_dir/$unit_name: removed, systemctl daemon-reload"
    else
        say "$unit_dir/$unit_name: not installed"
    fi
    systemctl reset-failed "$unit_name" 2>/dev/null || true
fi

# An agent started by hand from these binaries would keep running from the deleted files: say so.
for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    if [ "${exe% (deleted)}" = "$prefix/bin/master" ]; then
        warn "$prefix/bin/master is still running as pid ${p#/proc/} (not started by systemd); stop it with kill -TERM ${p#/proc/}"
    fi
done

# ---- files -------------------------------------------------------------------------------------------
for b in "${binaries[@]}"; do
    if [ -e "$prefix/bin/$b" ]; then
        rm -f "$prefix/bin/$b"
        say "$prefix/bin/$b: removed"
    else
        say "$prefix/bin/$b: not installed"
    fi
done
if [ -d "$prefix/share/fleet-upload" ]; then
    rm -rf "$prefix/share/fleet-upload"
    say "$prefix/share/fleet-upload: removed"
fi

if [ "$purge" = yes ]; then
    for d in "$config_dir" "$state_dir"; do
        if [ -d "$d" ]; then
            say "--purge: deleting $d and everything in it ($(find "$d" -mindepth 1 | wc -l) entries)"
            rm -rf "$d"
        else
            say "$d: not present"
        fi
    done
    say "done: fleet-upload removed, configuration and state included (the ledger and S3 are untouched)"
else
    kept=()
    for d in "$config_dir" "$state_dir"; do [ ! -d "$d" ] || kept+=("$d"); done
    if [ ${#kept[@]} -gt 0 ]; then
        say "done: kept ${kept[*]} (agent.yaml, agent.env with credentials); --purge deletes them"
    else
        say "done"
    fi
fi
