#!/usr/bin/env python3
"""Whether `upload.max_bandwidth` holds: the rate the uploads of one `upload` run send, second by second.

    bench/bandwidth.py [--rate 2M] [--seconds 70] [--workers 64] [--no-build] [--keep]

Generates a tree (bench/out/bandwidth-<rate>/: files of 32 KiB to 4 MiB, enough bytes for `--seconds` at the
cap; generated once, reused), starts a private PostgreSQL and SeaweedFS on 127.0.0.1, and runs `upload` (release
build) with `upload.max_bandwidth` and `upload.workers`. The client reaches S3 through a counting relay in this script
(127.0.0.1, no delay; at a few MiB/s it is never the limit), which samples every second the bytes sent toward
the server (the request bodies plus their headers, a few percent at most), and prints one table: the cap, the mean rate over the middle
minute (from 5 s after the start), the slowest and fastest 10-second windows in it, and the run's own
bytes/duration. The target: the mean within ±10 % of the cap with 64 transfers or more in flight.
"""
import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def rate_bytes(text):
    unit = UNITS.get(text[-1].lower(), 1)
    return int(float(text[:-1] if unit > 1 else text) * unit)


def make_tree(rate, seconds):
    total = rate * (seconds + 15)
    tree = os.path.join(OUT, f"bandwidth-{rate}-{seconds}")
    marker = tree + ".complete"
    if os.path.exists(marker):
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(tree)
    sizes = [32 << 10, 96 << 10, 300 << 10, 1 << 20, 4 << 20]
    written, i = 0, 0
    while written < total:
        size = sizes[i % len(sizes)]
        with open(os.path.join(tree, f"f-{i:05d}.bin"), "wb") as f:
            f.write(os.urandom(size))
        written += size
        i += 1
    open(marker, "w").close()
    return tree


def start(script, directory):
    subprocess.run([os.path.join(ROOT, "scripts", script), "stop", directory], stdout=subprocess.DEVNULL)
    out = subprocess.check_output([os.path.join(ROOT, "scripts", script), "start", directory], text=True)
    values = {}
    for line in out.strip().splitlines():
        key, value = line.removeprefix("export ").split("=", 1)
        values[key] = value.strip("'")
    return values


class CountingRelay:
    """Relays 127.0.0.1:<port> to the S3 server and counts the bytes clients send toward it."""

    def __init__(self, target_port):
        self.target_port, self.sent, self.port = target_port, 0, None
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready):
        loop = asyncio.new_event_loop()

        async def pipe(reader, writer, count):
            try:
                while data := await reader.read(65536):
                    if count:
                        self.sent += len(data)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        async def handle(client_reader, client_writer):
            try:
                server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                client_writer.close()
                return
            await asyncio.gather(pipe(client_reader, server_writer, True), pipe(server_reader, client_writer, False))

        server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", default="2M")
    parser.add_argument("--seconds", type=int, default=70)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the servers' directories under bench/out")
    args = parser.parse_args()
    rate = rate_bytes(args.rate)

    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "upload"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    binary = os.path.join(ROOT, ".build", "release", "upload")
    tree = make_tree(rate, args.seconds)
    s3_dir, pg_dir = os.path.join(OUT, "s3-bandwidth"), os.path.join(OUT, "pg-bandwidth")
    s3 = start("s3.sh", s3_dir)
    db = start("pg.sh", pg_dir)["FLEET_TEST_DATABASE_URL"]
    try:
        config = os.path.join(OUT, "bandwidth.json")
        relay = CountingRelay(int(s3["FLEET_TEST_S3_ENDPOINT"].rsplit(":", 1)[1]))
        with open(config, "w") as f:
            json.dump({"project": {"name": "bench-bandwidth"},
                       "s3": {"bucket": "fleet-test", "prefix": f"bw-{int(time.time())}",
                              "endpoint": f"http://127.0.0.1:{relay.port}", "region": "us-east-1"},
                       "source": {"path": tree},
                       "upload": {"workers": args.workers, "max_bandwidth": args.rate}}, f)
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "DATABASE_URL": db,
               "AWS_ACCESS_KEY_ID": s3["FLEET_TEST_S3_ACCESS_KEY_ID"],
               "AWS_SECRET_ACCESS_KEY": s3["FLEET_TEST_S3_SECRET_ACCESS_KEY"],
               "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}
        proc = subprocess.Popen([binary, "--config", config, "--json"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        started = time.monotonic()
        samples = []  # (seconds since start, bytes sent toward S3)
        while proc.poll() is None and time.monotonic() - started < args.seconds + 10:
            samples.append((time.monotonic() - started, relay.sent))
            time.sleep(1)
        if proc.poll() is None:
            proc.terminate()
        out, _ = proc.communicate()
    finally:
        if not args.keep:
            subprocess.run([os.path.join(ROOT, "scripts/s3.sh"), "stop", s3_dir], stdout=subprocess.DEVNULL)
            subprocess.run([os.path.join(ROOT, "scripts/pg.sh"), "stop", pg_dir], stdout=subprocess.DEVNULL)

    window = [s for s in samples if 5 <= s[0] <= 65]
    if len(window) < 20:
        sys.exit(f"bandwidth: only {len(window)} samples in the middle minute; raise --seconds")
    mean = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
    tens = []
    for i in range(len(window)):
        j = next((k for k in range(i, len(window)) if window[k][0] - window[i][0] >= 10), None)
        if j is not None:
            tens.append((window[j][1] - window[i][1]) / (window[j][0] - window[i][0]))
    try:
        summary = json.loads(out)
        run_rate = summary["totals"]["uploaded_bytes"] / summary["duration_seconds"]
    except (ValueError, KeyError, ZeroDivisionError):
        run_rate = float("nan")
    mib = 1 << 20
    print(f"{'cap':>8} {'workers':>7} {'mean MiB/s (5-65 s)':>19} {'vs cap':>7} {'slowest 10 s':>12} "
          f"{'fastest 10 s':>12} {'run bytes/duration':>18}")
    print(f"{args.rate:>8} {args.workers:>7} {mean / mib:>19.3f} {100 * (mean / rate - 1):>+6.1f}% "
          f"{min(tens) / mib:>12.3f} {max(tens) / mib:>12.3f} {run_rate / mib:>18.3f}")


if __name__ == "__main__":
    main()
