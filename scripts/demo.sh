#!/usr/bin/env bash
# A real session on the embedded defaults: installs what is missing, starts a private PostgreSQL, generates
# sample data under .demo/, and runs `upload --config examples/session.json` against them, printing the
# session's summary. Safe to run again: the data set and the database are reused.
#
# At this stage of the project uploading is not built yet, so the session is a dry run: the plan of what
# would be uploaded (files, bytes, keys, what the ledger already holds).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
swift build --product upload >&2
swift build --product master >&2

eval "$(scripts/pg.sh start "$PWD/.demo/pg")"
export DATABASE_URL=$FLEET_TEST_DATABASE_URL

python3 scripts/sample-data.py .demo/sample-data --files 2000 >&2
bin=$(swift build --show-bin-path)
"$bin/master" migrate
"$bin/upload" --config examples/session.json --dry-run
