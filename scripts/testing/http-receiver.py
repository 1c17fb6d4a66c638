#!/usr/bin/env python3
"""A small HTTP endpoint for tests on 127.0.0.1: records every request and answers from a script.

    http-receiver.py --log FILE [--port N] [--statuses 500,500,200] [--delays 0,2.5] [--body TEXT]
                     [--retry-after '2|Sun, 06 Nov 1994 08:49:37 GMT|']

Prints the port it listens on (useful with the default --port 0) as its first line on stdout. Each request
is appended to FILE as one JSON line, written and flushed before the answer goes out:
{"method", "path", "headers": {name: value}, "body": text, "status": the status it is answered with,
"at": seconds since the epoch when it arrived}.
The n-th request is answered with the n-th of --statuses after waiting the n-th of --delays seconds, with
the n-th of --retry-after (separated by '|', since HTTP dates hold commas; empty: no header) as its
Retry-After header; the last entry of each list repeats. --body is the response body (default: a short JSON document). Exits when
its stdin closes, so it never outlives the test that started it.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def number_list(text, kind):
    return [kind(item) for item in text.split(",") if item.strip()]


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--log", required=True, help="append each request here as a JSON line")
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--statuses", type=lambda text: number_list(text, int), default=[200])
parser.add_argument("--delays", type=lambda text: number_list(text, float), default=[0.0])
parser.add_argument("--body", default=None)
parser.add_argument("--retry-after", type=lambda text: text.split("|"), default=[""])
options = parser.parse_args()

lock = threading.Lock()
served = 0
log = open(options.log, "a", encoding="utf-8")


def pick(values, index):
    return values[min(index, len(values) - 1)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        global served
        arrived = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with lock:
            index = served
            served += 1
            status = pick(options.statuses, index)
            retry_after = pick(options.retry_after, index).strip()
            record = {
                "method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                "body": body.decode("utf-8", errors="replace"), "status": status, "at": arrived,
            }
            log.write(json.dumps(record) + "\n")
            log.flush()
        time.sleep(pick(options.delays, index))
        reply = (options.body if options.body is not None else json.dumps({"status": status})).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            if retry_after:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            self.wfile.write(reply)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test)

    do_POST = do_PUT = do_GET = handle_any


def exit_when_parent_goes():
    """The test holds our stdin open; when it closes (the test ended or died), stop."""
    sys.stdin.read()
    os._exit(0)


# A parent running on a Dispatch thread may hand down a blocked SIGTERM.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
threading.Thread(target=exit_when_parent_goes, daemon=True).start()
server = ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
