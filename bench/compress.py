#!/usr/bin/env python3
"""How well and how fast `compress` (zstd) shrinks text logs: ratio, MiB/s and peak memory per level.

    bench/compress.py [--mib 256] [--levels 1,3,9] [--no-build]

Generates one log of `--mib` MiB (bench/out/compress-<mib>.log, generated once, reused): ROS console lines
(`[INFO] [1733500000.123456789] [/planning/node]: ...`), syslog lines and CSV samples, with the repetition
real logs have (the same nodes and messages, counters and timestamps moving on). Then, for each level,
`fleet-bench compress` (release build) makes the compressed copy an upload sends (the original read once and
hashed, the copy in an unnamed temporary file) and the script prints the ratio (original ÷ compressed), the
share sent, MiB/s of original per second, and the process's peak RSS (it stays flat however large the file).
"""
import argparse
import json
import os
import random
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")

NODES = ["/planning/node", "/perception/lidar_front", "/control/mpc", "/localization/ekf", "/can_bridge"]
MESSAGES = ["received trajectory with %d points", "publishing %d obstacles", "cycle took %d ms",
            "transform lookup from base_link to map succeeded", "heartbeat ok (seq %d)", "buffer size %d"]


def make_log(mib):
    path = os.path.join(OUT, f"compress-{mib}.log")
    if os.path.exists(path) and os.path.getsize(path) >= mib << 20:
        return path
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(7)
    now = 1_733_500_000.0
    sequence = 0
    written = 0
    with open(path + ".part", "w") as out:
        while written < mib << 20:
            lines = []
            for _ in range(10_000):
                now += rng.randrange(20_000) / 1_000_000
                sequence += 1
                value = rng.randrange(900)
                seconds = int(now)
                nanos = int((now - seconds) * 1_000_000_000)
                message = rng.choice(MESSAGES).replace("%d", str(value))
                kind = rng.randrange(10)
                if kind < 6:
                    level = "WARN" if rng.randrange(25) == 0 else "INFO"
                    lines.append(f"[{level}] [{seconds}.{nanos:09d}] [{rng.choice(NODES)}]: {message}\n")
                elif kind < 9:
                    host = "truck-7" if sequence % 2 else "ros-master"
                    lines.append(f"Dec  6 12:{(seconds // 60) % 60:02d}:{seconds % 60:02d} {host} kernel: "
                                 f"[{seconds % 100000}.{nanos // 1000}] {message}\n")
                else:
                    lines.append(f"{seconds}.{nanos // 1_000_000},{sequence},{value},{value / 7.0}\n")
            chunk = "".join(lines)
            out.write(chunk)
            written += len(chunk)
    os.rename(path + ".part", path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--levels", default="1,3,9")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.check_call(["swift", "build", "-c", "release", "--product", "fleet-bench"], cwd=ROOT,
                              stdout=subprocess.DEVNULL)
    bin_dir = subprocess.check_output(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT,
                                      text=True).strip()
    log = make_log(args.mib)
    print(f"{os.path.getsize(log) / (1 << 20):.0f} MiB of generated logs ({log})\n")
    print("| level | ratio | sent | MiB/s | peak RSS |")
    print("|---|---|---|---|---|")
    for level in [int(x) for x in args.levels.split(",")]:
        child = subprocess.Popen(
            [os.path.join(bin_dir, "fleet-bench"), "compress", "--file", log, "--level", str(level)],
            stdout=subprocess.PIPE, text=True)
        output = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise SystemExit(f"fleet-bench compress exited {child.returncode}")
        result = json.loads(output)
        rss = f"{usage.ru_maxrss / 1024:.0f} MiB"
        ratio = result["bytes"] / result["sent"]
        speed = result["bytes"] / (1 << 20) / result["seconds"]
        print(f"| {level} | {ratio:.1f}× | {100 / ratio:.1f} % | {speed:.0f} | {rss} |")
    print(f"\n({os.cpu_count()} cores; release build; one thread compresses, SHA-256 of the original included)")


if __name__ == "__main__":
    main()
