#!/usr/bin/env python3
"""A relay on 127.0.0.1 that makes local servers look far away: a round trip and, optionally, a shared uplink.

    wan_relay.py [--rtt-ms MS] [--rate BYTES_PER_S] TARGET_PORT [TARGET_PORT ...]

Listens on one free port of 127.0.0.1 for each TARGET_PORT (in that order) and prints "ports P1 P2 ..." once
listening. Every connection to Pn is relayed to 127.0.0.1:TARGET_PORTn, byte for byte in both directions, each
direction delayed by MS / 2 milliseconds, so a request and its answer take MS more than they would directly.
With --rate (bytes per second, "8M" or "12.5M" style, powers of 1024 like curl's and rclone's caps), each
direction of the link (to the servers and back) is one queue of that rate shared by every connection to every
target, like a vehicle's uplink: bytes wait for the link, then travel MS / 2.

A new connection costs one round trip more (the handshake): the relay accepts it at once but reads
nothing from it until then. The delay is taken per chunk as read, in arrival order, so bytes keep their order on every connection; a
half-close (EOF) and a close travel the same way, after the bytes before them. A connection holds at most
1 MiB in the relay per direction (like a TCP window): past that the relay stops reading from that side until
the link has carried some of it. It exits when stdin closes or on SIGTERM, so it never outlives the script
that started it.
"""
import argparse
import asyncio
import collections
import os
import signal
import sys

HIGH_WATER = 1 << 20  # bytes a connection may hold in the relay per direction before reading pauses
LOW_WATER = 256 << 10
EOF, CLOSE = object(), object()


class Direction:
    """One direction of the link: a FIFO of (due time, destination side, payload) in due-time order."""

    def __init__(self, loop, delay, rate):
        self.loop, self.delay, self.rate = loop, delay, rate
        self.queue = collections.deque()
        self.link_free = 0.0  # when the link has sent everything queued so far (with a rate)
        self.timer = None

    def send(self, source, payload):
        now = self.loop.time()
        if self.rate and payload is not EOF and payload is not CLOSE:
            self.link_free = max(now, self.link_free) + len(payload) / self.rate
            due = self.link_free + self.delay
        else:
            due = max(now, self.link_free) + self.delay
        self.queue.append((due, source, payload))
        if self.timer is None:
            self.timer = self.loop.call_at(due, self.deliver)

    def deliver(self):
        self.timer = None
        now = self.loop.time()
        queue = self.queue
        while queue and queue[0][0] <= now:
            _, source, payload = queue.popleft()
            source.arrived(payload)
        if queue:
            self.timer = self.loop.call_at(queue[0][0], self.deliver)


class Side(asyncio.Protocol):
    """One socket of a relayed connection; what it reads goes to its peer through `direction`."""

    def __init__(self, direction):
        self.direction = direction
        self.transport = None
        self.peer = None
        self.held = 0  # bytes read from this side, not yet handed to the peer's socket
        self.read_paused = False
        self.write_paused = False  # the peer has not drained what this side handed it
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(6, 1, 1)  # TCP_NODELAY

    def data_received(self, data):
        self.held += len(data)
        self.direction.send(self, data)
        if self.held > HIGH_WATER and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def eof_received(self):
        self.direction.send(self, EOF)
        return True  # keep the socket open for the other direction

    def connection_lost(self, exc):
        self.closed = True
        if self.peer is not None:
            self.direction.send(self, CLOSE)

    def arrived(self, payload):
        """`payload`, read from this side, reaches the far end of the link: hand it to the peer's socket."""
        peer = self.peer.transport
        if payload is CLOSE:
            peer.close()
            return
        if self.peer.closed:
            return
        if payload is EOF:
            if peer.can_write_eof():
                peer.write_eof()
            return
        peer.write(payload)
        self.held -= len(payload)
        self.maybe_resume()

    def maybe_resume(self):
        if self.read_paused and not self.closed and self.held < LOW_WATER and not self.peer.write_paused:
            self.read_paused = False
            self.transport.resume_reading()

    # Flow control of this side's own socket: the peer reads into it, so the peer pauses when it backs up.
    def pause_writing(self):
        self.write_paused = True
        if self.peer is not None and not self.peer.read_paused:
            self.peer.read_paused = True
            self.peer.transport.pause_reading()

    def resume_writing(self):
        self.write_paused = False
        if self.peer is not None:
            self.peer.maybe_resume()


async def serve(target_port, up, down, handshake):
    loop = asyncio.get_running_loop()

    class ClientSide(Side):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.pause_reading()
            self.read_paused = True
            loop.create_task(self.connect())

        async def connect(self):
            # The client's connect() returned at once; on the real link its first bytes could leave only
            # after the handshake, one round trip later.
            await asyncio.sleep(handshake)
            try:
                _, server = await loop.create_connection(lambda: Side(down), "127.0.0.1", target_port)
            except OSError:
                self.transport.close()
                return
            server.peer, self.peer = self, server
            if self.closed:
                server.transport.close()
                return
            self.read_paused = False
            self.transport.resume_reading()

    return await loop.create_server(lambda: ClientSide(up), "127.0.0.1", 0, backlog=4096)


def parse_rate(text):
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B")
    unit = text[-1:] if text[-1:] in units else ""
    return float(text[: len(text) - len(unit)]) * units[unit]


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    parser.add_argument("--rate", type=parse_rate, default=0.0, help="bytes/s each direction, shared (0: none)")
    parser.add_argument("ports", type=int, nargs="+")
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    delay = args.rtt_ms / 2000
    up, down = Direction(loop, delay, args.rate), Direction(loop, delay, args.rate)
    servers = [await serve(port, up, down, args.rtt_ms / 1000) for port in args.ports]
    print("ports " + " ".join(str(s.sockets[0].getsockname()[1]) for s in servers), flush=True)
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_reader(sys.stdin.fileno(), lambda: os.read(sys.stdin.fileno(), 4096) or done.set())
    await done.wait()


if __name__ == "__main__":
    try:
        import uvloop  # faster when installed; the plain event loop otherwise

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
