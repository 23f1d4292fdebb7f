"""``crowdpack ledger verify`` and ``crowdpack ledger expire``: operators' commands on the ledger database.

Both work on the database directly (the one the ledger service uses: ``--database-url``, else
``CROWDPACK_LEDGER_DATABASE_URL``, else SQLite in the state folder), so they run whether or
not the service does. ``expire`` writes its entries and their events like the service would;
the service's outbox relay publishes the events.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect

from services.common.config import CommonSettings, database_url_for
from services.common.db import Database
from services.ledger.config import LedgerSettings
from services.ledger.expiry import expire_due
from services.ledger.verify import verify

MIGRATIONS = Path(__file__).parent / "migrations"


def _database(args: argparse.Namespace) -> Database:
    url = args.database_url or database_url_for("ledger", LedgerSettings(), CommonSettings())
    return Database(url, MIGRATIONS)


async def _has_journal(db: Database) -> bool:
    async with db.read() as session:
        tables = await session.run_sync(lambda s: inspect(s.connection()).get_table_names())
    return "journal_entry" in tables


async def _run(args: argparse.Namespace, what: Any) -> int:
    db = _database(args)
    try:
        if not await _has_journal(db):
            print("error: the ledger database has no journal yet; start the ledger service once to migrate it",
                  file=sys.stderr)
            return 2
        return await what(db)
    finally:
        await db.dispose()


def verify_command(args: argparse.Namespace) -> int:
    async def check(db: Database) -> int:
        report = await verify(db)
        counted = ", ".join(f"{n:,} {name}" for name, n in report.counts.items())
        for problem in report.problems:
            print(problem)
        if report.ok:
            print(f"ok: {counted}; every balance equals the sum of its entries")
            return 0
        print(f"FAILED: {len(report.problems)} problem(s) in {counted}", file=sys.stderr)
        return 1

    return asyncio.run(_run(args, check))


def expire_command(args: argparse.Namespace) -> int:
    now = args.as_of or datetime.now(UTC)

    async def expire(db: Database) -> int:
        report = await expire_due(db, now, accounts_per_transaction=args.batch)
        print(f"expired {report.points:,} points from {report.lots:,} lot(s) in {report.accounts:,} account(s) "
              f"(due by {now.isoformat()})")
        return 0

    return asyncio.run(_run(args, expire))


def _as_of(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def register(subparsers: argparse._SubParsersAction) -> None:
    ledger = subparsers.add_parser("ledger", help="ledger operator commands: verify, expire")
    commands = ledger.add_subparsers(dest="ledger_command", required=True)
    url_help = "the ledger database (default: CROWDPACK_LEDGER_DATABASE_URL, else <state dir>/ledger.db)"

    p_verify = commands.add_parser(
        "verify", help="check every balance against its entries; non-zero exit on a mismatch")
    p_verify.add_argument("--database-url", help=url_help)
    p_verify.set_defaults(func=verify_command)

    p_expire = commands.add_parser("expire", help="expire the points lots that are due")
    p_expire.add_argument("--database-url", help=url_help)
    p_expire.add_argument("--as-of", type=_as_of, help="expire what is due at this ISO 8601 time (default: now)")
    p_expire.add_argument("--batch", type=int, default=500, help="accounts per transaction (default 500)")
    p_expire.set_defaults(func=expire_command)
