#!/usr/bin/env python3
"""Lists a bucket prefix with boto3 — a different S3 client than fleet-upload's — and prints, as JSON,
every object's key, size and SHA-256 of its bytes as read back.

    verify-bucket.py ENDPOINT BUCKET PREFIX   (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
"""
import hashlib
import json
import os
import sys

import boto3
from botocore.config import Config

endpoint, bucket, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"),
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))
objects = {}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for item in page.get("Contents", []):
        digest = hashlib.sha256()
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"]
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
        objects[item["Key"]] = {"size": item["Size"], "sha256": digest.hexdigest()}
json.dump(objects, sys.stdout)
