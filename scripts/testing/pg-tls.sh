#!/usr/bin/env bash
# A private PostgreSQL cluster that takes only TLS on 127.0.0.1, with a throwaway CA, for the ledger TLS tests.
#
#   scripts/testing/pg-tls.sh start DIR CERT_ROLE   start it under DIR; print `port N`
#   scripts/testing/pg-tls.sh stop DIR              stop it and delete DIR
#
# DIR/tls holds the CA (ca.crt), the server's certificate for localhost and 127.0.0.1, and a client certificate
# (client.crt, client.key) whose common name is CERT_ROLE. pg_hba.conf: over the socket everyone is trusted (the
# test's admin work); over TCP only hostssl: the superuser `fleet` is trusted, CERT_ROLE must show its client
# certificate (`cert`), every other role its password (scram-sha-256).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cmd=${1:-}
dir=${2:-}
[ -n "$dir" ] || { echo "usage: pg-tls.sh start DIR CERT_ROLE | stop DIR" >&2; exit 2; }

case "$cmd" in
start)
    role=${3:?usage: pg-tls.sh start DIR CERT_ROLE}
    command -v openssl >/dev/null || { echo "pg-tls.sh: openssl not found; install it with: apt-get install -y openssl" >&2; exit 3; }
    "$repo/scripts/pg.sh" start "$dir" >/dev/null
    tls=$dir/tls
    mkdir -p "$tls"
    ssl() { openssl "$@" >>"$tls/openssl.log" 2>&1 || { echo "pg-tls.sh: openssl $1 failed, see $tls/openssl.log" >&2; exit 3; }; }
    key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    ssl req -x509 "${key[@]}" -keyout "$tls/ca.key" -out "$tls/ca.crt" -days 2 -subj "/CN=fleet ledger test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
        >"$tls/server.ext"
    ssl req "${key[@]}" -keyout "$tls/server.key" -out "$tls/server.csr" -subj "/CN=localhost"
    ssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
        -extfile "$tls/server.ext" -out "$tls/server.crt"
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >"$tls/client.ext"
    ssl req "${key[@]}" -keyout "$tls/client.key" -out "$tls/client.csr" -subj "/CN=$role"
    ssl x509 -req -in "$tls/client.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
        -extfile "$tls/client.ext" -out "$tls/client.crt"
    chmod 600 "$tls/server.key" "$tls/client.key"
    if [ "$(id -u)" = 0 ]; then chown postgres "$tls" "$tls/server.key" "$tls/server.crt" "$tls/ca.crt"; fi
    cat >>"$dir/data/postgresql.conf" <<CONF
ssl = on
ssl_cert_file = '$tls/server.crt'
ssl_key_file = '$tls/server.key'
ssl_ca_file = '$tls/ca.crt'
CONF
    cat >"$dir/data/pg_hba.conf" <<HBA
local   all  all                trust
hostssl all  fleet  127.0.0.1/32  trust
hostssl all  "$role"  127.0.0.1/32  cert
hostssl all  all    127.0.0.1/32  scram-sha-256
HBA
    "$repo/scripts/pg.sh" restart "$dir"
    echo "port $(cat "$dir/port")"
    ;;
stop)
    "$repo/scripts/pg.sh" stop "$dir"
    ;;
*)
    echo "usage: pg-tls.sh start DIR CERT_ROLE | stop DIR" >&2
    exit 2
    ;;
esac
