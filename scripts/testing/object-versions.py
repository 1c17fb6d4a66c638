#!/usr/bin/env python3
"""Versioned buckets for tests that count how often an object was written, with boto3.

    object-versions.py ENDPOINT create BUCKET        create BUCKET and enable versioning on it
    object-versions.py ENDPOINT count BUCKET PREFIX  print, as JSON, each key under PREFIX with its number
                                                     of versions (delete markers not counted)

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""
import json
import os
import sys

import boto3
from botocore.config import Config

endpoint, command, bucket = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"),
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))
if command == "create":
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        sys.exit(f"versioning could not be enabled on {bucket}")
elif command == "count":
    counts = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=sys.argv[4]):
        for version in page.get("Versions", []):
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    json.dump(counts, sys.stdout)
else:
    sys.exit(f"unknown command {command}")
