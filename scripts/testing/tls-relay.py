#!/usr/bin/env python3
"""An HTTPS front for the test S3 server, with a certificate from a throwaway private CA.

    tls-relay.py DIRECTORY TARGET_PORT

Makes a certificate authority (DIRECTORY/ca.pem) and a certificate for 127.0.0.1 and localhost signed by it
(openssl), listens on a free port of 127.0.0.1 with TLS, prints "port N", and relays every connection byte for
byte to 127.0.0.1:TARGET_PORT (the signed Host header arrives unchanged, so signatures still match). A client
that trusts the system's CAs refuses it; one given DIRECTORY/ca.pem connects. It exits when stdin closes, so it
never outlives the test that started it.
"""
import os
import select
import socket
import ssl
import subprocess
import sys
import threading


def make_certificates(directory):
    def run(*arguments):
        subprocess.run(["openssl", *arguments], cwd=directory, check=True, capture_output=True)

    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=fleet test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *curve, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(directory, "server.ext"), "w") as extensions:
        extensions.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                         "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "server.ext")


def relay(client, context, target_port):
    try:
        secure = context.wrap_socket(client, server_side=True)
    except (ssl.SSLError, OSError):
        client.close()  # a client that does not trust the CA hangs up during the handshake
        return
    try:
        upstream = socket.create_connection(("127.0.0.1", target_port))
    except OSError:
        secure.close()
        return
    peers = {secure: upstream, upstream: secure}
    try:
        while True:
            readable = [secure] if secure.pending() else select.select(list(peers), [], [], 120)[0]
            if not readable:
                break
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                peers[source].sendall(data)
    except (ssl.SSLError, OSError):
        pass
    finally:
        secure.close()
        upstream.close()


def main():
    directory, target_port = sys.argv[1], int(sys.argv[2])
    make_certificates(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(directory, "server.pem"), os.path.join(directory, "server.key"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)

    def accept():
        while True:
            client, _ = listener.accept()
            threading.Thread(target=relay, args=(client, context, target_port), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print(f"port {listener.getsockname()[1]}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
