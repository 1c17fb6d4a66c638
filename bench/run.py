#!/usr/bin/env python3
"""fleet-upload benchmark: prints the same table every run so runs can be compared.

    bench/run.py [--only scan-plan,put-large] [--sizes 30000,300000] [--large-mib 2048] [--repeat 3]

Benchmarks (more arrive with the upload path):
  scan-plan   `upload --dry-run` on a generated tree: find scan, key mapping, COPY of every planned file
              into the ledger's temp table and the comparison query. Wall time (median of --repeat runs),
              files/s, and peak RSS of the upload process (memory must stay flat in the number of files).
  put-large   one large file (default 2 GiB) through the S3 client to the local SeaweedFS (scripts/s3.sh):
              SHA-256 per part, 16 MiB parts, streamed from disk. MiB/s and peak RSS (must not grow with
              the file: nothing reads a whole file into memory).

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


def put_large(bin_dir, mib, repeat):
    """Uploads one mib-MiB file to the local S3 server; returns a table row."""
    path = os.path.join(OUT, f"large-{mib}m.bin")
    if not os.path.exists(path) or os.path.getsize(path) != mib << 20:
        block = os.urandom(1 << 20)
        with open(path, "wb") as f:
            for i in range(mib):
                f.write(block[i % 251:] + block[: i % 251])
    s3 = subprocess.check_output([os.path.join(ROOT, "scripts/s3.sh"), "start", os.path.join(OUT, "s3")], text=True)
    env_s3 = dict(line.split(" ", 1)[1].split("=", 1) for line in s3.strip().splitlines())
    env_s3 = {k: v.strip("'") for k, v in env_s3.items()}
    config = os.path.join(OUT, "put-large.json")
    with open(config, "w") as f:
        json.dump({"project": {"name": "bench"}, "source": {"path": OUT},
                   "s3": {"bucket": "fleet-test", "endpoint": env_s3["FLEET_TEST_S3_ENDPOINT"]},
                   "upload": {"multipart_threshold_mb": 64, "part_size_mb": 16}}, f)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_ACCESS_KEY_ID": env_s3["FLEET_TEST_S3_ACCESS_KEY_ID"],
           "AWS_SECRET_ACCESS_KEY": env_s3["FLEET_TEST_S3_SECRET_ACCESS_KEY"]}
    walls, rss = [], []
    for i in range(repeat):
        argv = [os.path.join(bin_dir, "fleet-bench"), "put", "--config", config, "--file", path,
                "--key", f"bench/large-{i}.bin"]
        wall, peak, out = run_measured(argv, env)
        result = json.loads(out)
        assert result["bytes"] == mib << 20, result
        walls.append(wall)
        rss.append(peak)
    subprocess.run([os.path.join(ROOT, "scripts/s3.sh"), "stop", os.path.join(OUT, "s3")], check=False)
    med = statistics.median(walls)
    return ("put-large", f"{mib:,} MiB", med, f"{mib / med:,.0f} MiB/s", max(rss) / 1024)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="30000,300000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="scan-plan,put-large")
    parser.add_argument("--large-mib", type=int, default=2048)
    args = parser.parse_args()
    only = set(args.only.split(","))
    os.makedirs(OUT, exist_ok=True)

    for product in ("upload", "fleet-bench"):
        sh("swift", "build", "-c", "release", "--product", product, stdout=subprocess.DEVNULL)
    bin_dir = subprocess.check_output(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, text=True).strip()
    pg = subprocess.check_output([os.path.join(ROOT, "scripts/pg.sh"), "start", os.path.join(OUT, "pg")], text=True)
    url = pg.strip().split("=", 1)[1].strip("'")

    rows = []
    for n in [int(s) for s in args.sizes.split(",")] if "scan-plan" in only else []:
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
        rows.append(("scan-plan", f"{n:,} files", med, f"{n / med:,.0f} files/s", max(rss) / 1024))

    if "put-large" in only:
        rows.append(put_large(bin_dir, args.large_mib, args.repeat))

    print()
    print(f"{'benchmark':<12} {'input':>14} {'wall s':>8} {'rate':>16} {'peak RSS MiB':>13}")
    print(f"{'-' * 12} {'-' * 14} {'-' * 8} {'-' * 16} {'-' * 13}")
    for name, size, wall, rate, mib in rows:
        print(f"{name:<12} {size:>14} {wall:>8.2f} {rate:>16} {mib:>13.1f}")
    print(f"\n(median of {args.repeat} runs; {os.cpu_count()} cores; release build)")
    subprocess.run([os.path.join(ROOT, "scripts/pg.sh"), "stop", os.path.join(OUT, "pg")], check=False)


if __name__ == "__main__":
    main()
