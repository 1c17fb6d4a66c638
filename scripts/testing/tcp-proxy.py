#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that a test can cut and restore, to stage a server outage.

    tcp-proxy.py TARGET_PORT

Prints "port N" once listening on a free port N, then reads commands from stdin, one per line, and answers
each with "ok":
    down   stop listening (new connections are refused) and drop every open connection
    up     listen on the same port again
    sent   answer "ok N": the bytes forwarded from clients to the server so far
It exits when stdin closes, so it never outlives the test that started it.
"""
import socket
import sys
import threading

target = ("127.0.0.1", int(sys.argv[1]))
lock = threading.Lock()
connections = set()
listener = None
port = 0
sent = 0


def pipe(source, sink, counted=False):
    global sent
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
            if counted:
                with lock:
                    sent += len(data)
    except OSError:
        pass
    for s in (source, sink):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


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
        threading.Thread(target=pipe, args=(client, upstream, True), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()


def up():
    global listener, port
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    port = sock.getsockname()[1]
    listener = sock
    threading.Thread(target=serve, args=(sock,), daemon=True).start()


def down():
    global listener
    if listener is not None:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        listener = None
    with lock:
        for s in connections:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        connections.clear()


up()
print(f"port {port}", flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "down":
        down()
    elif command == "up":
        up()
    elif command == "sent":
        with lock:
            print(f"ok {sent}", flush=True)
        continue
    else:
        print(f"unknown command {command!r}", flush=True)
        continue
    print("ok", flush=True)
