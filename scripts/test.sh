#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, starts a private PostgreSQL on 127.0.0.1,
# builds, runs every test (unit, integration, CLI), checks formatting, and stops the database again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

pgdir=$(mktemp -d /tmp/fleet-test-pg.XXXXXX)
trap 'scripts/pg.sh stop "$pgdir"' EXIT
eval "$(scripts/pg.sh start "$pgdir")"
export FLEET_TEST_DATABASE_URL

swift build --build-tests
swift test --skip-build
swift format lint --strict --recursive Sources Tests Package.swift
echo "test.sh: all tests passed, formatting clean"
