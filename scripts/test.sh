#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, starts a private PostgreSQL on 127.0.0.1,
# builds, runs every test (unit, integration, CLI), checks formatting, and stops the database again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# Private servers on 127.0.0.1 for this run only: PostgreSQL (the ledger) and SeaweedFS (S3, checking
# signatures and checksums as AWS does). Both are stopped and deleted on exit.
pgdir=$(mktemp -d /tmp/fleet-test-pg.XXXXXX)
s3dir=$(mktemp -d /tmp/fleet-test-s3.XXXXXX)
trap 'scripts/pg.sh stop "$pgdir"; scripts/s3.sh stop "$s3dir"' EXIT
eval "$(scripts/pg.sh start "$pgdir")"
eval "$(scripts/s3.sh start "$s3dir")"
export FLEET_TEST_DATABASE_URL FLEET_TEST_S3_ENDPOINT FLEET_TEST_S3_ACCESS_KEY_ID FLEET_TEST_S3_SECRET_ACCESS_KEY
export FLEET_TEST_S3_REGION
# The servers are on loopback: never send the tests' requests through a proxy from the environment.
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}" NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"

swift build --build-tests
swift test --skip-build
swift format lint --strict --recursive Sources Tests Package.swift
echo "test.sh: all tests passed, formatting clean"
