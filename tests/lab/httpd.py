"""The lab's web service (threaded ``http.server``; HTTP and optionally HTTPS), standard library only.

    python -m tests.lab.httpd --listen 198.18.100.10 --listen fd00:cafe:100::10 --port 80 \
        [--tls-port 443 --cert cert.pem --key key.pem] [--title "Cổng Dịch vụ công Quốc gia"] [--ready-file F]

Paths (GET; HEAD too):
  /               200, an HTML page whose title and heading are ``--title`` (UTF-8)
  /health         200 ``ok``
  /slow?ms=N      200 after sleeping N ms (at most 60 000)
  /status/NNN     that status (200..599)
  /redirect?n=K   302 to /redirect?n=K-1, and from n=1 to / (K at most 50)
  /bytes?n=N      200 with N bytes (at most 1 GiB), streamed in 64 KiB chunks, for throughput tests
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import ssl
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

MAX_SLOW_MS = 60_000
MAX_REDIRECTS = 50
MAX_BYTES = 1 << 30
CHUNK = b"\0" * 65536


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CenterWatchLab/1"
    timeout = 30  # idle keep-alive connections do not hold a thread for ever
    title: ClassVar[str] = "Cổng Dịch vụ công Quốc gia"

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _dispatch(self, head: bool) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)

        def number(key: str, default: int) -> int:
            try:
                return int(query.get(key, [str(default)])[0])
            except ValueError:
                return -1

        if url.path == "/":
            page = (
                '<!doctype html>\n<html lang="vi"><head><meta charset="utf-8">'
                f"<title>{self.title}</title></head>\n<body><h1>{self.title}</h1>\n"
                "<p>CenterWatch lab service</p></body></html>\n"
            )
            self._send(200, page.encode(), "text/html; charset=utf-8", head)
        elif url.path == "/health":
            self._send(200, b"ok\n", "text/plain", head)
        elif url.path == "/slow":
            ms = number("ms", 1000)
            if not 0 <= ms <= MAX_SLOW_MS:
                return self._send(400, f"ms must be within 0..{MAX_SLOW_MS}\n".encode(), "text/plain", head)
            time.sleep(ms / 1000)
            self._send(200, f"slept {ms} ms\n".encode(), "text/plain", head)
        elif url.path.startswith("/status/"):
            code = url.path.removeprefix("/status/")
            if not (code.isdigit() and 200 <= int(code) <= 599):
                return self._send(400, b"status must be within 200..599\n", "text/plain", head)
            self._send(int(code), f"status {code}\n".encode(), "text/plain", head)
        elif url.path == "/redirect":
            n = number("n", 1)
            if not 1 <= n <= MAX_REDIRECTS:
                return self._send(400, f"n must be within 1..{MAX_REDIRECTS}\n".encode(), "text/plain", head)
            target = "/" if n == 1 else f"/redirect?n={n - 1}"
            self._send(302, f"see {target}\n".encode(), "text/plain", head, {"Location": target})
        elif url.path == "/bytes":
            n = number("n", 1024)
            if not 0 <= n <= MAX_BYTES:
                return self._send(400, f"n must be within 0..{MAX_BYTES}\n".encode(), "text/plain", head)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            if not head:
                left = n
                while left > 0:
                    piece = CHUNK[: min(left, len(CHUNK))]
                    self.wfile.write(piece)
                    left -= len(piece)
        else:
            self._send(404, b"not found\n", "text/plain", head)
        return None

    def _send(self, code: int, body: bytes, ctype: str, head: bool, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(code)
        except ValueError:  # a code http.server has no phrase for
            self.send_response(code, HTTPStatus.OK.phrase if code < 300 else "Status")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stdout.write(f"{self.client_address[0]} {format % args}\n")
        sys.stdout.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:  # handshake later, in the request's thread: a slow client blocks no one
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(10)
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError):
                return
            request.settimeout(None)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # a client going away mid-response is normal in failure tests
        super().handle_error(request, client_address)


class Server6(Server):
    address_family = socket.AF_INET6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.httpd", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", action="append", required=True, help="address to bind (repeatable)")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--tls-port", type=int, help="also serve HTTPS on this port (needs --cert and --key)")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--title", default=Handler.title, help="title and heading of /")
    parser.add_argument("--ready-file", help="written once every socket is bound")
    args = parser.parse_args(argv)
    if args.tls_port and not (args.cert and args.key):
        parser.error("--tls-port needs --cert and --key")
    Handler.title = args.title
    tls = None
    if args.tls_port:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)
    servers: list[Server] = []
    for address in args.listen:
        cls = Server6 if ":" in address else Server
        servers.append(cls((address, args.port), Handler))
        if tls is not None:
            secure = cls((address, args.tls_port), Handler)
            secure.tls = tls
            servers.append(secure)
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    ports = f"{args.port}" + (f" and TLS {args.tls_port}" if args.tls_port else "")
    print(f"httpd: listening on {args.listen} port {ports}", flush=True)
    if args.ready_file:
        Path(args.ready_file).write_text(str(os.getpid()))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(0.1):
        pass
    for server in servers:  # the serving threads are daemons: closing the sockets and leaving is enough
        with contextlib.suppress(OSError):
            server.server_close()


if __name__ == "__main__":
    main()
