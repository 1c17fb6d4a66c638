#!/usr/bin/env python3
"""Several processes on one session: `upload --join` against one `upload` alone, on the same tree and server.

    bench/join.py [--files 20000] [--workers 4] [--joiners 2] [--repeat 1] [--no-build]

Uses compare.py's tree (bench/out/compare-<files>/small) and servers (fresh SeaweedFS and PostgreSQL on
127.0.0.1). Each row uploads the whole tree to a fresh prefix:

  alone      one `upload` with --workers W
  joined     one `upload` with --workers W, plus --joiners processes `upload --join SESSION --workers W`
             started as soon as the session is open
  one, wide  one `upload` with W × (1 + joiners) workers: the same threads in one process

Wall time runs from the opener's start to the last process's exit; CPU is every process's user+sys. The
speed-up is alone ÷ row. On one 2-core machine the joined processes share the cores with SeaweedFS and
PostgreSQL, so this measures the coordination (claims, settling, closing) more than the gain other
machines would bring; "one, wide" shows what more threads alone give here.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the tree, the servers and the build are compare.py's)


def psql(db, sql):
    return subprocess.check_output(["psql", db, "-Atc", sql], text=True).strip()


def run(tool, tree, s3, db, name, workers, joiners):
    config = os.path.join(compare.OUT, f"join-{name}.json")
    with open(config, "w") as f:
        json.dump({"project": {"name": f"bench-join-{name}"},
                   "s3": {"bucket": "cmp-join", "prefix": name, "endpoint": s3["FLEET_TEST_S3_ENDPOINT"],
                          "region": "us-east-1"},
                   "source": {"path": tree}, "upload": {"workers": workers}}, f)
    env = {**compare.client_env(s3), "DATABASE_URL": db}
    logs = [open(os.path.join(compare.LOGS, f"join-{name}-{i}.err"), "wb") for i in range(1 + joiners)]
    start = time.perf_counter()
    procs = [subprocess.Popen([tool, "--config", config, "--json"], env=env, stdout=subprocess.PIPE,
                              stderr=logs[0], stdin=subprocess.DEVNULL)]
    if joiners:
        session = ""
        while not session:
            session = psql(db, f"SELECT s.id FROM sync_sessions s JOIN projects p ON p.id = s.project_id "
                               f"WHERE p.name = 'bench-join-{name}' AND s.status = 'running'")
            if not session:
                if procs[0].poll() is not None:
                    sys.exit(f"join: the opener of {name} ended before its session was seen")
                time.sleep(0.01)
        for i in range(joiners):
            procs.append(subprocess.Popen([tool, "--join", session, "--workers", str(workers), "--json"], env=env,
                                          stdout=subprocess.PIPE, stderr=logs[i + 1], stdin=subprocess.DEVNULL))
    cpu = 0.0
    for proc in procs:
        proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu += usage.ru_utime + usage.ru_stime
        if proc.returncode != 0:
            sys.exit(f"join: {name}: a process exited {proc.returncode}; see {compare.LOGS}/join-{name}-*.err")
    wall = time.perf_counter() - start
    for log in logs:
        log.close()
    uploaded, once = psql(db, f"SELECT count(*) FILTER (WHERE f.status = 'uploaded'), "
                              f"count(*) FILTER (WHERE f.attempts <> 1) FROM file_uploads f "
                              f"JOIN projects p ON p.id = f.project_id WHERE p.name = 'bench-join-{name}'").split("|")
    # Each process's share: the rows it claimed and uploaded (claimed_by is hostname:pid).
    shares = psql(db, f"SELECT count(*) FROM file_uploads f JOIN projects p ON p.id = f.project_id "
                      f"WHERE p.name = 'bench-join-{name}' AND f.status = 'uploaded' "
                      f"GROUP BY f.claimed_by ORDER BY min(f.id)").split()
    return {"wall": wall, "cpu": cpu, "uploaded": int(uploaded), "retried": int(once),
            "shares": [int(n) for n in shares]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--joiners", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-build", action="store_true", help="use the release build as it is")
    args = parser.parse_args()

    os.makedirs(compare.LOGS, exist_ok=True)
    # Only the small files are used: keep whatever large files compare.py generated beside them.
    large, large_mib = 0, 1
    marker = os.path.join(compare.OUT, f"compare-{args.files}", ".large-complete")
    if os.path.exists(marker):
        with open(marker) as f:
            count, mib = f.read().split(" ")[0].split("x")
            large, large_mib = int(count), int(mib)
    tree_root, phases = compare.make_tree(args.files, large, large_mib)
    tree = os.path.join(tree_root, "small")
    if args.no_build:
        bin_dir = subprocess.check_output(["swift", "build", "-c", "release", "--show-bin-path"], cwd=compare.ROOT,
                                          text=True).strip()
        tool = os.path.join(bin_dir, "upload")
    else:
        tool, error = compare.build_fleet(2, 30)
        if error:
            sys.exit(f"join: {error}")
    s3, db = compare.start_servers(["join"], True)
    rows = []
    try:
        w, j = args.workers, args.joiners
        plans = [("alone", w, 0), ("joined", w, j), ("one, wide", w * (1 + j), 0)]
        for repeat in range(args.repeat):
            for label, workers, joiners in plans:
                name = f"{label.replace(', ', '-')}-{repeat}"
                compare.note(f"{label}: {1 + joiners} process(es) × {workers} workers, prefix {name}")
                rows.append((label, workers, joiners, run(tool, tree, s3, db, name, workers, joiners)))
    finally:
        compare.stop_servers()

    files = phases["small"][0]
    alone = min(r["wall"] for label, _, _, r in rows if label == "alone")
    print(f"\n{files:,} files of 1–8 KiB, SeaweedFS and PostgreSQL on this machine ({os.cpu_count()} cores)\n")
    print(f"| {'run':<10} | processes × workers | wall s | files/s | CPU s (all processes) | speed-up | "
          f"files per process | attempted twice |")
    print("|---|---|---|---|---|---|---|---|")
    for label, workers, joiners, r in rows:
        print(f"| {label:<10} | {1 + joiners} × {workers} | {r['wall']:.2f} | {files / r['wall']:,.0f} | "
              f"{r['cpu']:.2f} | {alone / r['wall']:.2f} | {' + '.join(f'{s:,}' for s in r['shares'])} | "
              f"{r['retried']} |")
        if r["uploaded"] != files:
            print(f"  !! {label}: {r['uploaded']:,} of {files:,} files recorded uploaded")


if __name__ == "__main__":
    main()
