#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, starts a private PostgreSQL on 127.0.0.1 with
# PgBouncer in front of it, builds, runs every test (unit, integration, CLI), runs the CLI upload, retry, join
# and agent tests once more with the tools going through PgBouncer in transaction pooling, checks formatting,
# and stops the servers again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# Private servers on 127.0.0.1 for this run only: PostgreSQL (the ledger) and SeaweedFS (S3, checking
# signatures and checksums as AWS does). Both are stopped and deleted on exit.
pgdir=$(mktemp -d /tmp/fleet-test-pg.XXXXXX)
s3dir=$(mktemp -d /tmp/fleet-test-s3.XXXXXX)
bouncerdir=$(mktemp -d /tmp/fleet-test-pgbouncer.XXXXXX)
trap 'scripts/pgbouncer.sh stop "$bouncerdir"; scripts/pg.sh stop "$pgdir"; scripts/s3.sh stop "$s3dir"' EXIT
eval "$(scripts/pg.sh start "$pgdir")"
eval "$(scripts/s3.sh start "$s3dir")"
eval "$(scripts/pgbouncer.sh start "$bouncerdir" "$FLEET_TEST_DATABASE_URL")"
export FLEET_TEST_DATABASE_URL FLEET_TEST_PGBOUNCER_URL FLEET_TEST_S3_ENDPOINT FLEET_TEST_S3_ACCESS_KEY_ID FLEET_TEST_S3_SECRET_ACCESS_KEY
export FLEET_TEST_S3_REGION
# The servers are on loopback: never send the tests' requests through a proxy from the environment.
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}" NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"

swift build --build-tests
swift test --skip-build

# The tools once more behind PgBouncer in transaction pooling (each test's database is still created on the
# server directly). Every transaction may get another server connection, so anything kept in the server session
# between transactions (a temporary table, a session lock, a prepared statement, a SET) would fail here: the
# server's log of this run must hold no "does not exist" error from a tool's connection (the log names each
# line's application_name), whatever the tools retried.
log_start=$(stat -c %s "$pgdir/server.log")
FLEET_TEST_VIA_PGBOUNCER=1 swift test --skip-build \
    --filter 'UploadCLITests|RetryCLITests|JoinCLITests|AgentCLITests'
if tail -c +"$((log_start + 1))" "$pgdir/server.log" |
    grep -E '\] fleet-(upload|retry|trigger|master-[a-z]+): ERROR: .*does not exist' >&2; then
    echo "test.sh: the run through PgBouncer hit objects missing from the server session (above)" >&2
    exit 1
fi
swift format lint --strict --recursive Sources Tests Package.swift
echo "test.sh: all tests passed, formatting clean"
