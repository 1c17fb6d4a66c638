#!/usr/bin/env python3
"""The naive Python uploader bench/compare.py measures, and its bucket lister.

    bench/boto3_upload.py upload DIR --bucket B [--prefix P] [--workers 15]
    bench/boto3_upload.py list --bucket B [--prefix P]
    bench/boto3_upload.py delete --bucket B [--prefix P]

Both read the endpoint from AWS_ENDPOINT_URL and the key pair from AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY. `upload` walks DIR and calls `s3.upload_file` once per file from a
ThreadPoolExecutor (boto3's managed transfer: multipart above 8 MiB), keys PREFIX/relative/path, and
prints {"files": N, "bytes": B, "errors": E} on stdout; exit 1 if any file failed. `list` counts the
objects under PREFIX/ with the list_objects_v2 paginator and prints {"objects": N, "bytes": B};
`delete` deletes them (DeleteObjects, 1,000 keys a request) and prints the same counts.
"""
import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed

import boto3
from botocore.config import Config


def client(pool):
    return boto3.session.Session().client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(max_pool_connections=pool, retries={"max_attempts": 5, "mode": "standard"},
                      s3={"addressing_style": "path"}),
    )


def key_for(prefix, rel):
    rel = rel.replace(os.sep, "/")
    return f"{prefix.strip('/')}/{rel}" if prefix.strip("/") else rel


def upload(args):
    s3 = client(args.workers * 2)
    files = []
    for dirpath, dirnames, filenames in os.walk(args.dir):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            files.append((path, key_for(args.prefix, os.path.relpath(path, args.dir))))
    total, errors = 0, 0
    with ThreadPoolExecutor(args.workers) as pool:
        futures = {pool.submit(s3.upload_file, path, args.bucket, key): path for path, key in files}
        for future in as_completed(futures):
            try:
                future.result()
                total += os.path.getsize(futures[future])
            except Exception as e:  # noqa: BLE001 - report and go on, like a real sync tool
                errors += 1
                print(f"boto3_upload: {futures[future]}: {e}", file=sys.stderr)
    print(json.dumps({"files": len(files) - errors, "bytes": total, "errors": errors}))
    return 1 if errors else 0


def list_prefix(args, delete=False):
    s3 = client(4)
    prefix = args.prefix.strip("/") + "/" if args.prefix.strip("/") else ""
    objects, size, failed = 0, 0, 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix=prefix):
        contents = page.get("Contents", [])
        for obj in contents:
            objects += 1
            size += obj["Size"]
        if delete and contents:
            r = s3.delete_objects(Bucket=args.bucket, Delete={"Objects": [{"Key": o["Key"]} for o in contents],
                                                               "Quiet": True})
            failed += len(r.get("Errors", []))
    print(json.dumps({"objects": objects, "bytes": size, **({"delete_errors": failed} if delete else {})}))
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upload")
    up.add_argument("dir")
    up.add_argument("--workers", type=int, default=15)
    ls = sub.add_parser("list")
    rm = sub.add_parser("delete")
    for p in (up, ls, rm):
        p.add_argument("--bucket", required=True)
        p.add_argument("--prefix", default="")
    args = parser.parse_args()
    if args.command == "upload":
        return upload(args)
    return list_prefix(args, delete=args.command == "delete")


if __name__ == "__main__":
    sys.exit(main())
