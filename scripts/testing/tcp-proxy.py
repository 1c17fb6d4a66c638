#!/usr/bin/env python3
"""A proxy on 127.0.0.1 in front of the test S3 server that a test can break on purpose.

    tcp-proxy.py TARGET_PORT [REQUEST_LOG]

Prints "port N" once listening on a free port N, then reads commands from stdin, one per line, and answers
each with "ok":
    down              stop listening (new connections are refused) and drop every open connection
    up                listen on the same port again
    sent              answer "ok N": the bytes forwarded from clients to the server so far
    flap MIN MAX      stay up, then go down and up by turns, each state lasting a random MIN…MAX seconds
                      (WiFi that drops)
    latency MS        hold every request MS milliseconds before forwarding it
    rate BYTES        forward request bodies at most BYTES per second on each connection (a slow uplink;
                      0: no limit)
    reset FRACTION    reset (RST) that fraction of requests with a body halfway through the body
    errors FRACTION CODE [METHOD]
                      answer that fraction of requests (of that METHOD only, when given) itself with CODE
                      (503: S3's SlowDown, 500: InternalError) and close the connection; the server never
                      sees them
    lose FRACTION KIND
                      for that fraction of requests of KIND (put: PutObject, a PUT without uploadId=;
                      complete: CompleteMultipartUpload, a POST with uploadId=), forward the request whole,
                      let the server handle and answer it, then close the connection instead of relaying
                      the answer: the request took effect, the client cannot know (each KIND keeps its own
                      fraction: lose both by giving the command once for each)
    refuse-conditional
                      answer every request carrying If-None-Match or If-Match itself with 501 NotImplemented
                      (a store without conditional writes); the server never sees them
    no-such-upload N  forward the next N CompleteMultipartUpload requests whole, let the server handle them,
                      and answer the client 404 NoSuchUpload instead (a store that no longer knows an upload
                      it completed)
    clear             no faults: stop flapping, be up, no latency, resets, errors or lost answers
    faults            answer "ok R E D L": the requests reset, answered with errors, the times it went
                      down (with connections dropped), and the answers kept from the client so far
It exits when stdin closes, so it never outlives the test that started it.

Requests are parsed as HTTP/1.1 from the client (head, then Content-Length bytes of body; the uploader
never pipelines), so faults hit whole requests. A connection that does not start like an HTTP request (the
PostgreSQL protocol) is forwarded byte for byte; only down and up apply to it. With REQUEST_LOG, every request forwarded whole to the
server is appended there as "unix-time METHOD TARGET", the time being when it started to go to the server,
which lets a test see whether an object was sent again after the ledger recorded it.
"""
import random
import socket
import struct
import sys
import threading
import time

target = ("127.0.0.1", int(sys.argv[1]))
request_log = open(sys.argv[2], "a", buffering=1) if len(sys.argv) > 2 else None
lock = threading.Lock()
switch = threading.RLock()  # up and down, from the commands and the flapping thread
connections = set()
listener = None
port = 0
sent = 0
latency = 0.0
body_rate = 0  # bytes per second per connection, 0: unlimited
reset_fraction = 0.0
error_fraction, error_code, error_method = 0.0, 503, None
resets = errors = drops = 0
lose_fractions = {}  # request kind → fraction of answers the server gave that the client never sees
no_such_upload_left = 0  # Complete requests whose answer becomes 404 NoSuchUpload
refuse_conditional = False  # 501 NotImplemented for requests with If-None-Match or If-Match
lost = 0
flapping = None  # the Event that stops the flapping thread
rng = random.Random()

ERROR_BODIES = {
    503: ("Service Unavailable", "SlowDown", "Please reduce your request rate."),
    500: ("Internal Server Error", "InternalError", "We encountered an internal error. Please try again."),
    501: ("Not Implemented", "NotImplemented", "A header you provided implies functionality that is not implemented."),
}


def close(*socks, hard=False):
    for s in socks:
        try:
            if hard:  # RST instead of FIN: the peer sees "connection reset by peer"
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass
    with lock:
        connections.difference_update(socks)


def count(n):
    global sent
    with lock:
        sent += n


NO_SUCH_UPLOAD = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchUpload</Code>'
                  b"<Message>The specified multipart upload does not exist. The upload ID may be invalid, or the "
                  b"upload may have been aborted or completed.</Message><RequestId>fault-proxy</RequestId></Error>")


def kind_of(method, target_path):
    """put: a PutObject or UploadPart is not one (PUT without uploadId=); complete: CompleteMultipartUpload."""
    if method == b"PUT" and b"uploadId=" not in target_path:
        return "put"
    if method == b"POST" and b"uploadId=" in target_path and b"partNumber=" not in target_path:
        return "complete"
    return None


def answer_fault(method, target_path):
    """The fault for a request's answer, decided before it goes to the server: None, "lose" or "no-such-upload"."""
    global no_such_upload_left
    kind = kind_of(method, target_path)
    with lock:
        if kind == "complete" and no_such_upload_left > 0:
            no_such_upload_left -= 1
            return "no-such-upload"
        if kind is not None and rng.random() < lose_fractions.get(kind, 0.0):
            return "lose"
    return None


def requests(client, upstream, answer):
    """Client to server, a request at a time, with the faults applied."""
    global resets, errors, lost
    buffer = b""
    try:
        buffer = client.recv(65536)
        if buffer and not buffer[:1].isupper():
            raw(client, upstream, buffer)  # not HTTP (PostgreSQL's protocol starts with a length)
            return
        while True:
            while b"\r\n\r\n" not in buffer:
                data = client.recv(65536)
                if not data:
                    raise EOFError
                buffer += data
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            head += b"\r\n\r\n"
            lines = head.split(b"\r\n")
            method, target_path = (lines[0].split(b" ") + [b"", b""])[:2]
            length, expects, conditional = 0, False, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or 0)
                elif name.strip().lower() == b"expect":
                    expects = b"100-continue" in value.lower()
                elif name.strip().lower() in (b"if-none-match", b"if-match"):
                    conditional = True
            with lock:
                wait, reset_p, error_p, code = latency, reset_fraction, error_fraction, error_code
                if error_method is not None and method.decode() != error_method:
                    error_p = 0.0
                if conditional and refuse_conditional:
                    error_p, code = 1.0, 501
            if wait:
                time.sleep(wait)
            if error_p and rng.random() < error_p:
                if not expects:  # read the body the client sends, so it sees the answer, not a broken pipe
                    remaining = length - len(buffer)
                    while remaining > 0:
                        data = client.recv(min(65536, remaining))
                        if not data:
                            break
                        remaining -= len(data)
                reason, s3code, message = ERROR_BODIES.get(code, ERROR_BODIES[503])
                body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{s3code}</Code>'
                        f"<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>").encode()
                client.sendall(f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/xml\r\n"
                               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
                with lock:
                    errors += 1
                raise EOFError
            fault = answer_fault(method, target_path)
            if fault is not None:
                answer["swallow"] = True  # before the server can answer
            cut = length // 2 if length > 1 and reset_p and rng.random() < reset_p else None
            started = time.time()  # before the server can have seen it, so before any answer to it
            upstream.sendall(head)
            count(len(head))
            remaining = length
            while remaining > 0:
                if not buffer:
                    buffer = client.recv(65536)
                    if not buffer:
                        raise EOFError
                chunk, buffer = buffer[:remaining], buffer[remaining:]
                if cut is not None and length - remaining + len(chunk) >= cut:
                    chunk = chunk[:cut - (length - remaining)]
                    upstream.sendall(chunk)
                    count(len(chunk))
                    with lock:
                        resets += 1
                    close(client, upstream, hard=True)
                    return
                upstream.sendall(chunk)
                count(len(chunk))
                remaining -= len(chunk)
                if body_rate:
                    time.sleep(len(chunk) / body_rate)
            if request_log is not None:
                request_log.write(f"{started:.6f} {method.decode()} {target_path.decode()}\n")
            if fault is not None:
                # The server handled the request whole; its answer is kept from the client.
                answer["answered"].wait(60)
                time.sleep(0.05)  # the rest of the answer
                with lock:
                    lost += 1
                if fault == "no-such-upload":
                    client.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\n"
                                   + f"Content-Length: {len(NO_SUCH_UPLOAD)}\r\n".encode()
                                   + b"Connection: close\r\n\r\n" + NO_SUCH_UPLOAD)
                break
    except (OSError, EOFError, ValueError):
        pass
    close(client, upstream)


def raw(client, upstream, first):
    """Another protocol: bytes forwarded as they come; only down and up apply."""
    data = first
    try:
        while data:
            upstream.sendall(data)
            count(len(data))
            data = client.recv(65536)
    except OSError:
        pass
    close(client, upstream)


def responses(upstream, client, answer):
    try:
        while True:
            data = upstream.recv(65536)
            if not data:
                break
            if answer["swallow"]:
                answer["answered"].set()
                continue
            client.sendall(data)
    except OSError:
        pass
    close(upstream, client)


def serve(sock):
    while True:
        try:
            client, _ = sock.accept()
        except OSError:
            return  # the listener was closed: down
        try:
            upstream = socket.create_connection(target)
        except OSError:
            client.close()
            continue
        with lock:
            connections.update((client, upstream))
        answer = {"swallow": False, "answered": threading.Event()}
        threading.Thread(target=requests, args=(client, upstream, answer), daemon=True).start()
        threading.Thread(target=responses, args=(upstream, client, answer), daemon=True).start()


def up():
    with switch:
        _up()


def _up():
    global listener, port
    if listener is not None:
        return
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    port = sock.getsockname()[1]
    listener = sock
    threading.Thread(target=serve, args=(sock,), daemon=True).start()


def down():
    with switch:
        _down()


def _down():
    global listener, drops
    if listener is not None:
        drops += 1
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        listener = None
    with lock:
        open_now = list(connections)
    close(*open_now)


def flap(low, high, stop):
    while not stop.wait(rng.uniform(low, high)):
        down()
        if stop.wait(rng.uniform(low, high)):
            break
        up()


def stop_flapping():
    global flapping
    if flapping is not None:
        flapping.set()
        flapping = None


up()
print(f"port {port}", flush=True)
for line in sys.stdin:
    words = line.split()
    command, args = (words[0], words[1:]) if words else ("", [])
    try:
        if command == "down":
            down()
        elif command == "up":
            up()
        elif command == "sent":
            with lock:
                print(f"ok {sent}", flush=True)
            continue
        elif command == "faults":
            with lock:
                print(f"ok {resets} {errors} {drops} {lost}", flush=True)
            continue
        elif command == "lose":
            kind = args[1]
            if kind not in ("put", "complete"):
                raise ValueError(kind)
            with lock:
                lose_fractions[kind] = float(args[0])
        elif command == "refuse-conditional":
            with lock:
                refuse_conditional = True
        elif command == "no-such-upload":
            with lock:
                no_such_upload_left = int(args[0])
        elif command == "flap":
            stop_flapping()
            flapping = threading.Event()
            threading.Thread(target=flap, args=(float(args[0]), float(args[1]), flapping), daemon=True).start()
        elif command == "latency":
            with lock:
                latency = float(args[0]) / 1000
        elif command == "rate":
            with lock:
                body_rate = int(args[0])
        elif command == "reset":
            with lock:
                reset_fraction = float(args[0])
        elif command == "errors":
            with lock:
                error_fraction, error_code = float(args[0]), int(args[1])
                error_method = args[2] if len(args) > 2 else None
        elif command == "clear":
            stop_flapping()
            time.sleep(0.05)
            up()
            with lock:
                latency, reset_fraction, error_fraction, body_rate = 0.0, 0.0, 0.0, 0
                no_such_upload_left, refuse_conditional = 0, False
                lose_fractions.clear()
        else:
            print(f"unknown command {command!r}", flush=True)
            continue
    except (IndexError, ValueError):
        print(f"bad arguments for {command!r}", flush=True)
        continue
    print("ok", flush=True)
