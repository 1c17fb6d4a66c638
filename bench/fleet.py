#!/usr/bin/env python3
"""A fleet of simulated vehicles on one ledger behind PgBouncer, and the Grafana panels at fleet scale.

    bench/fleet.py [--vehicles 200] [--concurrency 6] [--stagger 0.2] [--files 30-300]
                   [--pool-size 2] [--max-db-connections 16]
                   [--history-rows 10000000] [--history-devices 1000] [--history-months 12]
                   [--heartbeat-days 3] [--reuse-history] [--drop-history] [--keep-indexes]
                   [--skip-simulation] [--skip-history] [--panel-repeat 3]
                   [--no-build | --master-binary PATH]

Three parts, one table each:

1. Simulation. One PostgreSQL (scripts/pg.sh) behind PgBouncer in transaction pooling (scripts/pgbouncer.sh)
   and one SeaweedFS (scripts/s3.sh), all under bench/out/fleet/. Every vehicle gets its own ledger login
   (`master device add vehicle-NNN --project fleet-sim`, a member of fleet_device) and a small generated tree
   in the vehicle layout (YYYY-MM-DD/{terminal,ros,syslog,ros2}/, --files files of 1-8 KiB), and runs one
   `master once` through the pooler; at most --concurrency vehicles run at once, started at least --stagger
   seconds apart. Reported: files/s over the whole run, ledger WAL bytes and PostgreSQL CPU per uploaded file
   (bench/compare.py's wal_position and pg_cpu), PgBouncer's CPU, peak server connections to the ledger
   (pg_stat_activity, polled every 0.2 s) and peak clients of the pooler (SHOW POOLS), and the duration of the
   result-batch statement (one statement, so one transaction) from the server log (log_min_duration_statement
   = 0 during the simulation; parse, bind and execute of each batch summed): median, p99, max.
2. Every Grafana panel query (grafana/dashboards/*.json) and every template-variable query, timed on the
   ledger the simulation produced, as a member of fleet_reader (the role Grafana reads with).
3. The same on a generated history: about --history-rows rows of file_uploads over --history-months monthly
   partitions, kept in bench/out/fleet-history/ and reused with --reuse-history (--drop-history deletes it).

Grafana's macros are substituted the way its PostgreSQL data source does (see panel_sql): the dashboard's
default time range (now-24h or now-7d; on the history, "now" is the moment the history ends), $__interval from
that range over 1,000 data points rounded like Grafana and never below the panel's min interval, multi-value
variables with "All" selected as every value of the variable's query, each quoted ('1','2',...), and the
session variable as the first value its query returns. Each query runs once, then --panel-repeat times more;
the table shows the first run and the median of the others. Panels over 1 s get their EXPLAIN (ANALYZE,
BUFFERS) in bench/out/fleet/explain/.
"""
import argparse
import concurrent.futures
import datetime
import glob
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the measurement functions: pg_cpu, weed_cpu, wal_position, count_objects, ...)

ROOT = compare.ROOT
OUT = os.path.join(compare.OUT, "fleet")
LOGS = os.path.join(OUT, "logs")
TREES = os.path.join(OUT, "trees")
CONFIGS = os.path.join(OUT, "configs")
EXPLAIN = os.path.join(OUT, "explain")
SIM_PG, SIM_S3, SIM_BOUNCER = os.path.join(OUT, "pg"), os.path.join(OUT, "s3"), os.path.join(OUT, "pgbouncer")
HISTORY = os.path.join(compare.OUT, "fleet-history")
HISTORY_PG = os.path.join(HISTORY, "pg")
HISTORY_MARKER = os.path.join(HISTORY, "history.json")
DB = "fleet"
PROJECT, BUCKET = "fleet-sim", "fleet-sim"
READER = "bench_grafana"
SEED = 20261206
SOURCES = [("terminal", "log"), ("ros", "bag"), ("syslog", "log"), ("ros2", "mcap")]
# The result batch (FleetLedger's recordOutcomes): the one statement that updates file_uploads from the batch, a
# call of fleet_record_outcomes since ledger version 20 (an UPDATE … FROM unnest(…) before).
RESULT_STATEMENT = "SELECT fleet_record_outcomes("


def note(msg):
    print(f"fleet: {msg}", file=sys.stderr, flush=True)


def run(argv, **kw):
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kw).stdout


# ---------------------------------------------------------------------------------------------------
# psql as a long-lived child: one connection, statements in, lines out


class Psql:
    def __init__(self, url, header=False):
        argv = ["psql", "-X", "-A", "-q", "-v", "ON_ERROR_STOP=0", "-d", url] + ([] if header else ["-t"])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env={**os.environ, "PGAPPNAME": "fleet-bench"})
        self.lock = threading.Lock()

    def lines(self, sql, terminate=True):
        """The output lines of sql (one or more statements); raises on an error."""
        text = sql.rstrip().rstrip(";") + ";" if terminate else sql.rstrip()
        with self.lock:
            self.proc.stdin.write(text + "\n\\echo __END__\n")
            self.proc.stdin.flush()
            out = []
            while True:
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"psql exited: {' '.join(out)[-300:]}")
                line = line.rstrip("\n")
                if line == "__END__":
                    break
                out.append(line)
        errors = [line for line in out if re.match(r"(psql:\S+ )?(ERROR|FATAL):", line)]
        if errors:
            raise RuntimeError(f"{errors[0]} in: {sql.strip()[:200]}")
        return out

    def value(self, sql):
        got = self.lines(sql)
        return got[0] if got else None

    def timed(self, sql):
        """Milliseconds the server took for sql, output discarded (psql's \\timing: the round trip included)."""
        out = self.lines(f"\\timing on\n\\o /dev/null\n{sql.rstrip().rstrip(';')};\n\\o\n\\timing off",
                         terminate=False)
        times = [float(m.group(1)) for line in out if (m := re.match(r"Time: ([0-9.]+) ms", line))]
        if len(times) != 1:
            raise RuntimeError(f"no timing for: {sql.strip()[:200]} ({out[:3]})")
        return times[0]

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def database_url(server_url, db=DB, user=None):
    """server_url (postgresql://user@host:port/db) with another database and user."""
    m = re.match(r"postgresql://([^@]+)@([^/]+)/(.*)$", server_url)
    return f"postgresql://{user or m.group(1)}@{m.group(2)}/{db}"


# ---------------------------------------------------------------------------------------------------
# The master binary


def master_binary(args):
    if args.master_binary:
        path = os.path.abspath(args.master_binary)
    else:
        if not args.no_build:
            note("swift build -c release --product master")
            log = os.path.join(LOGS, "master-build.log")
            with open(log, "w") as f:
                if subprocess.run(["swift", "build", "-c", "release", "--product", "master"], cwd=ROOT, stdout=f,
                                  stderr=subprocess.STDOUT).returncode != 0:
                    sys.exit(f"fleet: building master failed, see {log}")
        bin_dir = run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT).strip()
        path = os.path.join(bin_dir, "master")
    if not os.access(path, os.X_OK):
        sys.exit(f"fleet: {path} is not an executable (build it, or give --master-binary)")
    return path


def migrate(master, url):
    r = subprocess.run([master, "migrate"], env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"fleet: master migrate failed: {(r.stderr or r.stdout).strip()[-300:]}")


def create_database(server_url):
    admin = Psql(server_url)
    if admin.value(f"SELECT 1 FROM pg_database WHERE datname = '{DB}'") is None:
        admin.lines(f"CREATE DATABASE {DB}")
    admin.close()


def reader_login(server_url):
    """A login in fleet_reader, the role Grafana reads with; its URL."""
    admin = Psql(database_url(server_url))
    admin.lines(f"""DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER}') THEN
            CREATE ROLE {READER} LOGIN IN ROLE fleet_reader;
        END IF; END $$""")
    admin.close()
    return database_url(server_url, user=READER)


# ---------------------------------------------------------------------------------------------------
# Part 1: the simulation


def make_trees(vehicles, lo, hi):
    """One tree per vehicle (regenerated only if the marker differs); returns [(name, tree, files, bytes)]."""
    marker, want = os.path.join(TREES, ".complete"), f"{vehicles} vehicles {lo}-{hi} files seed {SEED}\n"
    rng = random.Random(SEED)
    pool = rng.randbytes(1 << 20)
    fresh = not compare._marker_is(marker, want)
    if fresh:
        note(f"generating {vehicles} trees of {lo}-{hi} files under {TREES}")
        shutil.rmtree(TREES, ignore_errors=True)
    out = []
    base = datetime.datetime(2026, 11, 30, 6, tzinfo=datetime.timezone.utc)
    for v in range(1, vehicles + 1):
        name = f"vehicle-{v:03d}"
        tree = os.path.join(TREES, name)
        n = rng.randint(lo, hi)
        count = size = 0
        for i in range(n):
            source, ext = SOURCES[i % len(SOURCES)]
            day = base + datetime.timedelta(days=(i // 40) % 3)
            d = os.path.join(tree, day.strftime("%Y-%m-%d"), source)
            length = rng.randint(1024, 8192)
            offset = rng.randrange(len(pool) - length)
            if fresh:
                os.makedirs(d, exist_ok=True)
                path = os.path.join(d, f"{source}-{i:05d}.{ext}")
                with open(path, "wb") as f:
                    f.write(pool[offset:offset + length])
                t = day.timestamp() + i * 13
                os.utime(path, (t, t))
            count += 1
            size += length
        out.append((name, tree, count, size))
    if fresh:
        with open(marker, "w") as f:
            f.write(want)
    return out


def start_simulation_servers(args):
    for script, d in (("pgbouncer.sh", SIM_BOUNCER), ("s3.sh", SIM_S3), ("pg.sh", SIM_PG)):
        subprocess.run([os.path.join(ROOT, "scripts", script), "stop", d], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    s3 = {}
    out = run([os.path.join(ROOT, "scripts", "s3.sh"), "start", SIM_S3], env={**os.environ, "FLEET_S3_BUCKETS": BUCKET})
    for line in out.strip().splitlines():
        k, v = line.removeprefix("export ").split("=", 1)
        s3[k] = v.strip("'")
    server = run([os.path.join(ROOT, "scripts", "pg.sh"), "start", SIM_PG]).strip().split("=", 1)[1].strip("'")
    bouncer = run([os.path.join(ROOT, "scripts", "pgbouncer.sh"), "start", SIM_BOUNCER, server])
    bouncer = bouncer.strip().split("=", 1)[1].strip("'")
    # scripts/pgbouncer.sh's pools are sized for the tests; size them as docs/fleet-deployment.md advises
    # (a pool per vehicle login, a cap on the database), and let the bench read SHOW POOLS.
    ini = os.path.join(SIM_BOUNCER, "pgbouncer.ini")
    with open(ini) as f:
        text = f.read()
    text = re.sub(r"(?m)^default_pool_size = .*$", f"default_pool_size = {args.pool_size}", text)
    text = re.sub(r"(?m)^max_db_connections = .*$", f"max_db_connections = {args.max_db_connections}", text)
    text = re.sub(r"(?m)^max_client_conn = .*$", f"max_client_conn = {max(400, 4 * args.vehicles)}", text)
    text += "stats_users = fleet\n"
    with open(ini, "w") as f:
        f.write(text)
    reload_bouncer()
    return s3, server, bouncer


def reload_bouncer():
    with open(os.path.join(SIM_BOUNCER, "pgbouncer.pid")) as f:
        os.kill(int(f.read().strip()), 1)  # SIGHUP: re-read pgbouncer.ini and the user list
    time.sleep(0.5)


def bouncer_cpu():
    with open(os.path.join(SIM_BOUNCER, "pgbouncer.pid")) as f:
        return compare._proc_cpu(int(f.read().strip()))


def add_devices(master, server, names):
    """A login per vehicle; the pooler's user list gets each name (its trust auth still needs the user there)."""
    url = database_url(server)
    env = {**os.environ, "DATABASE_URL": url}
    for name in names:
        r = subprocess.run([master, "device", "add", name, "--project", PROJECT], env=env, capture_output=True,
                           text=True)
        if r.returncode != 0:
            sys.exit(f"fleet: master device add {name} failed: {(r.stderr or r.stdout).strip()[-300:]}")
    with open(os.path.join(SIM_BOUNCER, "userlist.txt"), "a") as f:
        for name in names:
            f.write(f'"{name}" ""\n')
    reload_bouncer()


def vehicle_config(name, tree, s3):
    path = os.path.join(CONFIGS, f"{name}.json")
    with open(path, "w") as f:
        json.dump({"project": {"name": PROJECT}, "device": name,
                   "s3": {"bucket": BUCKET, "prefix": name, "endpoint": s3["FLEET_TEST_S3_ENDPOINT"],
                          "region": s3["FLEET_TEST_S3_REGION"]},
                   "source": {"path": tree}, "scan": {"min_age_seconds": 0}}, f)
    return path


class ConnectionPoller(threading.Thread):
    """Peak server connections to the ledger database (pg_stat_activity) and the pooler's peak clients."""

    def __init__(self, server, bouncer):
        super().__init__(daemon=True)
        self.pg = Psql(server)
        self.admin = Psql(database_url(bouncer, db="pgbouncer"), header=True)
        self.stop = threading.Event()
        self.peak = {"server": 0, "server_active": 0, "clients": 0, "waiting": 0, "maxwait_ms": 0.0}

    def run(self):
        while not self.stop.wait(0.2):
            got = self.pg.value(f"""SELECT count(*) || ' ' || count(*) FILTER (WHERE state = 'active')
                FROM pg_stat_activity WHERE datname = '{DB}' AND backend_type = 'client backend'
                  AND pid <> pg_backend_pid() AND application_name <> 'fleet-bench'""")
            total, active = (int(x) for x in got.split())
            self.peak["server"] = max(self.peak["server"], total)
            self.peak["server_active"] = max(self.peak["server_active"], active)
            lines = self.admin.lines("SHOW POOLS")
            head = lines[0].split("|")
            clients = waiting = 0
            for line in lines[1:]:
                row = dict(zip(head, line.split("|")))
                if row.get("database") != DB:
                    continue
                clients += int(row["cl_active"]) + int(row["cl_waiting"])
                waiting += int(row["cl_waiting"])
                wait_ms = int(row.get("maxwait", 0)) * 1000 + int(row.get("maxwait_us", 0)) / 1000
                self.peak["maxwait_ms"] = max(self.peak["maxwait_ms"], wait_ms)
            self.peak["clients"] = max(self.peak["clients"], clients)
            self.peak["waiting"] = max(self.peak["waiting"], waiting)

    def finish(self):
        self.stop.set()
        self.join()
        self.pg.close()
        self.admin.close()
        return self.peak


def result_batch_durations(log_path, offset):
    """Milliseconds of each result batch in the server log after offset: its parse, bind and execute summed."""
    with open(log_path, errors="replace") as f:
        f.seek(offset)
        text = f.read()
    entry = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[(\d+)\] [^:]*: LOG:  duration: ([0-9.]+) ms  "
                       r"(parse|bind|execute) [^:]*: ", re.M)
    starts = list(entry.finditer(text))
    pending, batches = {}, []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        if RESULT_STATEMENT not in text[m.end():end]:
            continue
        pid, ms, step = m.group(1), float(m.group(2)), m.group(3)
        pending[pid] = pending.get(pid, 0.0) + ms
        if step == "execute":
            batches.append(pending.pop(pid))
    return batches


def percentile(values, p):
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def simulate(args, master):
    for d in (LOGS, CONFIGS):
        os.makedirs(d, exist_ok=True)
    trees = make_trees(args.vehicles, *args.files)
    s3, server, bouncer = start_simulation_servers(args)
    compare.PG_DIR, compare.S3_DIR = SIM_PG, SIM_S3  # where compare's pg_cpu and weed_cpu find the servers
    note(f"SeaweedFS at {s3['FLEET_TEST_S3_ENDPOINT']}, PostgreSQL at {server}, PgBouncer at {bouncer}")
    create_database(server)
    ledger = database_url(server)
    migrate(master, ledger)
    note(f"adding {len(trees)} device logins")
    add_devices(master, server, [t[0] for t in trees])
    configs = [(name, vehicle_config(name, tree, s3), files, size) for name, tree, files, size in trees]
    admin = Psql(server)
    admin.lines("ALTER SYSTEM SET log_min_duration_statement = 0; ALTER SYSTEM SET log_parameter_max_length = 0")
    admin.lines("SELECT pg_reload_conf()")
    time.sleep(0.5)
    log_path = os.path.join(SIM_PG, "server.log")
    log_offset = os.path.getsize(log_path)
    client_env = compare.client_env(s3)

    def one(index, name, config):
        time.sleep(max(0.0, t0 + index * args.stagger - time.perf_counter()))
        env = {**client_env, "DATABASE_URL": database_url(bouncer, user=name)}
        with open(os.path.join(LOGS, f"{name}.out"), "wb") as out, open(os.path.join(LOGS, f"{name}.err"), "wb") as err:
            start = time.perf_counter()
            proc = subprocess.Popen([master, "once", "--config", config, "--json"], env=env, cwd=ROOT,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        return {"name": name, "rc": proc.returncode, "wall": time.perf_counter() - start,
                "cpu": usage.ru_utime + usage.ru_stime}

    poller = ConnectionPoller(server, bouncer)
    wal0, p0, w0, b0 = compare.wal_position(ledger), compare.pg_cpu(), compare.weed_cpu(), bouncer_cpu()
    poller.start()
    note(f"running {len(configs)} vehicles, {args.concurrency} at once, {args.stagger} s apart")
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        runs = list(pool.map(lambda item: one(item[0], item[1][0], item[1][1]), enumerate(configs)))
    wall = time.perf_counter() - t0
    peak = poller.finish()
    wal1, p1, w1, b1 = compare.wal_position(ledger), compare.pg_cpu(), compare.weed_cpu(), bouncer_cpu()
    admin.lines("ALTER SYSTEM RESET log_min_duration_statement; ALTER SYSTEM RESET log_parameter_max_length")
    admin.lines("SELECT pg_reload_conf()")
    admin.close()
    batches = result_batch_durations(log_path, log_offset)
    got, got_bytes = compare.count_objects(s3, BUCKET, "")
    ledger_psql = Psql(ledger)
    recorded = int(ledger_psql.value("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'"))
    ledger_psql.close()
    files = sum(c[2] for c in configs)
    failed = [r for r in runs if r["rc"] != 0]
    for r in failed[:5]:
        note(f"{r['name']} exited {r['rc']}: {compare._last_line(os.path.join(LOGS, r['name'] + '.err'))}")
    return {
        "vehicles": len(configs), "failed": len(failed), "files": files, "bytes": sum(c[3] for c in configs),
        "objects": got, "recorded": recorded, "wall": wall, "client_cpu": sum(r["cpu"] for r in runs),
        "vehicle_wall": [r["wall"] for r in runs], "wal": wal1 - wal0, "pg_cpu": p1 - p0, "weed_cpu": w1 - w0,
        "bouncer_cpu": b1 - b0, "peak": peak, "batches": batches, "server": server,
    }


def print_simulation(sim, args):
    n = sim["recorded"] or 1
    b = sim["batches"]
    print("\nsimulation (one `master once` per vehicle through PgBouncer, transaction pooling; "
          f"{args.concurrency} at once, {args.stagger} s apart; pool {args.pool_size} per vehicle, "
          f"max_db_connections {args.max_db_connections})")
    head = ["vehicles", "failed", "files", "in bucket", "wall s", "files/s", "vehicle s p50/max",
            "WAL B/file", "pg CPU ms/file", "client CPU ms/file", "weed CPU s", "bouncer CPU s",
            "server conns peak (active)", "pooler clients peak (waiting)", "max wait ms",
            "result batches", "batch ms p50/p99/max"]
    cells = [f"{sim['vehicles']}", f"{sim['failed']}", f"{sim['files']:,}",
             f"{sim['objects']:,}" if sim["objects"] is not None else "-", f"{sim['wall']:.1f}",
             f"{sim['recorded'] / sim['wall']:,.0f}",
             f"{statistics.median(sim['vehicle_wall']):.1f}/{max(sim['vehicle_wall']):.1f}",
             f"{sim['wal'] / n:,.0f}", f"{sim['pg_cpu'] * 1000 / n:.3f}", f"{sim['client_cpu'] * 1000 / n:.2f}",
             f"{sim['weed_cpu']:.1f}", f"{sim['bouncer_cpu']:.2f}",
             f"{sim['peak']['server']} ({sim['peak']['server_active']})",
             f"{sim['peak']['clients']} ({sim['peak']['waiting']})", f"{sim['peak']['maxwait_ms']:.0f}",
             f"{len(b):,}",
             f"{statistics.median(b):.1f}/{percentile(b, 99):.1f}/{max(b):.1f}" if b else "none found"]
    width = max(len(h) for h in head)
    for h, c in zip(head, cells):
        print(f"  {h:<{width}}  {c}")
    print(f"(files/s and per-file costs count the {sim['recorded']:,} files the ledger records uploaded; "
          f"{os.cpu_count()} cores shared by vehicles, SeaweedFS, PostgreSQL and PgBouncer; load average at the end "
          f"{os.getloadavg()[0]:.2f})")


# ---------------------------------------------------------------------------------------------------
# Parts 2 and 3: the Grafana panels


def dashboards():
    """[(dashboard title, default time range, [(kind, title, sql, min interval)], variables)]."""
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "grafana", "dashboards", "*.json"))):
        with open(path) as f:
            d = json.load(f)
        panels = []

        def walk(items):
            for p in items:
                yield p
                yield from walk(p.get("panels", []))

        for p in walk(d.get("panels", [])):
            for t in p.get("targets") or []:
                if t.get("rawSql"):
                    panels.append(("panel", p.get("title", "?"), t["rawSql"], p.get("interval")))
        variables = d.get("templating", {}).get("list", [])
        out.append((d.get("title", os.path.basename(path)), d.get("time", {"from": "now-6h"}), panels, variables))
    return out


UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text):
    m = re.fullmatch(r"([0-9.]+)(ms|s|m|h|d)", text.strip())
    return float(m.group(1)) * UNITS[m.group(2)]


def grafana_interval(range_s, min_interval, points=1000):
    """$__interval: the range over the data points, rounded as Grafana rounds it, never below the min interval."""
    raw = range_s / points
    steps = [(0.015, 0.01), (0.035, 0.02), (0.075, 0.05), (0.15, 0.1), (0.35, 0.2), (0.75, 0.5), (1.5, 1),
             (3.5, 2), (7.5, 5), (12.5, 10), (17.5, 15), (25, 20), (45, 30), (67.5, 60), (150, 120), (450, 300),
             (750, 600), (1050, 900), (1500, 1200), (2700, 1800), (5400, 3600), (9000, 7200), (16200, 10800),
             (32400, 21600), (86400, 43200), (604800, 86400)]
    rounded = next((value for limit, value in steps if raw < limit), 604800)
    return max(rounded, seconds(min_interval) if min_interval else 0)


def interval_text(s):
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size and s % size == 0:
            return f"{int(s // size)}{unit}"
    return f"{int(s * 1000)}ms"


def panel_sql(sql, start, end, interval_s, values):
    """sql with Grafana's macros and variables replaced (values: {name: already formatted text})."""
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731

    def group(m):
        column, step = (x.strip() for x in m.group(2).split(",", 1))
        step_s = interval_s if step.strip("'") == "$__interval" else seconds(step.strip("'"))
        alias = ' AS "time"' if m.group(1) == "Alias" else ""
        return f"floor(extract(epoch from {column})/{step_s:g})*{step_s:g}{alias}"

    sql = re.sub(r"\$__timeGroup(Alias)?\(([^)]*)\)", group, sql)
    sql = re.sub(r"\$__timeFilter\(([^)]*)\)", lambda m: f"{m.group(1).strip()} BETWEEN '{iso(start)}' AND '{iso(end)}'",
                 sql)
    sql = sql.replace("$__interval_ms", f"{interval_s * 1000:g}").replace("$__interval", interval_text(interval_s))
    for name in sorted(values, key=len, reverse=True):
        sql = sql.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
    if re.search(r"\$[A-Za-z_]", re.sub(r"'[^']*'", "", sql)):
        raise ValueError(f"unsubstituted macro or variable in: {sql[:200]}")
    return sql


def time_panels(url, now, repeat, label):
    """[(dashboard, kind, title, first ms, median ms, sql)] for every variable and panel query."""
    psql = Psql(url)
    rows = []
    for title, trange, panels, variables in dashboards():
        range_s = seconds(trange.get("from", "now-6h").removeprefix("now-"))
        start, end = now - datetime.timedelta(seconds=range_s), now
        values = {}
        for v in variables:
            if v.get("type") != "query":
                continue
            query = v.get("query")
            query = query.get("rawSql", query.get("query")) if isinstance(query, dict) else query
            sql = panel_sql(query, start, end, grafana_interval(range_s, None), values)
            first, median = measure(psql, sql, repeat)
            rows.append((title, "variable", f"${v['name']}", first, median, sql))
            got = [line.split("|") for line in psql.lines(sql)]
            ids = [r[1] if "__value" in query and query.index("__value") > query.index("__text") and len(r) > 1
                   else r[0] for r in got]
            if v.get("multi") or v.get("includeAll"):
                values[v["name"]] = ",".join(f"'{x}'" for x in ids) or "NULL"
            else:
                values[v["name"]] = ids[0] if ids else "NULL"
        for kind, ptitle, raw, min_interval in panels:
            sql = panel_sql(raw, start, end, grafana_interval(range_s, min_interval), values)
            first, median = measure(psql, sql, repeat)
            rows.append((title, kind, ptitle, first, median, sql))
        note(f"{label}: {title} timed")
    psql.close()
    return rows


def measure(psql, sql, repeat):
    first = psql.timed(sql)
    times = [psql.timed(sql) for _ in range(repeat)]
    return first, statistics.median(times) if times else first


def explain_slow(url, rows, label, limit_ms=1000.0):
    """EXPLAIN (ANALYZE, BUFFERS) of every query over limit_ms, written under bench/out/fleet/explain/."""
    slow = [r for r in rows if r[4] > limit_ms]
    if not slow:
        return []
    os.makedirs(EXPLAIN, exist_ok=True)
    psql = Psql(url)
    paths = []
    for dash, _, title, _, _, sql in slow:
        name = re.sub(r"[^a-z0-9]+", "-", f"{label}-{dash}-{title}".lower()).strip("-")
        path = os.path.join(EXPLAIN, f"{name}.txt")
        with open(path, "w") as f:
            f.write(sql + "\n\n" + "\n".join(psql.lines(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")) + "\n")
        paths.append(path)
    psql.close()
    return paths


def print_panels(rows, heading):
    print(f"\n{heading}")
    print(f"{'dashboard':<22} {'query':<8} {'panel':<34} {'first ms':>9} {'median ms':>9}")
    for dash, kind, title, first, median, _ in rows:
        flag = "  > 1 s" if median > 1000 else ""
        print(f"{dash[:22]:<22} {kind:<8} {title[:34]:<34} {first:>9.1f} {median:>9.1f}{flag}")


# ---------------------------------------------------------------------------------------------------
# Part 3: the generated history


def history_running():
    return os.path.exists(os.path.join(HISTORY_PG, "data", "postmaster.pid")) and subprocess.run(
        as_owner([pg_bin("pg_ctl"), "-D", os.path.join(HISTORY_PG, "data"), "status"]), capture_output=True).returncode == 0


def pg_bin(name):
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    return os.path.join(dirs[-1], name)


def as_owner(argv):
    return (["runuser", "-u", "postgres", "--"] + argv) if os.getuid() == 0 else argv


def start_history_cluster():
    """The kept cluster under bench/out/fleet-history/pg, started again on its port (scripts/pg.sh start would
    delete a stopped cluster's directory); its server URL."""
    port = open(os.path.join(HISTORY_PG, "port")).read().strip()
    if not history_running():
        subprocess.run(as_owner([pg_bin("pg_ctl"), "-D", os.path.join(HISTORY_PG, "data"), "-l",
                                 os.path.join(HISTORY_PG, "server.log"), "-w", "-t", "120", "-o",
                                 f"-p {port} -k {HISTORY_PG} -c listen_addresses=127.0.0.1 -c max_connections=200 "
                                 "-c fsync=off", "start"]), check=True, stdout=subprocess.DEVNULL)
    return f"postgresql://fleet@127.0.0.1:{port}/postgres"


def stop_history_cluster():
    if os.path.exists(os.path.join(HISTORY_PG, "data")):
        subprocess.run(as_owner([pg_bin("pg_ctl"), "-D", os.path.join(HISTORY_PG, "data"), "-m", "fast", "-w",
                                 "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def du(path):
    return int(run(["du", "-sb", path]).split()[0])


# Projects (name, share of the sessions) and the error classes of failed files.
HISTORY_PROJECTS = [("vehicle-logs", 70), ("calibration", 10), ("mapping", 10), ("perception-clips", 6),
                    ("hw-diagnostics", 3), ("field-tests", 1)]
TRANSIENT = [("network", None, "connection reset by peer"), ("throttled", 503, "SlowDown: please reduce your request rate"),
             ("server_error", 500, "InternalError: we encountered an internal error"),
             ("timeout", None, "operation timed out after 300 s")]
PERMANENT = [("access_denied", 403, "AccessDenied: access denied"), ("file_vanished", None, "file disappeared before upload"),
             ("invalid_key", 400, "KeyTooLongError: your key is too long")]


def sql_array(items):
    return "ARRAY[" + ",".join("NULL" if x is None else (str(x) if isinstance(x, int) else "'" + x.replace("'", "''") + "'")
                               for x in items) + "]"


def generate_history(args, master):
    """Fills a fresh ledger with about args.history_rows file rows; returns the marker's contents."""
    stop_history_cluster()
    shutil.rmtree(HISTORY, ignore_errors=True)
    os.makedirs(HISTORY)
    server = run([os.path.join(ROOT, "scripts", "pg.sh"), "start", HISTORY_PG]).strip().split("=", 1)[1].strip("'")
    t_start = time.perf_counter()
    create_database(server)
    ledger = database_url(server)
    migrate(master, ledger)
    psql = Psql(ledger)
    psql.lines("ALTER SYSTEM SET max_wal_size = '8GB'; ALTER SYSTEM SET checkpoint_timeout = '30min'")
    psql.lines("SELECT pg_reload_conf()")
    end = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    months = args.history_months
    index = end.year * 12 + end.month - 1 - (months - 1)
    first = datetime.datetime(index // 12, index % 12 + 1, 1, tzinfo=datetime.timezone.utc)
    first_iso, end_iso = first.isoformat(), end.isoformat()
    avg_files = 200
    sessions = max(1, args.history_rows // avg_files)
    devices = args.history_devices
    note(f"history: {months} months from {first:%Y-%m}, {devices} devices, {sessions:,} sessions, "
         f"~{args.history_rows:,} file rows")
    psql.lines(f"SELECT fleet_ensure_file_upload_partitions('{first_iso}', {months + 1})")
    # Finished months are loaded as a compacted month is kept (fillfactor 100: their rows are not updated any
    # more; docs/architecture.md says how a month is compacted); the current month keeps the room its updates need.
    psql.lines(f"""DO $$ DECLARE p regclass; BEGIN
        FOR p IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'file_uploads'::regclass
                 AND inhrelid::regclass::text < 'file_uploads_{end:%Y_%m}' AND inhrelid::regclass::text <> 'file_uploads_default'
        LOOP EXECUTE format('ALTER TABLE %s SET (fillfactor = 100)', p); END LOOP; END $$""")
    names = [p for p, _ in HISTORY_PROJECTS]
    weights = []
    acc = 0
    for _, w in HISTORY_PROJECTS:
        acc += w
        weights.append(acc)
    psql.lines(f"""INSERT INTO projects (name, bucket, prefix, region, key_template)
        SELECT n, 'fleet-logs', n, 'eu-central-1', '{{device}}/{{date}}/{{source}}/{{relpath}}'
        FROM unnest({sql_array(names)}) AS n""")
    psql.lines(f"""INSERT INTO devices (name, hostname, agent_version, first_seen_at, last_heartbeat_at,
            disk_total_bytes, disk_used_bytes, disk_used_percent, queue_files, queue_bytes, last_upload_at)
        SELECT 'truck-' || lpad(i::text, 4, '0'), 'tvm-' || i, '1.4.' || (i % 3), '{first_iso}',
               '{end_iso}'::timestamptz - CASE WHEN i % 20 = 0 THEN interval '5 hours' ELSE (i % 60) * interval '1 s' END,
               512e9::bigint, (512e9 * (0.2 + (i % 70) / 100.0))::bigint, 20 + (i % 70),
               (i * 37) % 900, ((i * 37) % 900) * 2500000::bigint, '{end_iso}'::timestamptz - (i % 30) * interval '1 minute'
        FROM generate_series(1, {devices}) AS i""")
    # Sessions: uniform over the months, a device and a project each, exponentially many files (mean ~200);
    # the counters decide each file's state below, so the session's totals match its rows.
    psql.lines(f"""
        INSERT INTO sync_sessions (project_id, device_id, kind, status, hostname, pid, local_directory, bucket, s3_prefix,
                                   started_at, heartbeat_at, finished_at, scan_finished_at, total_files, total_bytes,
                                   files_uploaded, bytes_uploaded, files_skipped, bytes_skipped, files_failed,
                                   error_message)
        SELECT p.id, d.id, x.kind, x.status, 'tvm-' || x.dev, 1000 + x.i % 30000, '/var/log/fleet', 'fleet-logs', p.name,
               x.started, x.started + x.dur, CASE WHEN x.status <> 'running' THEN x.started + x.dur END,
               x.started + interval '2 s', x.total, x.total * 1800000::bigint, x.up, x.up * 1800000::bigint, x.sk,
               x.sk * 1800000::bigint,
               x.fail, CASE WHEN x.status = 'failed' THEN 'the bucket could not be reached' END
        FROM (
            SELECT y.*, greatest(0, y.total - y.sk - y.fail - CASE WHEN y.status = 'running' THEN y.total / 2 ELSE 0 END) AS up
            FROM (
                SELECT i, 1 + (hashint4(i) & 2147483647) % {devices} AS dev,
                       started, total,
                       CASE WHEN started > '{end_iso}'::timestamptz - interval '10 minutes' THEN 'running'
                            WHEN i % 100 = 7 THEN 'failed' WHEN i % 50 = 3 THEN 'interrupted'
                            WHEN i % 12 = 5 THEN 'completed_with_errors' ELSE 'completed' END AS status,
                       CASE WHEN i % 12 = 5 OR i % 100 = 7 THEN least(total, 1 + i % 17) ELSE 0 END AS fail,
                       CASE WHEN i % 5 = 1 THEN (total * (i % 7)) / 14 ELSE 0 END AS sk,
                       (ARRAY['scheduled','scheduled','scheduled','scheduled','scheduled','scheduled','scheduled',
                              'immediate','immediate','startup'])[1 + i % 10] AS kind,
                       make_interval(secs => 5 + total * 0.05 + i % 60) AS dur,
                       (hashint4(i * 7 + 1) & 2147483647) % 100 AS pick
                FROM (
                    SELECT i, '{first_iso}'::timestamptz + (('{end_iso}'::timestamptz - '{first_iso}'::timestamptz)
                              * ((i - 0.5) / {sessions})) - interval '2 minutes' AS started,
                           (1 + floor(-ln(1 - ((hashint4(i * 3 + 2) & 2147483647) / 2147483648.0)) * {avg_files - 1}))::integer AS total
                    FROM generate_series(1, {sessions}) AS i
                ) z
            ) y
        ) x
        JOIN devices d ON d.name = 'truck-' || lpad(x.dev::text, 4, '0')
        JOIN projects p ON p.name = (SELECT ({sql_array(names)})[1 + (SELECT count(*) FROM unnest({sql_array(weights)}) w WHERE w <= x.pick)])
        """)
    psql.lines("ANALYZE sync_sessions")
    # The secondary indexes of file_uploads (and its foreign keys, on a ledger older than version 20) are dropped for
    # the load and made again afterwards from their definitions in the catalog: one index build instead of an index
    # insertion per row. The primary key stays (upload_parts refers to it); triggers stay (they count the rows and
    # check each statement's sessions).
    indexes = psql.lines("""SELECT c.relname || '|' || pg_get_indexdef(i.indexrelid)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'file_uploads'::regclass AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)""")
    foreign_keys = psql.lines("""SELECT conname || '|' || pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = 'file_uploads'::regclass AND contype = 'f'""")
    if not args.keep_indexes:
        for line in foreign_keys:
            psql.lines(f"ALTER TABLE file_uploads DROP CONSTRAINT {line.split('|', 1)[0]}")
        for line in indexes:
            psql.lines(f"DROP INDEX {line.split('|', 1)[0]}")
    psql.close()
    t_rows = time.perf_counter()
    month_starts = []
    m = first
    while m < end:
        month_starts.append(m)
        m = (m + datetime.timedelta(days=32)).replace(day=1)
    transient_classes, permanent_classes = [c for c, _, _ in TRANSIENT], [c for c, _, _ in PERMANENT]

    def load_month(start):
        stop = (start + datetime.timedelta(days=32)).replace(day=1)
        p = Psql(ledger)
        p.lines("SET synchronous_commit = off")
        p.lines(f"""
        INSERT INTO file_uploads (created_at, session_id, project_id, source, local_path, rel_path, bucket, s3_key,
                                  size_bytes, mtime, checksum_sha256, status, skip_reason, attempts, error_class,
                                  error_message, http_status, etag, claimed_by, claimed_at, started_at, finished_at,
                                  updated_at)
        SELECT s.started_at + n * interval '30 ms', s.id, s.project_id, src, '/var/log/fleet/' || rel, rel,
               'fleet-logs', d.name || '/' || to_char(s.started_at, 'YYYY-MM-DD') || '/' || src || '/' || rel, size,
               s.started_at - interval '1 hour' + n * interval '1 s',
               CASE WHEN st IN ('uploaded', 'skipped') THEN md5(s.id || ':' || n) || md5(n || ':' || s.id) END,
               st, CASE WHEN st = 'skipped' THEN (ARRAY['ledger', 'bucket'])[1 + n % 2] END,
               CASE st WHEN 'uploaded' THEN 1 + (n % 20 = 0)::int WHEN 'failed' THEN 3 WHEN 'permanent_failure' THEN 1
                       WHEN 'pending' THEN 0 ELSE 1 END,
               CASE WHEN st = 'failed' THEN ({sql_array(transient_classes)})[1 + n % {len(TRANSIENT)}]
                    WHEN st = 'permanent_failure' THEN ({sql_array(permanent_classes)})[1 + n % {len(PERMANENT)}] END,
               CASE WHEN st = 'failed' THEN ({sql_array([m for _, _, m in TRANSIENT])})[1 + n % {len(TRANSIENT)}]
                    WHEN st = 'permanent_failure' THEN ({sql_array([m for _, _, m in PERMANENT])})[1 + n % {len(PERMANENT)}] END,
               CASE WHEN st = 'failed' THEN ({sql_array([h for _, h, _ in TRANSIENT])}::int[])[1 + n % {len(TRANSIENT)}]
                    WHEN st = 'permanent_failure' THEN ({sql_array([h for _, h, _ in PERMANENT])}::int[])[1 + n % {len(PERMANENT)}] END,
               CASE WHEN st = 'uploaded' THEN md5(n || '/' || s.id) END,
               CASE WHEN st = 'uploading' THEN s.hostname || ':' || s.pid END,
               CASE WHEN st = 'uploading' THEN s.started_at + n * interval '30 ms' END,
               CASE WHEN st NOT IN ('pending', 'uploading') THEN s.started_at + n * interval '30 ms' END,
               CASE WHEN st NOT IN ('pending', 'uploading') THEN s.started_at + n * interval '30 ms'
                                                                 + (size / 20e6)::float8 * interval '1 s' END,
               s.started_at + n * interval '30 ms'
        FROM sync_sessions s
        JOIN devices d ON d.id = s.device_id
        CROSS JOIN LATERAL generate_series(1, s.total_files) AS n
        CROSS JOIN LATERAL (SELECT
            (ARRAY['terminal', 'ros', 'syslog', 'ros2'])[1 + n % 4] AS src,
            (ARRAY['terminal', 'ros', 'syslog', 'ros2'])[1 + n % 4] || '-' || n
                || (ARRAY['.log', '.bag', '.log', '.mcap'])[1 + n % 4] AS rel,
            (exp(7 + 9 * ((hashint8(s.id * 100003 + n) & 2147483647) / 2147483648.0)))::bigint AS size,
            CASE WHEN n <= s.files_uploaded THEN 'uploaded'
                 WHEN n <= s.files_uploaded + s.files_skipped THEN 'skipped'
                 WHEN n <= s.files_uploaded + s.files_skipped + s.files_failed
                      THEN CASE WHEN n % 4 = 0 THEN 'permanent_failure' ELSE 'failed' END
                 WHEN n % 3 = 0 THEN 'uploading' ELSE 'pending' END AS st) AS f
        WHERE s.started_at >= '{start.isoformat()}' AND s.started_at < '{stop.isoformat()}'
        """)
        p.close()
        note(f"history: file_uploads of sessions started in {start:%Y-%m} loaded")

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(load_month, month_starts))
    t_loaded = time.perf_counter()
    psql = Psql(ledger)
    psql.lines("SET maintenance_work_mem = '1GB'")
    if not args.keep_indexes:
        for line in indexes:
            psql.lines(line.split("|", 1)[1].replace(" ON ONLY ", " ON "))
        for line in foreign_keys:
            name, definition = line.split("|", 1)
            psql.lines(f"ALTER TABLE file_uploads ADD CONSTRAINT {name} {definition}")
    t_indexed = time.perf_counter()
    note("history: the other tables")
    psql.lines(f"""INSERT INTO device_heartbeats (device_id, at, disk_used_percent, queue_files, queue_bytes)
        SELECT d.id, t - (d.id % 60) * interval '1 s', 20 + (d.id % 70) + (extract(hour FROM t) / 10)::int,
               (d.id * 37 + extract(minute FROM t)::int * 13) % 900, ((d.id * 37) % 900) * 2500000
        FROM devices d
        CROSS JOIN generate_series('{end_iso}'::timestamptz - interval '{args.heartbeat_days} days',
                                   '{end_iso}'::timestamptz, interval '60 s') AS t
        WHERE d.last_heartbeat_at >= t - interval '1 minute'""")
    psql.lines(f"""INSERT INTO local_deletions (device_id, session_id, local_path, size_bytes, mtime, reason, was_uploaded,
                                        deleted_at, state)
        SELECT s.device_id, s.id, '/var/log/fleet/deleted-' || n || '.log', 4096 * n, s.started_at - interval '1 day',
               CASE WHEN n % 50 = 0 THEN 'age' ELSE 'after_upload' END, n % 50 <> 0, s.finished_at + n * interval '10 ms',
               'deleted'
        FROM sync_sessions s CROSS JOIN LATERAL generate_series(1, s.files_uploaded / 10) AS n
        WHERE s.finished_at IS NOT NULL""")
    psql.lines("""INSERT INTO retry_rounds (session_id, round, started_at, finished_at, files_attempted, files_uploaded,
                                         files_failed)
        SELECT s.id, r, s.finished_at + r * interval '1 minute', s.finished_at + r * interval '1 minute' + interval '5 s',
               s.files_failed, CASE WHEN r = 3 THEN 0 ELSE s.files_failed / 2 END, s.files_failed - s.files_failed / 2
        FROM sync_sessions s CROSS JOIN LATERAL generate_series(1, 1 + s.id::int % 3) AS r
        WHERE s.files_failed > 0 AND s.finished_at IS NOT NULL""")
    psql.lines("""INSERT INTO trigger_events (session_id, url, attempt, http_status, latency_ms, succeeded, error_message,
                                           response_excerpt, created_at, delivery)
        SELECT s.id, 'https://pipeline.example.internal/ingest', a,
               CASE WHEN a < 1 + (s.id % 40 = 0)::int THEN 502 ELSE 202 END, 20 + (s.id % 400)::int,
               a = 1 + (s.id % 40 = 0)::int, CASE WHEN a < 1 + (s.id % 40 = 0)::int THEN 'HTTP 502 Bad Gateway' END,
               CASE WHEN a = 1 + (s.id % 40 = 0)::int THEN '{"accepted": true}' END,
               s.finished_at + a * interval '2 s', 1
        FROM sync_sessions s CROSS JOIN LATERAL generate_series(1, 1 + (s.id % 40 = 0)::int) AS a
        WHERE s.finished_at IS NOT NULL AND s.id % 3 = 0""")
    note("history: VACUUM (ANALYZE)")
    psql.lines("VACUUM (ANALYZE)")
    t_done = time.perf_counter()
    rows = int(psql.value("SELECT count(*) FROM file_uploads"))
    size = int(psql.value("SELECT pg_database_size(current_database())"))
    fu_size = int(psql.value("""SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits
        WHERE inhparent = 'file_uploads'::regclass"""))
    partitions = int(psql.value("SELECT count(*) FROM pg_inherits WHERE inhparent = 'file_uploads'::regclass"))
    psql.close()
    meta = {"end": end_iso, "rows": rows, "devices": devices, "sessions": sessions, "months": months,
            "partitions": partitions, "heartbeat_days": args.heartbeat_days, "database_bytes": size,
            "file_uploads_bytes": fu_size, "cluster_bytes": du(HISTORY_PG),
            "seconds": {"setup": round(t_rows - t_start, 1), "file_uploads": round(t_loaded - t_rows, 1),
                        "indexes": round(t_indexed - t_loaded, 1), "other_tables_vacuum": round(t_done - t_indexed, 1),
                        "total": round(t_done - t_start, 1)}}
    with open(HISTORY_MARKER, "w") as f:
        json.dump(meta, f, indent=1)
    return server, meta


def print_history(meta, reused):
    s = meta["seconds"]
    print(f"\nhistory{' (reused)' if reused else ''}: {meta['rows']:,} file_uploads rows in {meta['partitions']} partitions, {meta['sessions']:,} sessions, "
          f"{meta['devices']:,} devices, {meta['heartbeat_days']} days of heartbeats; database "
          f"{meta['database_bytes'] / 2**30:.2f} GiB (file_uploads with indexes {meta['file_uploads_bytes'] / 2**30:.2f} GiB,"
          f" {meta['file_uploads_bytes'] / max(meta['rows'], 1):.0f} B/row), cluster on disk "
          f"{meta['cluster_bytes'] / 2**30:.2f} GiB with WAL; generated in {s['total']:.0f} s (file rows {s['file_uploads']:.0f} s, "
          f"indexes {s['indexes']:.0f} s, other tables and VACUUM ANALYZE {s['other_tables_vacuum']:.0f} s)")


# ---------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vehicles", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=6, help="vehicles running at once")
    parser.add_argument("--stagger", type=float, default=0.2, help="seconds at least between two vehicles' starts")
    parser.add_argument("--files", default="30-300", help="files per vehicle: LOW-HIGH (uniform)")
    parser.add_argument("--pool-size", type=int, default=2, help="PgBouncer default_pool_size (per vehicle login)")
    parser.add_argument("--max-db-connections", type=int, default=16, help="PgBouncer max_db_connections")
    parser.add_argument("--history-rows", type=int, default=10_000_000)
    parser.add_argument("--history-devices", type=int, default=1000)
    parser.add_argument("--history-months", type=int, default=12)
    parser.add_argument("--heartbeat-days", type=int, default=3, help="days of one-minute heartbeats per device")
    parser.add_argument("--keep-indexes", action="store_true",
                        help="load file_uploads with its secondary indexes and foreign keys in place (default: drop "
                             "them, load, make them again)")
    parser.add_argument("--reuse-history", action="store_true", help="use the history kept under bench/out/fleet-history")
    parser.add_argument("--drop-history", action="store_true", help="delete the kept history and exit")
    parser.add_argument("--skip-simulation", action="store_true")
    parser.add_argument("--skip-history", action="store_true")
    parser.add_argument("--panel-repeat", type=int, default=3)
    parser.add_argument("--no-build", action="store_true", help="use the release `master` already built")
    parser.add_argument("--master-binary", help="this `master` instead of building one")
    args = parser.parse_args()
    try:
        lo, hi = (int(x) for x in args.files.split("-"))
        if not 1 <= lo <= hi:
            raise ValueError
        args.files = (lo, hi)
    except ValueError:
        parser.error("--files: LOW-HIGH with 1 <= LOW <= HIGH, e.g. 30-300")
    if args.vehicles < 1 or args.concurrency < 1 or args.history_rows < 1 or args.history_months < 1:
        parser.error("--vehicles, --concurrency, --history-rows and --history-months must be at least 1")
    if args.drop_history:
        stop_history_cluster()
        shutil.rmtree(HISTORY, ignore_errors=True)
        note(f"deleted {HISTORY}")
        return
    os.makedirs(LOGS, exist_ok=True)
    master = master_binary(args)

    sim = produced = history = meta = None
    if not args.skip_simulation:
        try:
            sim = simulate(args, master)
            print_simulation(sim, args)
            url = reader_login(sim["server"])
            produced = time_panels(url, datetime.datetime.now(datetime.timezone.utc), args.panel_repeat, "produced")
            print_panels(produced, f"panels on the ledger the simulation produced ({sim['recorded']:,} uploaded files; "
                                   f"first run and median of {args.panel_repeat}, ms)")
            explain_slow(url, produced, "produced")
        finally:
            for script, d in (("pgbouncer.sh", SIM_BOUNCER), ("s3.sh", SIM_S3), ("pg.sh", SIM_PG)):
                subprocess.run([os.path.join(ROOT, "scripts", script), "stop", d], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    if not args.skip_history:
        try:
            reused = args.reuse_history and os.path.exists(HISTORY_MARKER)
            if reused:
                server = start_history_cluster()
                with open(HISTORY_MARKER) as f:
                    meta = json.load(f)
                note(f"reusing the history under {HISTORY} ({meta['rows']:,} rows)")
            else:
                server, meta = generate_history(args, master)
            print_history(meta, reused)
            url = reader_login(server)
            now = datetime.datetime.fromisoformat(meta["end"])
            history = time_panels(url, now, args.panel_repeat, "history")
            print_panels(history, f"panels on the generated history ({meta['rows']:,} file_uploads rows; first run "
                                  f"and median of {args.panel_repeat}, ms; time range ending {meta['end']})")
            for path in explain_slow(url, history, f"history-{meta['rows']}"):
                print(f"  EXPLAIN ANALYZE: {os.path.relpath(path, ROOT)}")
        finally:
            stop_history_cluster()
    print(f"\n(panels: Grafana's macros substituted as described in bench/fleet.py's header; "
          f"{os.cpu_count()} cores; load average at the end {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
