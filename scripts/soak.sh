#!/usr/bin/env bash
# The vehicle agent through a simulated production cycle: `master run` watches four sources while files
# are written into them, and a proxy between the agent and the S3 server plays the vehicle's WiFi: available,
# a long outage (the queue builds up), the drain, 30-second on/off, flapping every 2-3 s, a degraded link
# (500 ms, 10 % of requests reset mid-body), then SIGKILLs of the agent under a burst of files. At the end
# every file must be in the bucket exactly once, byte for byte (read back with boto3, not with our client),
# and the ledger must agree. It prints a table per phase and a report: files, failed attempts by class, queue
# peak, agent memory growth per hour.
#
#   scripts/soak.sh HOURS [--debug] [--keep]
#
# HOURS may be a fraction: 0.1 runs one 6-minute cycle; one cycle lasts 100 minutes, longer soaks repeat it.
# The agent is a release build (--debug: the debug build, quicker to make). Everything lives under .soak/
# (private PostgreSQL, SeaweedFS, the sources, the agent's log); --keep leaves it there afterwards.
# Exit 0 when every check passes. The fault-injection tests (Tests/CLITests/FaultInjectionCLITests.swift)
# are the short version of each phase and run in CI.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
me=soak.sh
# shellcheck source=scripts/lib/common.sh
. "$repo/scripts/lib/common.sh"

hours=
configuration=release
keep=false
while [ $# -gt 0 ]; do
    case "$1" in
    --debug) configuration=debug; shift ;;
    --keep) keep=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *)
        [ -z "$hours" ] || die 2 "one HOURS argument only (got '$hours' and '$1')"
        hours=$1
        shift
        ;;
    esac
done
[ -n "$hours" ] || die 2 "usage: scripts/soak.sh HOURS [--debug] [--keep]"
python3 -c "import sys; h = float(sys.argv[1]); sys.exit(0 if 0 < h <= 168 else 1)" "$hours" 2>/dev/null ||
    die 2 "HOURS must be a number of hours above 0 and at most 168, not '$hours'"

work=$repo/.soak
cleanup() {
    if [ "$keep" = false ]; then
        "$repo/scripts/s3.sh" stop "$work/s3" >/dev/null 2>&1 || true
        "$repo/scripts/pg.sh" stop "$work/pg" >/dev/null 2>&1 || true
        rm -rf "$work"
    fi
}
trap cleanup EXIT

rm -rf "$work/sources" "$work/agent.log"
mkdir -p "$work/bin"
say "building master ($configuration)"
(cd "$repo" && swift build -c "$configuration" --product master >/dev/null)
# A copy: a rebuild in the repository during a long soak must not change the agent that restarts.
cp "$(cd "$repo" && swift build -c "$configuration" --product master --show-bin-path)/master" "$work/bin/master"
eval "$("$repo/scripts/pg.sh" start "$work/pg")"
eval "$("$repo/scripts/s3.sh" start "$work/s3")"
export DATABASE_URL=$FLEET_TEST_DATABASE_URL FLEET_TEST_S3_ENDPOINT
export AWS_ACCESS_KEY_ID=$FLEET_TEST_S3_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$FLEET_TEST_S3_SECRET_ACCESS_KEY
export AWS_EC2_METADATA_DISABLED=true no_proxy=127.0.0.1,localhost
python3 "$repo/scripts/testing/soak.py" "$hours" "$work" "$work/bin/master"
