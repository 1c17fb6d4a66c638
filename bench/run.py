#!/usr/bin/env python3
"""fleet-upload benchmark: prints the same table every run so runs can be compared.

    bench/run.py [--sizes 30000,300000] [--repeat 3] [--keep]

Benchmarks (more arrive with the upload path):
  scan-plan   `upload --dry-run` on a generated tree: find scan, key mapping, COPY of every planned file
              into the ledger's temp table and the comparison query. Wall time (median of --repeat runs),
              files/s, and peak RSS of the upload process (memory must stay flat in the number of files).

Uses a release build, a private PostgreSQL (scripts/pg.sh, under bench/out/pg) and trees under
bench/out/tree-N (generated once, reused). Nothing leaves 127.0.0.1.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")


def sh(*args, **kw):
    return subprocess.run(args, check=True, cwd=ROOT, **kw)


def make_tree(n):
    """n files of 1–4 KiB in directories of 500, the shape of a sensor data set."""
    tree = os.path.join(OUT, f"tree-{n}")
    marker = os.path.join(tree, ".complete")
    if os.path.exists(marker):
        return tree
    payload = os.urandom(4096)
    for i in range(n):
        d = os.path.join(tree, f"site-{i // 50000:02d}", f"day-{(i // 500) % 100:03d}")
        if i % 500 == 0:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"rec-{i:07d}.wav"), "wb") as f:
            f.write(payload[: 1024 + (i * 37) % 3072])
    open(marker, "w").close()
    return tree


def run_measured(argv, env):
    """Runs argv, returning (wall seconds, peak RSS in KiB of that child, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    # A fresh wait4 per child gives that child's own peak RSS.
    pid = os.fork()
    if pid == 0:
        fd = os.open(os.path.join(OUT, "last-stdout"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.execve(argv[0], argv, env)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(argv)} failed with {os.waitstatus_to_exitcode(status)}")
    with open(os.path.join(OUT, "last-stdout")) as f:
        return wall, usage.ru_maxrss, f.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="30000,300000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)

    sh("swift", "build", "-c", "release", "--product", "upload", stdout=subprocess.DEVNULL)
    bin_dir = subprocess.check_output(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, text=True).strip()
    pg = subprocess.check_output([os.path.join(ROOT, "scripts/pg.sh"), "start", os.path.join(OUT, "pg")], text=True)
    url = pg.strip().split("=", 1)[1].strip("'")

    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        tree = make_tree(n)
        config = os.path.join(OUT, f"plan-{n}.json")
        with open(config, "w") as f:
            json.dump({"project": {"name": f"bench-{n}"}, "s3": {"bucket": "bench-bucket", "prefix": "bench"},
                       "source": {"path": tree, "include": ["*.wav"]}}, f)
        env = {"PATH": os.environ["PATH"], "DATABASE_URL": url, "HOME": os.environ.get("HOME", "/root")}
        argv = [os.path.join(bin_dir, "upload"), "--config", config, "--dry-run", "--json"]
        walls, rss = [], []
        for _ in range(args.repeat):
            wall, peak, out = run_measured(argv, env)
            plan = json.loads(out)
            assert plan["to_upload_files"] == n, f"planned {plan['to_upload_files']} of {n}"
            walls.append(wall)
            rss.append(peak)
        med = statistics.median(walls)
        rows.append(("scan-plan", n, med, n / med, max(rss) / 1024))

    print()
    print(f"{'benchmark':<12} {'files':>9} {'wall s':>8} {'files/s':>10} {'peak RSS MiB':>13}")
    print(f"{'-' * 12} {'-' * 9} {'-' * 8} {'-' * 10} {'-' * 13}")
    for name, n, wall, rate, mib in rows:
        print(f"{name:<12} {n:>9,} {wall:>8.2f} {rate:>10,.0f} {mib:>13.1f}")
    print(f"\n(median of {args.repeat} runs; {os.cpu_count()} cores; release build)")
    subprocess.run([os.path.join(ROOT, "scripts/pg.sh"), "stop", os.path.join(OUT, "pg")], check=False)


if __name__ == "__main__":
    main()
