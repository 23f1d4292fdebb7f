"""A real HTTP webhook receiver on loopback that drops repeats by their Idempotency-Key, as the
public-account push does; it can hold its first request and refuse some with 503."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    hold_first: bool = False
    refuse: int = 0  # answer 503 to this many requests (after the held one)
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # every POST: key, body
    applied: list[str] = field(default_factory=list)  # keys taken, each once
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/digest"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                key = self.headers.get("Idempotency-Key", "")
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with receiver.lock:
                    receiver.posts.append((key, body))
                    first = len(receiver.posts) == 1
                    refuse = not first and receiver.refuse > 0
                    if refuse:
                        receiver.refuse -= 1
                    elif key not in receiver.applied:
                        receiver.applied.append(key)
                if first and receiver.hold_first:
                    receiver.release.wait(30)
                self.send_response(503 if refuse else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
