"""A webhook receiver for the lab: records every POST, with the time it arrived, as one JSON line.

    python -m tests.lab.webhookd --listen 127.0.0.1 --port 9099 --out hooks.jsonl [--ready-file F]

Each line of ``--out`` is ``{"t": <unix seconds at receipt>, "path": "/hook", "headers": {...},
"body": <the parsed JSON body, or the text when it is not JSON>}``, written and flushed before the
200 answer goes out, so a reader that sees the sender's success sees the line. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, TextIO

MAX_BODY = 4 * 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CenterWatchLabHook/1"
    timeout = 30
    out: ClassVar[TextIO | None] = None
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        received = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY:
            return self._answer(413, b"too large\n")
        raw = self.rfile.read(length)
        body: Any
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = {"t": received, "path": self.path, "headers": dict(self.headers.items()), "body": body}
        with self.lock:
            assert self.out is not None
            self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.out.flush()
        return self._answer(200, b"ok\n")

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stdout.write(f"{self.client_address[0]} {format % args}\n")
        sys.stdout.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.webhookd", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=9099)
    parser.add_argument("--out", required=True, help="JSON lines file, appended to")
    parser.add_argument("--ready-file", help="written once the socket is bound")
    args = parser.parse_args(argv)
    with Path(args.out).open("a", encoding="utf-8") as out:
        Handler.out = out
        server = Server((args.listen, args.port), Handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        print(f"webhookd: listening on {args.listen}:{args.port}, recording to {args.out}", flush=True)
        if args.ready_file:
            Path(args.ready_file).write_text(str(os.getpid()))
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop.wait(0.1):
            pass
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
