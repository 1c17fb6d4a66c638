#!/usr/bin/env python3
"""Generates a sample data set: a tree of small files shaped like a field recording campaign.

    scripts/sample-data.py DIR [--files N] [--seed S]

Files are .wav/.jpg/.mp4/.json with deterministic contents (a few KiB each), spread over
site/day/sensor directories; a few names carry spaces, '+', '%' and unicode on purpose. Running it
again with the same arguments leaves the same tree (existing files are kept, missing ones added).
"""
import argparse
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("dir")
parser.add_argument("--files", type=int, default=500)
parser.add_argument("--seed", type=int, default=7)
parser.add_argument("--size", type=int, default=4096, help="mean file size in bytes")
args = parser.parse_args()

rng = random.Random(args.seed)
exts = ["wav", "wav", "jpg", "mp4", "json"]
odd = ["take 1", "a+b", "100%", "café", "日本"]
per_dir = 200
made = 0
for i in range(args.files):
    site = f"site-{i // (per_dir * 20):02d}"
    day = f"2026-11-{(i // per_dir) % 20 + 1:02d}"
    sensor = f"mic-{(i // 50) % 4}"
    ext = exts[i % len(exts)]
    stem = f"{odd[i % len(odd)]}-{i:06d}" if i % 97 == 0 else f"rec-{i:06d}"
    d = os.path.join(args.dir, site, day, sensor)
    path = os.path.join(d, f"{stem}.{ext}")
    if os.path.exists(path):
        continue
    os.makedirs(d, exist_ok=True)
    size = max(1, int(rng.expovariate(1 / args.size)))
    with open(path, "wb") as f:
        f.write(rng.randbytes(size))
    made += 1
print(f"{args.dir}: {args.files} files ({made} new)")
