#!/usr/bin/env python3
"""The vehicle agent through a simulated production cycle of bad WiFi and crashes, then checked.

    soak.py HOURS WORK MASTER   (run by scripts/soak.sh, which builds MASTER and starts the servers)

Environment: DATABASE_URL, FLEET_TEST_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.

`master run` watches four sources under WORK/sources and uploads through tcp-proxy.py, which plays the
network. Files are written all along at each phase's rate. One cycle lasts 100 minutes, scaled to fit HOURS
(several cycles when HOURS is longer):

    available      15   the link is up                              50 files/min
    outage         30   no link: the queue builds up               100 files/min
    drain          10   the link is back: the queue drains           0 files/min
    intermittent   10   30 s up, 30 s down                          50 files/min
    flapping       10   up and down every 2-3 s                     50 files/min
    degraded       10   500 ms per request, 10 % reset mid-body     50 files/min
    crashes        15   the agent is SIGKILLed three times         200 files/min

Afterwards the link is clear and the agent is given up to 10 minutes to empty its queue, then stopped with
SIGTERM. The report: files per phase, failed attempts by class, the queue's peak, the agent's memory growth
per hour, and the checks: every file in the bucket exactly once and byte for byte (read with boto3), nothing
uploaded twice, no file left held by a claim (a row `uploading`, a claim range), no session `running`. Exit 0 when every check passes.
"""
import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time

import boto3
from botocore.config import Config

hours, work, master = float(sys.argv[1]), sys.argv[2], sys.argv[3]
database = os.environ["DATABASE_URL"]
endpoint = os.environ["FLEET_TEST_S3_ENDPOINT"]
here = os.path.dirname(os.path.abspath(__file__))
bucket, device, prefix = "fleet-test", "soak-vehicle", f"soak-{int(time.time())}"
sources = ["terminal", "ros", "syslog", "ros2"]

# name, minutes of the 100-minute cycle, proxy commands, files per minute
CYCLE = [
    ("available", 15, ["clear"], 50),
    ("outage", 30, ["clear", "down"], 100),
    ("drain", 10, ["clear"], 0),
    ("intermittent", 10, ["clear", "flap 30 30"], 50),
    ("flapping", 10, ["clear", "flap 2 3"], 50),
    ("degraded", 10, ["clear", "latency 500", "reset 0.1"], 50),
    ("crashes", 15, ["clear"], 200),
]
cycles = max(1, round(hours * 60 / 100))
scale = hours * 60 / (cycles * 100)
started = time.monotonic()


def log(message):
    print(f"soak: {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def sql(query):
    result = subprocess.run(["psql", database, "-Atc", query], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


class Proxy:
    """tcp-proxy.py in front of the S3 server: the vehicle's link."""

    def __init__(self):
        port = endpoint.rsplit(":", 1)[1]
        self.process = subprocess.Popen([sys.executable, os.path.join(here, "tcp-proxy.py"), port],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.endpoint = "http://127.0.0.1:" + self.process.stdout.readline().split()[1]

    def send(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().split()

    def faults(self):
        resets, errors, downs = map(int, self.send("faults")[1:4])
        return {"resets": resets, "errors": errors, "downs": downs}


class Agent:
    """`master run`, started again after each SIGKILL; its RSS sampled every 15 s."""

    def __init__(self, config):
        self.config, self.process, self.kills = config, None, 0
        self.samples = []  # (seconds since the soak started, pid, RSS KiB)
        self.log = open(os.path.join(work, "agent.log"), "ab")
        threading.Thread(target=self.sample, daemon=True).start()

    def start(self):
        self.process = subprocess.Popen([master, "run", "--config", self.config, "--log-level", "info"],
                                        stdout=self.log, stderr=self.log, cwd=work)
        log(f"agent started (pid {self.process.pid})")

    def kill(self):
        self.process.kill()
        self.process.wait()
        self.kills += 1
        log("agent SIGKILLed")

    def sample(self):
        while True:
            time.sleep(15)
            process = self.process
            try:
                with open(f"/proc/{process.pid}/status") as status:
                    rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
                self.samples.append((time.monotonic() - started, process.pid, rss))
            except (AttributeError, OSError, StopIteration):
                pass


class Writer:
    """New files in every source at the phase's rate: logs of 1-200 KiB, every 200th a 12 MiB recording
    (multipart), every 10th written in pieces over a few seconds (a growing log), ROS run folders."""

    def __init__(self):
        self.rate, self.written, self.stop = 0, 0, threading.Event()
        self.random = random.Random(3)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        growing = []
        while not self.stop.is_set():
            rate = self.rate
            if rate == 0:
                self.stop.wait(0.5)
                continue
            source = self.random.choice(sources)
            n = self.written
            if source == "ros":
                folder = time.strftime("%Y-%m-%d-%H-%M-00-", time.gmtime()) + "123456-soak"
                path = os.path.join(work, "sources", source, folder, f"node-{n}.log")
            else:
                path = os.path.join(work, "sources", source, f"{source}-{n}.log")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            size = 12 << 20 if n % 200 == 199 else self.random.randint(1 << 10, 200 << 10)
            with open(path, "wb") as f:
                f.write(self.random.randbytes(size))
            if n % 10 == 0:
                growing.append(path)
            for g in list(growing):
                with open(g, "ab") as f:
                    f.write(self.random.randbytes(self.random.randint(1, 4000)))
                if self.random.random() < 0.3:
                    growing.remove(g)
            self.written += 1
            self.stop.wait(60 / rate)


def queue_and_running():
    row = sql(f"SELECT coalesce(queue_files, -1), (SELECT count(*) FROM sync_sessions WHERE status = 'running') "
              f"FROM devices WHERE name = '{device}'")
    return tuple(map(int, row.split("|"))) if row else (-1, -1)


def uploaded_count():
    return int(sql(f"SELECT count(*) FROM file_uploads WHERE status = 'uploaded' AND s3_key LIKE '{prefix}/%'")
               or 0)


def expected_keys():
    expected = {}
    root = os.path.join(work, "sources")
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            source, relpath = os.path.relpath(path, root).split("/", 1)
            if source == "ros" and "/" in relpath:
                date = relpath[:10]
            else:
                date = time.strftime("%Y-%m-%d", time.gmtime(os.stat(path).st_mtime))
            expected[f"{prefix}/{device}/{date}/{source}/{relpath}"] = path
    return expected


def sha256(stream):
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def main():
    os.makedirs(os.path.join(work, "sources"), exist_ok=True)
    for source in sources:
        os.makedirs(os.path.join(work, "sources", source), exist_ok=True)
    proxy = Proxy()
    config = os.path.join(work, "agent.yaml")
    source_lines = "".join(f"  - {{ name: {s}, path: sources/{s} }}\n" for s in sources)
    with open(config, "w") as f:
        f.write(f"""project: {{ name: soak }}
device: {device}
s3: {{ bucket: {bucket}, prefix: {prefix}, endpoint: "{proxy.endpoint}", region: us-east-1 }}
sources:
{source_lines}keys: {{ template: "{{prefix}}/{{device}}/{{date}}/{{source}}/{{relpath}}" }}
upload: {{ workers: 4, max_attempts: 5, backoff_base_seconds: 0.2, backoff_cap_seconds: 2, give_up_after_seconds: 20,
          multipart_threshold_mb: 8, part_size_mb: 5, part_concurrency: 2 }}
retry: {{ rounds: 3, round_backoff_base_seconds: 2, round_backoff_cap_seconds: 10 }}
agent: {{ stability_seconds: 2, heartbeat_seconds: 5, rescan_minutes: 1 }}
""")
    agent = Agent(config)
    agent.start()
    writer = Writer()
    queue_peak = [0, ""]
    phase_name = [""]

    def watch_queue():
        while True:
            time.sleep(5)
            queue, _ = queue_and_running()
            if queue > queue_peak[0]:
                queue_peak[0], queue_peak[1] = queue, phase_name[0]

    threading.Thread(target=watch_queue, daemon=True).start()

    log(f"{cycles} cycle(s) of {100 * scale:.1f} minutes; files under {work}/sources, the agent's log in "
        f"{work}/agent.log")
    phases = []
    for cycle in range(cycles):
        for name, minutes, commands, rate in CYCLE:
            seconds = minutes * 60 * scale
            phase_name[0] = name
            for command in commands:
                proxy.send(command)
            writer.rate = rate
            before_written, before_uploaded, begin = writer.written, uploaded_count(), time.monotonic()
            log(f"cycle {cycle + 1}, {name} for {seconds:.0f} s ({rate} files/min)")
            if name == "crashes":
                for _ in range(3):
                    time.sleep(seconds / 4)
                    agent.kill()
                    time.sleep(min(5, seconds / 8))
                    agent.start()
                time.sleep(max(0, begin + seconds - time.monotonic()))
            else:
                time.sleep(seconds)
            queue, _ = queue_and_running()
            phases.append((cycle + 1, name, writer.written - before_written,
                           uploaded_count() - before_uploaded, queue, time.monotonic() - begin))
    faults = proxy.faults()
    writer.stop.set()
    writer.thread.join()
    proxy.send("clear")
    phase_name[0] = "final drain"
    log(f"writing finished ({writer.written} files); waiting for the agent to upload everything")

    # Done when, three heartbeats in a row, the agent reports an empty queue and no session is running.
    deadline, calm = time.monotonic() + 600, 0
    while calm < 3 and time.monotonic() < deadline:
        time.sleep(5)
        queue, running = queue_and_running()
        calm = calm + 1 if queue == 0 and running == 0 else 0
    drained = calm >= 3
    agent.process.send_signal(signal.SIGTERM)
    stop_status = agent.process.wait()
    proxy.process.stdin.close()

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}))
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for item in page.get("Contents", []):
            objects[item["Key"]] = item["Size"]
    expected = expected_keys()
    missing = sorted(set(expected) - set(objects))
    extra = sorted(set(objects) - set(expected))
    mismatched = 0
    for key, path in expected.items():
        if key in objects:
            with open(path, "rb") as f:
                local = sha256(f)
            if sha256(s3.get_object(Bucket=bucket, Key=key)["Body"]) != local:
                mismatched += 1
    twice = sql(f"""SELECT count(*) FROM (SELECT s3_key, size_bytes, mtime FROM file_uploads WHERE status = 'uploaded'
                    AND s3_key LIKE '{prefix}/%' GROUP BY 1, 2, 3 HAVING count(*) > 1) d""")
    uploading = sql("SELECT count(*) FROM file_uploads WHERE status = 'uploading'")
    ranges = sql("SELECT count(*) FROM file_claims")
    running = sql("SELECT count(*) FROM sync_sessions WHERE status = 'running'")
    by_class = sql("SELECT string_agg(c || ' ' || n, ', ' ORDER BY n DESC) FROM (SELECT coalesce(error_class, '?') c, "
                   "count(*) n FROM file_uploads WHERE status = 'failed' GROUP BY 1) s") or "none"
    sessions = sql("SELECT string_agg(status || ' ' || n, ', ' ORDER BY n DESC) FROM "
                   "(SELECT status, count(*) n FROM sync_sessions GROUP BY 1) s")
    reconciled = sql("SELECT count(*) FROM file_uploads WHERE error_class = 'interrupted'")

    print(f"\n{'cycle':>5}  {'phase':<13}{'seconds':>8}{'written':>9}{'uploaded':>10}{'queue at end':>14}")
    for cycle, name, written, uploaded, queue, seconds in phases:
        print(f"{cycle:>5}  {name:<13}{seconds:>8.0f}{written:>9}{uploaded:>10}{queue:>14}")
    print()
    print(f"files written       {writer.written} ({len(expected)} on disk)")
    print(f"objects in bucket   {len(objects)}")
    print(f"queue peak          {queue_peak[0]} files (during {queue_peak[1] or '-'})")
    print(f"network faults      link down {faults['downs']} times, {faults['resets']} requests reset mid-body")
    print(f"failed attempts     {by_class} (rows of sessions whose files a later session uploaded)")
    print(f"agent restarts      {agent.kills} after SIGKILL; {reconciled} rows settled at restart")
    print(f"sessions            {sessions}")
    # The agent that ran longest (the last one, unless the crashes phase came late in a short soak).
    pids = [pid for _, pid, _ in agent.samples]
    longest = max(set(pids), key=pids.count) if pids else None
    mine = [(t, rss) for t, pid, rss in agent.samples if pid == longest]
    if len(mine) < 2:
        print("agent memory        too few samples (one every 15 s)")
    else:
        warm_up = min(300, (mine[-1][0] - mine[0][0]) / 4)
        warm = [(t, rss) for t, rss in mine if t >= mine[0][0] + warm_up]
        (t0, r0), (t1, r1) = warm[0], warm[-1]
        span = (t1 - t0) / 3600
        growth = f"{(r1 - r0) / 1024 / span:+.1f} MiB/hour over {span * 60:.0f} min" if span > 0 else "n/a"
        print(f"agent memory        pid {longest}: {r0 / 1024:.1f} MiB after warm-up, {r1 / 1024:.1f} MiB at the "
              f"end, peak {max(r for _, r in mine) / 1024:.1f} MiB; growth {growth}")
    problems = []
    if missing:
        problems.append(f"{len(missing)} files missing from the bucket, e.g. {missing[:3]}")
    if extra:
        problems.append(f"{len(extra)} unexpected objects, e.g. {extra[:3]}")
    if mismatched:
        problems.append(f"{mismatched} objects differ from their files")
    if twice != "0":
        problems.append(f"{twice} file versions uploaded more than once")
    if uploading != "0":
        problems.append(f"{uploading} rows left uploading")
    if ranges != "0":
        problems.append(f"{ranges} claim ranges left")
    if running != "0":
        problems.append(f"{running} sessions left running")
    if not drained:
        problems.append("the queue did not drain within 10 minutes of the link coming back")
    if stop_status != 0:
        problems.append(f"the agent exited {stop_status} on SIGTERM")
    print("RESULT: " + ("PASS" if not problems else "FAIL\n  " + "\n  ".join(problems)))
    return 1 if problems else 0


sys.exit(main())
