#!/usr/bin/env bash
# A real session on the embedded defaults: installs what is missing, starts a private PostgreSQL, generates
# sample data under .demo/, and runs `upload --config examples/session.json` against them, printing the
# session's summary. Safe to run again: the data set and the database are reused.
#
# The first run uploads the 2,000 sample files and prints the session summary; a second run finds them all
# in the ledger and uploads nothing. `upload --check` runs first to show the setup is sound.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
swift build --product upload >&2
swift build --product master >&2

eval "$(scripts/pg.sh start "$PWD/.demo/pg")"
eval "$(scripts/s3.sh start "$PWD/.demo/s3")"
export DATABASE_URL=$FLEET_TEST_DATABASE_URL
export AWS_ACCESS_KEY_ID=$FLEET_TEST_S3_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$FLEET_TEST_S3_SECRET_ACCESS_KEY
export AWS_EC2_METADATA_DISABLED=true

python3 scripts/sample-data.py .demo/sample-data --files 2000 >&2
bin=$(swift build --show-bin-path)
"$bin/master" migrate
"$bin/upload" --config examples/session.json --endpoint "$FLEET_TEST_S3_ENDPOINT" --check
"$bin/upload" --config examples/session.json --endpoint "$FLEET_TEST_S3_ENDPOINT"
