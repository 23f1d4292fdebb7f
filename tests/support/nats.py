"""One real nats-server per test session, and a JetStream account of its own for each test.

Starting a nats-server with JetStream costs about half a second; a test's isolation costs
nothing when each test connects as a user of an account nobody else uses: streams,
consumers and subjects live inside an account, so tests never see each other's messages.
The server's configuration declares the accounts; when they run out, more are added and
the server reloads its configuration (SIGHUP), which keeps every connection open.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import nats

from services.supervisor import Process, nats_server_binary

PASSWORD = "test"


class NatsServer:
    """A nats-server on a loopback port it picked itself, with ``accounts`` JetStream accounts to hand out."""

    def __init__(self, folder: Path, accounts: int) -> None:
        self.folder = folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config = self.folder / "nats.conf"
        self.declared = 0
        self.used = 0
        self.port = 0
        self._write_config(max(accounts, 1))
        self.process = Process("nats", [nats_server_binary(), "-c", str(self.config)], {},
                               self.folder / "nats.log", "")

    def _write_config(self, accounts: int) -> None:
        lines = [
            "listen: 127.0.0.1:-1",  # port 0: the server picks, and writes it to the ports file
            f'ports_file_dir: "{self.folder}"',
            "server_name: crowdpack-tests",
            f'jetstream {{ store_dir: "{self.folder / "jetstream"}" }}',
            "accounts {",
            *(f'  t{i} {{ jetstream: enabled, users: [{{user: t{i}, password: {PASSWORD}}}] }}'
              for i in range(accounts)),
            "}",
        ]
        self.config.write_text("\n".join(lines) + "\n")
        self.declared = accounts

    def start(self, timeout: float = 60.0) -> None:
        self.process.start()
        assert self.process.popen is not None
        ports = self.folder / f"nats-server_{self.process.popen.pid}.ports"
        deadline = time.monotonic() + timeout
        # The server creates the file before writing it: wait for its whole content.
        while not ports.exists() or not ports.read_text().strip().endswith("}"):
            if not self.process.alive:
                raise RuntimeError(f"nats-server exited at start; its log ends:\n{self.process.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server not ready after {timeout:.0f}s; its log ends:\n{self.process.tail()}")
            time.sleep(0.02)
        url = json.loads(ports.read_text())["nats"][0]
        self.port = int(url.rsplit(":", 1)[1])

    def stop(self) -> None:
        self.process.stop()

    def new_account(self) -> str:
        """A URL that connects as the only user of an account no test used before."""
        if self.used == self.declared:
            self._grow()
        name = f"t{self.used}"
        self.used += 1
        return f"nats://{name}:{PASSWORD}@127.0.0.1:{self.port}"

    def _grow(self) -> None:
        """Declares twice as many accounts and waits until the server has reloaded its configuration."""
        reloads = self._reloads()
        self._write_config(self.declared * 2)
        self.process.signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while self._reloads() == reloads:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not reload its accounts; its log ends:\n{self.process.tail()}")
            time.sleep(0.02)

    def _reloads(self) -> int:
        # Read from the log: a client refused while the reload is under way would leak its socket (nats-py 2.16).
        return self.process.log_path.read_text(errors="replace").count("Reloaded server configuration")


async def delete_streams(url: str) -> None:
    """Deletes every stream of the account ``url`` connects as (their consumers go with them)."""
    nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0)
    try:
        jsm = nc.jsm()
        for info in await jsm.streams_info():
            await jsm.delete_stream(info.config.name)
    finally:
        await nc.close()

