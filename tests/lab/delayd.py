"""A delaying ICMP echo responder: the lab's stand-in for netem delay, which this kernel lacks.

Run inside a lab namespace whose kernel echo replies are switched off
(``sysctl net.ipv4.icmp_echo_ignore_all=1``); answers every IPv4 echo request after ``--delay-ms``
(plus up to ``--jitter-ms`` of uniform jitter), with the request's id, sequence and payload.

    ip netns exec NS python -m tests.lab.delayd --delay-ms 40 [--jitter-ms 5] [--seconds 600]
"""

from __future__ import annotations

import argparse
import heapq
import random
import select
import socket
import struct
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return int(~total & 0xFFFF)


def reply_for(packet: bytes) -> tuple[bytes, str] | None:
    """The echo reply (ICMP bytes) and its destination for a raw IPv4 echo request, else None."""
    if len(packet) < 28:
        return None
    header_len = (packet[0] & 0x0F) * 4
    icmp = packet[header_len:]
    if len(icmp) < 8 or icmp[0] != 8 or icmp[1] != 0:
        return None
    source = socket.inet_ntoa(packet[12:16])
    body = b"\x00\x00\x00\x00" + icmp[4:]
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:], source


def serve(delay_s: float, jitter_s: float, seconds: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    pending: list[tuple[float, int, bytes, str]] = []
    counter = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _due, _n, data, destination = heapq.heappop(pending)
            sock.sendto(data, (destination, 0))
        wait = min(0.5, pending[0][0] - now) if pending else 0.5
        readable, _, _ = select.select([sock], [], [], max(0.0, wait))
        if not readable:
            continue
        packet = sock.recv(65535)
        answer = reply_for(packet)
        if answer is not None:
            counter += 1
            due = time.monotonic() + delay_s + random.uniform(0, jitter_s)
            heapq.heappush(pending, (due, counter, answer[0], answer[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--seconds", type=float, default=600.0, help="stop after this long (bounded)")
    args = ap.parse_args()
    serve(args.delay_ms / 1000, args.jitter_ms / 1000, args.seconds)


if __name__ == "__main__":
    main()
