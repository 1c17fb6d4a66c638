#!/usr/bin/env bash
# A private, throwaway PostgreSQL cluster for tests and the demo.
#
#   scripts/pg.sh start [DIR]   start (or reuse) a cluster under DIR (default: .pg in the repo) and print
#                               `export FLEET_TEST_DATABASE_URL=…` for eval
#   scripts/pg.sh url [DIR]     print the URL of the running cluster
#   scripts/pg.sh restart [DIR] restart it (fast shutdown), same port and data
#   scripts/pg.sh stop [DIR]    stop it and delete DIR
#
# The cluster listens on 127.0.0.1 only, on a free port chosen by binding port 0, with trust authentication
# for the user `fleet`. As root, initdb and the server run as the `postgres` user (initdb refuses root).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
dir=${2:-$repo/.pg}

# The server outlives this script: it must not inherit the caller's descriptors, or a pipe the caller handed
# to another child (whose end of file the caller waits for) stays open as long as the server runs.
for fd in "/proc/$$/fd"/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
done

bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
        echo "pg.sh: PostgreSQL server binaries not found; install them with: apt-get install -y postgresql" >&2
        exit 3
    fi
    echo "$d"
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() {
    local port
    port=$(cat "$dir/port")
    echo "postgresql://fleet@127.0.0.1:$port/postgres"
}

running() {
    [ -f "$dir/port" ] && [ -f "$dir/data/postmaster.pid" ] && as_owner "$(bindir)/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

case "$cmd" in
start)
    bin=$(bindir)
    if running; then
        echo "export FLEET_TEST_DATABASE_URL='$(url)'"
        exit 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$dir"
        # postgres must be able to reach DIR through every parent directory.
        p=$dir
        while [ "$p" != / ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done
    fi
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U fleet -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
        echo "pg.sh: initdb failed, see $dir/initdb.log:" >&2; tail -n 5 "$dir/initdb.log" >&2; exit 3; }
    # Each log line names the client's application_name (scripts/test.sh looks for the tools' errors).
    echo "log_line_prefix = '%m [%p] %a: '" >>"$dir/data/postgresql.conf"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "$port" >"$dir/port"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null || {
        echo "pg.sh: the server did not start, see $dir/server.log:" >&2; tail -n 5 "$dir/server.log" >&2; exit 3; }
    echo "export FLEET_TEST_DATABASE_URL='$(url)'"
    ;;
url)
    running || { echo "pg.sh: no cluster running under $dir; start one with: scripts/pg.sh start" >&2; exit 3; }
    url
    ;;
restart)
    # A server restart under a running client (the fault-injection tests): same port, same data.
    running || { echo "pg.sh: no cluster running under $dir; start one with: scripts/pg.sh start" >&2; exit 3; }
    as_owner "$(bindir)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null
    ;;
stop)
    if [ -d "$dir/data" ]; then
        as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: scripts/pg.sh start|url|restart|stop [DIR]" >&2
    exit 2
    ;;
esac
