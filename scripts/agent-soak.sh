#!/usr/bin/env bash
# The agent under fire: `master run` watches four sources while files are written into them for a few minutes;
# meanwhile the S3 server is stopped and started twice and the agent is SIGKILLed once and restarted. At the
# end every file must be in the bucket exactly once, byte for byte (read back with boto3, not with our client),
# and the ledger must agree: one `uploaded` row per key, nothing left `uploading` or `running`. The agent's RSS
# is sampled every 15 s and reported: for the restarted agent, from 5 minutes after its start to the end.
#
#   scripts/agent-soak.sh [--minutes M] [--keep]
#
# M (default 3) is how long files are written. Everything lives under .soak/ (private PostgreSQL, SeaweedFS,
# the sources, the agent's log); --keep leaves it there afterwards. Exit 0 when every check passes.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
minutes=3
keep=false
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --keep) keep=true; shift ;;
    *) echo "usage: scripts/agent-soak.sh [--minutes M] [--keep]" >&2; exit 2 ;;
    esac
done

work=$repo/.soak
log() { echo "soak: $(date +%H:%M:%S) $*" >&2; }

cleanup() {
    if [ -n "${agent_pid:-}" ]; then kill -KILL "$agent_pid" 2>/dev/null || true; fi
    if [ -n "${writer_pid:-}" ]; then kill "$writer_pid" 2>/dev/null || true; fi
    if [ -n "${sampler_pid:-}" ]; then kill "$sampler_pid" 2>/dev/null || true; fi
    if [ "$keep" = false ]; then
        "$repo/scripts/s3.sh" stop "$work/s3" >/dev/null 2>&1 || true
        "$repo/scripts/pg.sh" stop "$work/pg" >/dev/null 2>&1 || true
        rm -rf "$work"
    fi
}
trap cleanup EXIT

rm -rf "$work/sources" "$work/agent.log" "$work/rss.log"
mkdir -p "$work/sources"/{terminal,ros,syslog,ros2} "$work/bin"
log "building"
(cd "$repo" && swift build --product master >/dev/null)
# A copy: a rebuild in the repository during a long soak must not change the agent that restarts.
cp "$(cd "$repo" && swift build --product master --show-bin-path)/master" "$work/bin/master"
master=$work/bin/master
eval "$("$repo/scripts/pg.sh" start "$work/pg")"
eval "$("$repo/scripts/s3.sh" start "$work/s3")"
export DATABASE_URL=$FLEET_TEST_DATABASE_URL
export AWS_ACCESS_KEY_ID=$FLEET_TEST_S3_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$FLEET_TEST_S3_SECRET_ACCESS_KEY
export AWS_EC2_METADATA_DISABLED=true
prefix="soak-$(date +%s)"

cat >"$work/agent.yaml" <<EOF
project: { name: soak }
device: soak-vehicle
s3: { bucket: fleet-test, prefix: $prefix, endpoint: "$FLEET_TEST_S3_ENDPOINT", region: us-east-1 }
sources:
  - { name: terminal, path: sources/terminal }
  - { name: ros, path: sources/ros }
  - { name: syslog, path: sources/syslog }
  - { name: ros2, path: sources/ros2 }
keys: { template: "{prefix}/{device}/{date}/{source}/{relpath}" }
upload: { workers: 4, max_attempts: 3, backoff_base_seconds: 0.2, backoff_cap_seconds: 2, give_up_after_seconds: 10 }
retry: { rounds: 3, round_backoff_base_seconds: 2, round_backoff_cap_seconds: 5 }
agent: { stability_seconds: 2, heartbeat_seconds: 5, rescan_minutes: 1 }
EOF

start_agent() {
    "$master" run --config "$work/agent.yaml" --log-level info >>"$work/agent.log" 2>&1 &
    agent_pid=$!
    echo "$agent_pid" >"$work/agent.pid"
    log "agent started (pid $agent_pid)"
}

# One line every 15 s: seconds since the soak started, the agent's pid, its RSS in KiB.
sample_rss() {
    local started=$SECONDS pid rss
    while sleep 15; do
        pid=$(cat "$work/agent.pid" 2>/dev/null) || continue
        rss=$(ps -o rss= -p "$pid" 2>/dev/null | tr -d ' ') || continue
        [ -n "$rss" ] && echo "$((SECONDS - started)) $pid $rss" >>"$work/rss.log"
    done
}

# The writer: new files in every source, some written in several pieces over seconds (growing logs), ROS run
# folders; it prints nothing and stops after the given seconds.
python3 - "$work/sources" $((minutes * 60)) <<'PY' &
import os, random, sys, time
root, seconds = sys.argv[1], float(sys.argv[2])
random.seed(7)
end = time.monotonic() + seconds
n = 0
growing = []
while time.monotonic() < end:
    source = random.choice(["terminal", "ros", "syslog", "ros2"])
    if source == "ros":
        folder = time.strftime("%Y-%m-%d-%H-%M-00-", time.gmtime()) + "123456-soak"
        path = os.path.join(root, source, folder, f"node-{n}.log")
    else:
        path = os.path.join(root, source, f"{source}-{n}.log")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(os.urandom(random.randint(0, 20000)))
    if n % 10 == 0:
        growing.append(path)
    for g in list(growing):
        with open(g, "ab") as f:
            f.write(os.urandom(random.randint(1, 4000)))
        if random.random() < 0.3:
            growing.remove(g)
    n += 1
    time.sleep(0.05)
PY
writer_pid=$!
cd "$work"
start_agent
sample_rss &
sampler_pid=$!
total=$((minutes * 60))
sleep $((total / 5))
log "S3 server stopped"; "$repo/scripts/s3.sh" pause "$work/s3"
sleep 20
log "S3 server started"; "$repo/scripts/s3.sh" resume "$work/s3" >/dev/null
sleep $((total / 5))
log "agent SIGKILLed"; kill -KILL "$agent_pid"; wait "$agent_pid" 2>/dev/null || true
sleep 5
start_agent
sleep $((total / 5))
log "S3 server stopped"; "$repo/scripts/s3.sh" pause "$work/s3"
sleep 15
log "S3 server started"; "$repo/scripts/s3.sh" resume "$work/s3" >/dev/null
wait "$writer_pid" || true
writer_pid=
log "writing finished; waiting for the agent to upload everything"

# Done when, three heartbeats in a row, the agent reports an empty queue and no session is running.
deadline=$((SECONDS + 300))
calm=0
while [ $calm -lt 3 ]; do
    sleep 5
    state=$(psql "$DATABASE_URL" -Atc "SELECT (SELECT coalesce(queue_files, -1) FROM devices WHERE name = 'soak-vehicle')
        || ' ' || (SELECT count(*) FROM sync_sessions WHERE status = 'running')
        || ' ' || (SELECT count(*) FROM file_uploads WHERE status = 'uploaded')")
    read -r queue running uploaded <<<"$state"
    log "agent queue $queue, sessions running $running, files uploaded $uploaded"
    if [ "$queue" = 0 ] && [ "$running" = 0 ]; then calm=$((calm + 1)); else calm=0; fi
    [ $SECONDS -ge $deadline ] && { log "timed out waiting for the queue to drain"; break; }
done
kill -TERM "$agent_pid"
wait "$agent_pid" && stop_status=0 || stop_status=$?
agent_pid=
kill "$sampler_pid" 2>/dev/null || true
sampler_pid=

# Memory of the restarted agent (the longest-lived process): after 5 minutes of warm-up, to the end.
python3 - "$work/rss.log" <<'PY'
import sys
samples = [tuple(map(int, line.split())) for line in open(sys.argv[1]) if len(line.split()) == 3]
if not samples:
    print("memory            no samples")
    sys.exit(0)
last_pid = samples[-1][1]
mine = [(t, rss) for t, pid, rss in samples if pid == last_pid]
start = mine[0][0]
warm = [(t, rss) for t, rss in mine if t >= start + 300] or mine
(t0, r0), (t1, r1) = warm[0], warm[-1]
hours = (t1 - t0) / 3600
growth = f"{(r1 - r0) / 1024 / hours:+.1f} MiB/hour over {hours * 60:.0f} min" if hours > 0 else "n/a (too short)"
print(f"agent RSS         {r0 / 1024:.1f} MiB after warm-up, {r1 / 1024:.1f} MiB at the end, "
      f"peak {max(r for _, r in mine) / 1024:.1f} MiB; growth {growth}")
PY

log "verifying the bucket with boto3 against the sources, and the ledger"
python3 - "$work/sources" "$FLEET_TEST_S3_ENDPOINT" "$prefix" "$DATABASE_URL" "$stop_status" <<'PY'
import hashlib, os, subprocess, sys, time
import boto3
root, endpoint, prefix, database, stop_status = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
objects = {}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="fleet-test", Prefix=prefix + "/"):
    for o in page.get("Contents", []):
        objects[o["Key"]] = o["Size"]
expected = {}
for dirpath, _, names in os.walk(root):
    for name in names:
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, root)
        source, relpath = rel.split("/", 1)
        if source == "ros" and "/" in relpath:
            date = relpath[:10]
        else:
            date = time.strftime("%Y-%m-%d", time.gmtime(os.stat(path).st_mtime))
        expected[f"{prefix}/soak-vehicle/{date}/{source}/{relpath}"] = path
problems = []
missing = sorted(set(expected) - set(objects))
extra = sorted(set(objects) - set(expected))
if missing: problems.append(f"{len(missing)} files missing from the bucket, e.g. {missing[:3]}")
if extra: problems.append(f"{len(extra)} unexpected objects, e.g. {extra[:3]}")
mismatched = 0
for key, path in expected.items():
    if key in objects:
        body = s3.get_object(Bucket="fleet-test", Key=key)["Body"].read()
        if hashlib.sha256(body).digest() != hashlib.sha256(open(path, "rb").read()).digest():
            mismatched += 1
if mismatched: problems.append(f"{mismatched} objects differ from their files")
def sql(q):
    return subprocess.run(["psql", database, "-Atc", q], check=True, capture_output=True, text=True).stdout.strip()
twice = sql(f"""SELECT count(*) FROM (SELECT s3_key, size_bytes, mtime FROM file_uploads WHERE status = 'uploaded'
               AND s3_key LIKE '{prefix}/%' GROUP BY 1, 2, 3 HAVING count(*) > 1) d""")
uploading = sql("SELECT count(*) FROM file_uploads WHERE status = 'uploading'")
running = sql("SELECT count(*) FROM sync_sessions WHERE status = 'running'")
sessions = sql("SELECT string_agg(kind || ':' || status || ':' || n, ', ') FROM (SELECT kind, status, count(*) n FROM sync_sessions GROUP BY 1, 2 ORDER BY 1, 2) s")
reconciled = sql("SELECT count(*) FROM file_uploads WHERE error_class = 'interrupted'")
if twice != "0": problems.append(f"{twice} file versions uploaded more than once")
if uploading != "0": problems.append(f"{uploading} rows left uploading")
if running != "0": problems.append(f"{running} sessions left running")
if stop_status != "0": problems.append(f"the agent exited {stop_status} on SIGTERM")
print(f"files written     {len(expected)}")
print(f"objects in bucket {len(objects)}")
print(f"byte mismatches   {mismatched}")
print(f"uploaded twice    {twice}")
print(f"reconciled rows   {reconciled} (left uploading by the SIGKILLed agent, settled at restart)")
print(f"sessions          {sessions}")
print("RESULT: " + ("PASS" if not problems else "FAIL\n  " + "\n  ".join(problems)))
sys.exit(1 if problems else 0)
PY
