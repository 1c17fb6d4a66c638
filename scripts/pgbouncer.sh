#!/usr/bin/env bash
# PgBouncer in transaction pooling in front of a PostgreSQL server, for tests: the tools must run unchanged
# behind it, with nothing kept in the server session between transactions.
#
#   scripts/pgbouncer.sh start DIR DATABASE_URL   start (or reuse) a pooler under DIR in front of the server
#                                                 DATABASE_URL names (its host, port and user), and print
#                                                 `export FLEET_TEST_PGBOUNCER_URL=…` for eval
#   scripts/pgbouncer.sh url DIR                  print the pooler's URL
#   scripts/pgbouncer.sh stop DIR                 stop it and delete DIR
#
# It listens on 127.0.0.1 only, on a free port chosen by binding port 0. Every database name goes to the same
# server (a `*` entry), so per-test databases need no configuration; the user connects with the server's trust
# authentication (the private cluster of scripts/pg.sh). As root, it runs as the `postgres` user (PgBouncer
# refuses root). Debian's package: apt-get install pgbouncer.
set -euo pipefail

cmd=${1:-}
dir=${2:-}

# The pooler outlives this script: it must not inherit the caller's descriptors (see scripts/pg.sh).
for fd in "/proc/$$/fd"/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
done

usage() {
    echo "usage: scripts/pgbouncer.sh start DIR DATABASE_URL | url DIR | stop DIR" >&2
    exit 2
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() {
    echo "postgresql://$(cat "$dir/user")@127.0.0.1:$(cat "$dir/port")/postgres"
}

running() {
    [ -f "$dir/pgbouncer.pid" ] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null
}

[ -n "$dir" ] || usage
case "$cmd" in
start)
    server=${3:-}
    [ -n "$server" ] || usage
    if running; then
        echo "export FLEET_TEST_PGBOUNCER_URL='$(url)'"
        exit 0
    fi
    bin=$(command -v pgbouncer || ls /usr/sbin/pgbouncer 2>/dev/null || true)
    if [ -z "$bin" ]; then
        echo "pgbouncer.sh: pgbouncer not found; install it with: apt-get install -y pgbouncer" >&2
        exit 3
    fi
    # host, port and user of the server, from its URL.
    read -r host port user < <(python3 -c '
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
if u.scheme not in ("postgresql", "postgres") or not u.hostname:
    sys.exit("pgbouncer.sh: DATABASE_URL must be a postgresql://user@host:port/db URL")
print(u.hostname, u.port or 5432, urllib.parse.unquote(u.username or "postgres"))
' "$server")
    rm -rf "$dir"
    mkdir -p "$dir"
    listen=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "$listen" >"$dir/port"
    echo "$user" >"$dir/user"
    printf '"%s" ""\n' "$user" >"$dir/userlist.txt"
    # The settings and their reasons are in docs/fleet-deployment.md (PgBouncer). Small pools and a short
    # server idle timeout: the tests create a database each, and every database gets a pool of its own.
    cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=$host port=$port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 8
max_client_conn = 400
max_db_connections = 8
server_idle_timeout = 5
autodb_idle_timeout = 30
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres "$dir"
        p=$dir
        while [ "$p" != / ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done
    fi
    as_owner "$bin" -d -q "$dir/pgbouncer.ini" || {
        echo "pgbouncer.sh: pgbouncer did not start, see $dir/pgbouncer.log:" >&2
        tail -n 5 "$dir/pgbouncer.log" >&2 2>/dev/null || true
        exit 3
    }
    for _ in $(seq 1 100); do
        if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' \
            "$listen" 2>/dev/null; then
            echo "export FLEET_TEST_PGBOUNCER_URL='$(url)'"
            exit 0
        fi
        sleep 0.1
    done
    echo "pgbouncer.sh: pgbouncer is not listening on 127.0.0.1:$listen, see $dir/pgbouncer.log:" >&2
    tail -n 5 "$dir/pgbouncer.log" >&2 2>/dev/null || true
    exit 3
    ;;
url)
    running || { echo "pgbouncer.sh: no pgbouncer running under $dir; start one with: scripts/pgbouncer.sh start DIR URL" >&2; exit 3; }
    url
    ;;
stop)
    if running; then
        pid=$(cat "$dir/pgbouncer.pid")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$dir"
    ;;
*)
    usage
    ;;
esac
