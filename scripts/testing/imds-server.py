#!/usr/bin/env python3
"""A stand-in for the EC2 instance metadata service (IMDSv2), for tests on 127.0.0.1.

    imds-server.py PORT [--no-role]

PUT /latest/api/token gives a session token; the credential paths answer only with that token
(X-aws-ec2-metadata-token), as IMDSv2 requires. With --no-role the role list is 404, as on an instance
without an instance profile. Prints "ready" once listening.
"""
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

TOKEN = "imds-test-token"
ROLE = "fleet-uploader"
NO_ROLE = "--no-role" in sys.argv


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self.reply(200, TOKEN.encode())
        else:
            self.reply(400)

    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            return self.reply(401)
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path == base:
            return self.reply(404) if NO_ROLE else self.reply(200, (ROLE + "\n").encode())
        if self.path == base + ROLE and not NO_ROLE:
            document = {
                "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "ASIAIMDSTESTKEY00001",
                "SecretAccessKey": "imds-secret-key-0000000000000000000000000", "Token": "imds-session-token",
                "Expiration": "2030-01-01T00:00:00Z", "LastUpdated": "2026-01-01T00:00:00Z",
            }
            return self.reply(200, json.dumps(document).encode(), "application/json")
        self.reply(404)


def exit_when_parent_goes():
    """The test holds our stdin open; when it closes (the test ended or died), stop."""
    sys.stdin.read()
    os._exit(0)


# A parent running on a Dispatch thread may hand down a blocked SIGTERM.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
threading.Thread(target=exit_when_parent_goes, daemon=True).start()
server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("ready", flush=True)
server.serve_forever()
