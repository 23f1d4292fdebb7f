"""SQLite checkpoints on a thread of their own, beside the writer rather than inside its commits.

In WAL mode a commit appends the changed pages to the ``-wal`` file; a checkpoint copies them back into
the database file and syncs it, so the log can start again from its beginning. By default the connection
that commits past 1,000 logged pages does it, inside that commit: a writer applying a busy stream of
events (a consumer's batches touch a page of an index per event) then spends about a tenth of its time
copying pages, with the next batch waiting.

``Checkpointer`` runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection and thread, woken by every
committed write transaction (``Database.on_commit``), at most once per ``interval_s``. A passive
checkpoint never waits for the writer or the readers and never blocks them (SQLite lets one checkpointer
run beside one writer), so the copying overlaps the writer's next batch on another core.

The log starts again from its beginning when a write transaction begins with all of it copied, which
between bursts it is. Under a steady stream of batches the next one has always begun while the last was
being copied, so the log grows until the writer's own checkpoint, kept as a safety net at a higher mark
(``SAFETY_PAGES``), runs inside a commit and lets it start again (``LOG_LIMIT_BYTES`` then cuts the file
back): about one checkpoint in ten of such a stream still runs in the writer, and if this thread is held
up, the log cannot grow without bound. Durability does not change: a checkpoint only copies what a
commit has already made durable in the log (``synchronous=FULL``), and SQLite recovers a checkpoint cut
short by a crash from the log on the next open.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from services.common.logs import get_logger
from services.common.retry import one_line

log = get_logger(__name__)

# The writer's own checkpoint mark (pages of the log): ~64 MiB at 4 KiB pages, far beyond what this thread
# lets gather.
SAFETY_PAGES = 16_384
# A log grown past this is cut back to it when it starts again (SQLite keeps the file's size otherwise).
LOG_LIMIT_BYTES = 64 * 1024 * 1024


class Checkpointer:
    """Checkpoints one SQLite file on a daemon thread, after commits (``wake``), until ``close``."""

    def __init__(self, path: Path, *, interval_s: float = 0.05, busy_timeout_s: float = 10.0) -> None:
        self.path = path
        self.interval_s = interval_s
        self.busy_timeout_s = busy_timeout_s
        self.passes = 0  # checkpoints run (for tests and metrics)
        self._wanted = threading.Event()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """A write transaction committed: checkpoint soon (the thread starts on the first call)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closing.is_set():
                    self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
                    self._thread.start()
        self._wanted.set()

    def close(self) -> None:
        """Stops the thread after the checkpoint under way (the next open or the writer copies the rest)."""
        with self._lock:
            self._closing.set()
            thread = self._thread
        self._wanted.set()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            # The database file is synced before the log may start again, as on the writer's own connections.
            conn.execute("PRAGMA synchronous=FULL")
            last = 0.0
            while True:
                self._wanted.wait()
                # A burst of commits makes one pass: the interval since the last one is waited out first.
                if self._closing.wait(max(0.0, last + self.interval_s - time.monotonic())):
                    return
                self._wanted.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.passes += 1
                except sqlite3.Error as err:  # the writer's own checkpoint still runs at its mark
                    log.warning("checkpoint failed", database=str(self.path), error=one_line(err))
                last = time.monotonic()
        finally:
            conn.close()
