#!/usr/bin/env python3
"""The agent's memory against the files on disk: it must follow the work (pending files), not the disk.

    bench/agent_memory.py [--files 1000000] [--keep] [--no-build] [--debug]

Generates `--files` files of 0–63 bytes under bench/out/agent-mem-N/ (1,000 a directory, mtimes spread over the
last day so all are young enough to be taken up; generated once, reused), starts a private PostgreSQL and
SeaweedFS on 127.0.0.1, and runs the agent (`master run`, release build) on the tree with a one-minute rescan.
Once the ledger records every file uploaded it waits for the next complete rescan, then prints one table:
files, upload wall time, files/s, RSS after the rescan (VmRSS), peak RSS over the run (VmHWM) and the
agent's own count of handled versions. The target: 64 MiB RSS or less with 1,000,000 uploaded files on disk.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")


def make_tree(n):
    tree = os.path.join(OUT, f"agent-mem-{n}")
    marker = os.path.join(OUT, f"agent-mem-{n}.complete")
    if os.path.exists(marker):
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    now = time.time()
    payload = b"x" * 64
    for i in range(n):
        directory = os.path.join(tree, f"run-{i // 100_000:02d}", f"part-{(i // 1000) % 100:02d}")
        if i % 1000 == 0:
            os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"log-{i:07d}.txt")
        with open(path, "wb") as f:
            f.write(payload[: i % 64])
        mtime = now - 600 - (i % 86_000)
        os.utime(path, (mtime, mtime))
    open(marker, "w").close()
    return tree


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])  # KiB
    return 0


def sql(url, query):
    result = subprocess.run(["psql", url, "-Atc", query], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def wait_for_empty_rescan(log_path, offset, problems, reason="periodic rescan"):
    """Follows the agent's log from `offset` to the first complete scan of `reason` with nothing queued."""
    queued = handled = None
    with open(log_path) as f:
        f.seek(offset)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            line = f.readline()
            if not line:
                time.sleep(1)
                continue
            if f"{reason}:" not in line:
                continue
            handled = re.search(r"handled=(\d+)", line)
            queued = re.search(r"queue\.files=(\d+)", line)
            if queued and int(queued.group(1)) == 0:
                return queued, handled
    problems.append(f"no {reason} with an empty queue within 10 minutes")
    return queued, handled


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="leave the servers' data under bench/out")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--debug", action="store_true", help="the debug build (quicker to make)")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds for the whole upload")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    configuration = "debug" if args.debug else "release"
    if not args.no_build:
        subprocess.run(["swift", "build", "-c", configuration, "--product", "master"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    bin_dir = subprocess.check_output(["swift", "build", "-c", configuration, "--show-bin-path"], cwd=ROOT,
                                      text=True).strip()
    n = args.files
    print(f"agent_memory: tree of {n:,} files", file=sys.stderr, flush=True)
    tree = make_tree(n)

    work = os.path.join(OUT, "agent-mem-run")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env = dict(os.environ, no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
    for script, name in (("pg.sh", "pg"), ("s3.sh", "s3")):
        out = subprocess.check_output([os.path.join(ROOT, "scripts", script), "start", os.path.join(work, name)],
                                      text=True, env=env)
        for key, value in re.findall(r"(\w+)='([^']*)'", out):
            env[key] = value
    url = env["FLEET_TEST_DATABASE_URL"]
    env.update(DATABASE_URL=url, AWS_ACCESS_KEY_ID=env["FLEET_TEST_S3_ACCESS_KEY_ID"],
               AWS_SECRET_ACCESS_KEY=env["FLEET_TEST_S3_SECRET_ACCESS_KEY"], AWS_REGION="us-east-1")
    config = os.path.join(work, "agent.yaml")
    with open(config, "w") as f:
        f.write(f"""project: {{ name: agent-memory }}
device: bench-vehicle
s3: {{ bucket: fleet-test, prefix: mem, endpoint: "{env['FLEET_TEST_S3_ENDPOINT']}", region: us-east-1 }}
sources:
  - {{ name: logs, path: {tree} }}
keys: {{ template: "{{prefix}}/{{device}}/{{source}}/{{relpath}}" }}
upload: {{ workers: 32 }}
agent: {{ stability_seconds: 5, heartbeat_seconds: 30, rescan_minutes: 1 }}
""")
    log_path = os.path.join(work, "agent.log")
    master = os.path.join(bin_dir, "master")
    subprocess.run([master, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    log = open(log_path, "w")
    agent = subprocess.Popen([master, "run", "--config", config, "--log-level", "info"], env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    problems = []
    try:
        started = time.monotonic()
        uploaded = 0
        while uploaded < n:
            if agent.poll() is not None:
                raise SystemExit(f"agent_memory: the agent exited ({agent.returncode}); see {log_path}")
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"agent_memory: {uploaded:,} of {n:,} uploaded after {args.timeout} s")
            time.sleep(5)
            uploaded = int(sql(url, "SELECT count(DISTINCT s3_key) FROM file_uploads WHERE status = 'uploaded'")
                           or 0)
            print(f"agent_memory: {uploaded:,} uploaded, RSS {status(agent.pid, 'VmRSS') / 1024:.0f} MiB",
                  file=sys.stderr, flush=True)
        upload_wall = time.monotonic() - started
        queued, handled = wait_for_empty_rescan(log_path, 0, problems)
        time.sleep(5)
        rss = status(agent.pid, "VmRSS") / 1024
        peak = status(agent.pid, "VmHWM") / 1024
        # A restart with every file already uploaded: the start-up scan asks the ledger instead of queueing them.
        agent.terminate()
        agent.wait(timeout=120)
        offset = os.path.getsize(log_path)
        log = open(log_path, "a")
        restarted = time.monotonic()
        agent = subprocess.Popen([master, "run", "--config", config, "--log-level", "info"], env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
        queued_again, _ = wait_for_empty_rescan(log_path, offset, problems, reason="start-up scan")
        restart_wall = time.monotonic() - restarted
        time.sleep(5)
        restart_rss = status(agent.pid, "VmRSS") / 1024
        restart_peak = status(agent.pid, "VmHWM") / 1024
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=60)
        except subprocess.TimeoutExpired:
            agent.kill()
        for script, name in (("pg.sh", "pg"), ("s3.sh", "s3")):
            subprocess.run([os.path.join(ROOT, "scripts", script), "stop", os.path.join(work, name)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not args.keep:
            shutil.rmtree(os.path.join(work, "pg"), ignore_errors=True)
            shutil.rmtree(os.path.join(work, "s3"), ignore_errors=True)

    if queued and int(queued.group(1)) != 0:
        problems.append(f"the rescan queued {queued.group(1)} files again")
    print()
    print(f"{'files on disk':>14} {'upload s':>9} {'files/s':>8} {'RSS after rescan MiB':>21} "
          f"{'peak RSS MiB':>13} {'handled':>10}")
    print(f"{n:>14,} {upload_wall:>9.0f} {n / upload_wall:>8,.0f} {rss:>21.1f} {peak:>13.1f} "
          f"{handled.group(1) if handled else '?':>10}")
    print(f"{'after a restart':>14} {'scan s':>9} {'':>8} {'RSS after start-up scan MiB':>21} "
          f"{'peak RSS MiB':>13} {'queued':>10}")
    print(f"{n:>14,} {restart_wall:>9.0f} {'':>8} {restart_rss:>21.1f} {restart_peak:>13.1f} "
          f"{queued_again.group(1) if queued_again else '?':>10}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
