"""The ``crowdpack`` command: run the whole system, and operators' tools."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from services.customer.imports import cli as import_cli
from services.supervisor import System


def run(args: argparse.Namespace) -> int:
    system = System(state_dir=Path(args.state_dir))
    print(f"starting crowdpack (state in {system.state_dir}) ...", flush=True)
    stopping = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        system.start()
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        system.stop()
        return 1
    if not stopping:
        print("crowdpack is running:\n" + system.describe(), flush=True)
        url = system.gateway_url
        print("sign in:\n"
              f"  1. first time only: CROWDPACK_STATE_DIR={system.state_dir} .venv/bin/crowdpack staff create-admin "
              f"--phone 13800000000 --customer {system.processes['customer'].address}\n"
              f"  2. curl -s -X POST {url}/v1/sessions -d '{{\"login\": \"13800000000\", \"password\": \"...\"}}'\n"
              f"  3. curl -s {url}/v1/members -H 'Authorization: Bearer <tokens.access_token>'\n"
              f"  API reference: {url}/docs", flush=True)
        print("Ctrl-C stops everything.", flush=True)
    code = 0
    while not stopping:
        dead = [n for n, p in system.processes.items() if not p.alive]
        if dead:
            print(f"error: {dead[0]} exited; see {system.processes[dead[0]].log_path}", file=sys.stderr)
            code = 1
            break
        time.sleep(0.5)
    print("stopping ...", flush=True)
    system.stop()
    print("stopped.", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crowdpack", description="Crowdpack operator commands.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run NATS, the three services and the gateway on loopback")
    p_run.add_argument("--state-dir", default="var", help="folder for databases, NATS data and logs")
    p_run.set_defaults(func=run)
    import_cli.register(sub)
    from services.customer.sessions.cli import register as register_staff
    register_staff(sub)
    from services.ledger.cli import register as register_ledger
    register_ledger(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
