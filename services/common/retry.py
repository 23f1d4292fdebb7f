"""Retry with exponential backoff for start-up dependencies (NATS, the database), and passes repeated on an
interval whatever one of them meets."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.common.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


async def retry_forever(
    attempt: Callable[[], Awaitable[T]], *, what: str, max_delay_s: float = 30.0, first_delay_s: float = 0.2,
    fatal: tuple[type[Exception], ...] = (),
) -> T:
    """Runs ``attempt`` until it succeeds, logging one line per failure and backing off.

    An error of a ``fatal`` type is not retried: it propagates.
    """
    delay = first_delay_s
    tries = 0
    while True:
        try:
            return await attempt()
        except asyncio.CancelledError:
            raise
        except fatal:
            raise
        except Exception as err:  # noqa: BLE001 - every failure is retried and logged in one line
            tries += 1
            log.warning("cannot reach dependency, retrying", dependency=what, error=one_line(err),
                        attempt=tries, retry_in_s=round(delay, 2))
            await asyncio.sleep(delay * (0.8 + random.random() * 0.4))
            delay = min(delay * 2, max_delay_s)


async def every(interval_s: float, one_pass: Callable[[], Awaitable[object]], *, what: str) -> None:
    """Runs ``one_pass`` now and then once every ``interval_s``, for ever; a pass that fails (the database is
    away) is logged in one line, and the next one tries again."""
    while True:
        try:
            await one_pass()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - the next pass tries again
            log.warning("periodic pass failed", what=what, error=one_line(err))
        await asyncio.sleep(interval_s)
