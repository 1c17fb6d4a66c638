#!/usr/bin/env bash
# Runs the agent (`master run`) from this checkout, without installing anything: for development and for
# machines without systemd. The PID file and the log live in the state directory.
#
#   scripts/agent.sh start --config FILE   build if needed, start in the background (nohup), wait a moment
#                                          and report; refuses if this state directory's agent is running
#   scripts/agent.sh stop                  SIGTERM, wait up to 30 s (uploads in flight finish), then SIGKILL
#   scripts/agent.sh status                running (pid, config, uptime) or not, and the last log lines;
#                                          exit 0 running, 1 dead with a stale PID file, 3 not running
#   scripts/agent.sh restart [--config F]  stop, then start (with the last configuration unless given)
#   scripts/agent.sh reload                SIGHUP: re-read the configuration (an invalid one is refused and
#                                          the old one kept; the log says which)
#   scripts/agent.sh logs [--no-follow]    the log, followed
#
#   --config FILE      the agent configuration (start remembers it for restart)
#   --state-dir DIR    PID file, log and remembered configuration (default: .agent in the checkout)
#   --release          build and run the release binary (default: debug)
#   --build-dir DIR    SwiftPM's build directory, i.e. its --scratch-path (default .build in the checkout)
#   --no-build         run the binary already built
#   --foreground       start in the foreground (logs on the terminal, Ctrl-C stops it), with the PID file
#   --database URL     passed to `master run`; otherwise DATABASE_URL (or libpq's PG*) from the environment
#   --log-level LEVEL  passed to `master run`
#
# The agent gets this shell's environment: DATABASE_URL, AWS_PROFILE or AWS_*, FLEET_* overrides.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
stop_wait=${FLEET_AGENT_STOP_WAIT:-30}
start_wait=${FLEET_AGENT_START_WAIT:-3}

cmd=${1:-}
[ $# -eq 0 ] || shift
config=
state_dir=$repo/.agent
configuration=debug
build_dir=$repo/.build
build=yes
foreground=no
follow=yes
run_args=()

me=agent.sh
# shellcheck source=scripts/lib/common.sh
source "$(dirname "$0")/lib/common.sh"

while [ $# -gt 0 ]; do
    case "$1" in
    --config | --state-dir | --build-dir | --database | --log-level)
        if [ $# -lt 2 ] || [ -z "$2" ]; then die 2 "$1 needs a value"; fi
        case "$1" in
        --config) config=$(realpath -m -- "$2") ;;
        --state-dir) state_dir=$(realpath -m -- "$2") ;;
        --build-dir) build_dir=$(realpath -m -- "$2") ;;
        --database | --log-level) run_args+=("$1" "$2") ;;
        esac
        shift 2
        ;;
    --release) configuration=release; shift ;;
    --no-build) build=no; shift ;;
    --foreground) foreground=yes; shift ;;
    --no-follow) follow=no; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die 2 "unknown option: $1 (see scripts/agent.sh --help)" ;;
    esac
done

pid_file=$state_dir/agent.pid
log_file=$state_dir/agent.log
config_file=$state_dir/agent.config
bin=$build_dir/$configuration/master

# True if PID is a live (not zombie) `master run`: a recycled PID belonging to something else is not ours.
ours() {
    local pid=$1
    local -a argv
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    mapfile -d '' -t argv <"/proc/$pid/cmdline" 2>/dev/null || return 1
    [ "${#argv[@]}" -ge 2 ] && [ "${argv[0]##*/}" = master ] && [ "${argv[1]}" = run ]
}

# True if PID exists and is not a zombie (an exited child not yet waited for).
alive() {
    local state
    [ -r "/proc/$1/stat" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# The PID in the PID file, if there is one.
recorded_pid() { [ -f "$pid_file" ] && tr -dc '0-9' <"$pid_file"; }

running_pid() {
    local pid
    pid=$(recorded_pid) || return 1
    ours "$pid" && echo "$pid"
}

# Builds master when it is missing or older than a source file.
ensure_built() {
    if [ "$build" = no ]; then
        [ -x "$bin" ] || die 3 "$bin not found; build it (drop --no-build) or pass --build-dir"
        return 0
    fi
    if [ -x "$bin" ] && [ -z "$(find "$repo/Sources" "$repo/sql" "$repo/Package.swift" -newer "$bin" -print -quit)" ]; then
        return 0
    fi
    command -v swift >/dev/null || die 3 "swift is not on PATH"
    echo "agent.sh: building: swift build -c $configuration --product master --scratch-path $build_dir" >&2
    (cd "$repo" && swift build -c "$configuration" --product master --scratch-path "$build_dir") >&2 ||
        die 3 "the build failed (output above)"
}

resolve_config() {
    if [ -z "$config" ] && [ -f "$config_file" ]; then config=$(cat "$config_file"); fi
    [ -n "$config" ] || die 2 "start needs --config FILE (for example a copy of examples/agent.yaml)"
    [ -f "$config" ] || die 2 "--config $config: no such file"
}

start() {
    local pid rc
    if pid=$(running_pid); then
        die 3 "already running (pid $pid, $(cat "$config_file" 2>/dev/null || echo "unknown config")); stop it first, or use restart"
    fi
    resolve_config
    ensure_built
    mkdir -p "$state_dir"
    if [ -f "$pid_file" ]; then
        echo "agent.sh: removing stale PID file (pid $(recorded_pid) is not a running agent)" >&2
        rm -f "$pid_file"
    fi
    if [ "$foreground" = yes ]; then
        echo "$config" >"$config_file"
        echo $$ >"$pid_file"
        echo "agent.sh: $bin run --config $config ${run_args[*]} (foreground, pid $$; Ctrl-C stops it)" >&2
        exec "$bin" run --config "$config" "${run_args[@]}"
    fi
    echo "==== $(date '+%Y-%m-%d %H:%M:%S') agent.sh start: $bin run --config $config${run_args[*]:+ ${run_args[*]}}" >>"$log_file"
    nohup "$bin" run --config "$config" "${run_args[@]}" </dev/null >>"$log_file" 2>&1 &
    pid=$!
    echo "$pid" >"$pid_file"
    # A configuration or environment the agent refuses ends it within a moment: report that here. (Until
    # nohup has exec'd, the child is not `master run` yet: wait on liveness, not on ours.)
    for _ in $(seq 1 $((start_wait * 10))); do
        alive "$pid" || break
        sleep 0.1
    done
    if ! alive "$pid"; then
        rc=0
        wait "$pid" || rc=$?
        rm -f "$pid_file"
        echo "agent.sh: the agent exited at once (status $rc); its log ($log_file):" >&2
        tail -n 15 "$log_file" >&2
        exit $((rc == 0 ? 3 : rc))
    fi
    echo "$config" >"$config_file"
    echo "agent.sh: started, pid $pid, config $config, log $log_file"
}

stop() {
    local pid
    if ! pid=$(running_pid); then
        if [ -f "$pid_file" ]; then
            echo "agent.sh: not running; removed stale PID file (pid $(recorded_pid))"
            rm -f "$pid_file"
        else
            echo "agent.sh: not running"
        fi
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    echo "agent.sh: SIGTERM sent to pid $pid; waiting up to ${stop_wait}s for the uploads in flight" >&2
    for _ in $(seq 1 $((stop_wait * 10))); do
        ours "$pid" || break
        sleep 0.1
    done
    if ours "$pid"; then
        echo "agent.sh: still running after ${stop_wait}s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do ours "$pid" || break; sleep 0.1; done
    fi
    rm -f "$pid_file"
    echo "agent.sh: stopped (pid $pid)"
}

status() {
    local pid rc
    if pid=$(running_pid); then
        echo "agent.sh: running, pid $pid, up $(ps -o etime= -p "$pid" | tr -d ' '), config $(cat "$config_file" 2>/dev/null || echo unknown)"
        rc=0
    elif [ -f "$pid_file" ]; then
        echo "agent.sh: not running (stale PID file $pid_file: pid $(recorded_pid) is not a running agent)"
        rc=1
    else
        echo "agent.sh: not running"
        rc=3
    fi
    if [ -s "$log_file" ]; then
        echo "--- last lines of $log_file"
        tail -n 10 "$log_file"
    fi
    return "$rc"
}

reload() {
    local pid
    pid=$(running_pid) || die 3 "not running; start it with scripts/agent.sh start --config FILE"
    kill -HUP "$pid"
    echo "agent.sh: SIGHUP sent to pid $pid: re-reading $(cat "$config_file" 2>/dev/null || echo "its configuration"); see scripts/agent.sh logs"
}

logs() {
    [ -f "$log_file" ] || die 3 "no log yet: $log_file"
    if [ "$follow" = yes ]; then exec tail -n 50 -F "$log_file"; fi
    cat "$log_file"
}

case "$cmd" in
start) start ;;
stop) stop ;;
status) status ;;
restart)
    stop
    start
    ;;
reload) reload ;;
logs) logs ;;
-h | --help) usage ;;
*)
    echo "usage: scripts/agent.sh start|stop|status|restart|reload|logs [--config FILE] [--state-dir DIR] (see --help)" >&2
    exit 2
    ;;
esac
