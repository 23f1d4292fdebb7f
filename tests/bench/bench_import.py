"""Customer import benchmark: fast and normal mode rows/s through the real service.

Run with ``python -m tests.bench.bench_import`` (``make bench``). It generates a GB18030 CSV of
member rows (Chinese headers and names, phones, emails, gender, birthday, openid, one row in ten
opening a card) in a temporary folder, starts NATS and the customer service in-process on a
fresh SQLite database (or PostgreSQL with ``--database-url``), uploads the file over gRPC and
times the job from StartImport to SUCCEEDED. Goals: fast >= 50,000 rows/s on a 1,000,000-row
file, normal >= 5,000 rows/s. ``--fast-rows`` / ``--normal-rows`` make a smaller run.

The baseline is plain SQL (``plain_sql``): the same fast-mode file into the same customer table by
a loop a person would write by hand, with none of the import's work beyond decoding and inserting.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import services.customer
from crowdpack.customer.v1 import import_service_pb2 as pb
from crowdpack.customer.v1 import import_service_pb2_grpc as pb_grpc
from crowdpack.customer.v1 import member_pb2
from services.common.auth import Caller, Role
from services.customer.config import CustomerSettings
from services.customer.service import build_spec
from services.supervisor import Ports, System
from tests.bench.common import SQLITE_TIME, cpu_model, log, plain_sqlite
from tests.support.identity import signed
from tests.support.runtime import running_service

SUPER = signed(Caller(staff_id="bench", role=Role.SUPER_ADMIN))
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鑫欣怡子涵浩宇梓轩"
GENDERS = ("男", "女", "未知")
PLAIN_GENDERS = {"男": member_pb2.GENDER_MALE, "女": member_pb2.GENDER_FEMALE}
PLAIN_CHUNK = 10_000  # rows per transaction in the plain-SQL baseline
PLAIN_INSERT = (
    "INSERT INTO customer (kind, phone, email, name, real_name, gender, birthday, avatar_url, wechat_openid, "
    "registered_at, card_opened, card_open_time, card_open_channel, promotion_channel, open_scene, level, "
    "level_frozen, disabled, review_status, store_member, virtual, created_at, updated_at) "
    "VALUES (1, ?, ?, ?, '', ?, ?, '', ?, ?, ?, ?, ?, '', '', 0, 0, 0, 2, 0, 0, ?, ?)")





def write_csv(path: Path, rows: int, seed: int = 4) -> int:
    """A GB18030 member file of ``rows`` data rows; returns its size in bytes."""
    rng = random.Random(seed)
    lines = ["手机号,邮箱,姓名,性别,生日,openid,开卡时间"]
    for i in range(rows):
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if i % 2 else "")
        email = f"user{i}@example.com" if i % 3 == 0 else ""
        opened = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d} 10:{i % 60:02d}:00" if i % 10 == 0 else ""
        lines.append(f"1{3 + i % 7}{i:09d},{email},{name},{GENDERS[i % 3]},"
                     f"{1960 + i % 45}-{1 + i % 12:02d}-{1 + i % 28:02d},oX{i:012d}Ab,{opened}")
    data = ("\r\n".join(lines) + "\r\n").encode("gb18030")
    path.write_bytes(data)
    return len(data)


def plain_sql(csv_path: Path, folder: Path) -> float:
    """The baseline: ``csv_path`` into a fresh customer table by plain SQL; returns rows/s.

    The database is SQLite with the service's schema (its migrations: the same indexes and unique
    keys) and the service's settings (WAL, ``synchronous=FULL``). Python's csv module decodes and
    splits the file; sqlite3's ``executemany`` inserts every row as it stands, 10,000 rows a
    transaction. No checks, no matching of duplicates or existing customers, no card numbers, tag,
    statistics, events, progress or crowd index: the least any import of this file does.
    """
    conn = plain_sqlite(folder / "plain-sql.db", Path(services.customer.__file__).parent / "migrations")
    now = datetime.now(UTC).strftime(SQLITE_TIME)
    started = time.perf_counter()
    done = 0
    with open(csv_path, encoding="gb18030", newline="") as f:
        reader = csv.reader(f)
        next(reader)  # the header
        while chunk := [(phone or None, email or None, name, PLAIN_GENDERS.get(gender, member_pb2.GENDER_UNKNOWN),
                         birthday or None, openid or None, now, bool(opened), opened or None,
                         member_pb2.OPEN_CHANNEL_IMPORT if opened else 0, now, now)
                        for phone, email, name, gender, birthday, openid, opened
                        in itertools.islice(reader, PLAIN_CHUNK)]:
            conn.execute("BEGIN")
            conn.executemany(PLAIN_INSERT, chunk)
            conn.execute("COMMIT")
            done += len(chunk)
            if done % 200_000 < PLAIN_CHUNK:
                log(f"  plain SQL: {done:,} rows")
    elapsed = time.perf_counter() - started
    (stored,) = conn.execute("SELECT count(*) FROM customer").fetchone()
    conn.close()
    if stored != done:
        raise RuntimeError(f"plain SQL stored {stored:,} customers of {done:,} rows")
    return done / elapsed


async def import_once(stub: pb_grpc.ImportServiceStub, path: Path, mode: int, tag: str) -> dict[str, float]:
    data = path.read_bytes()
    step = 1024 * 1024

    def messages():
        yield pb.UploadImportFileRequest(request_id=f"bench-{path.name}-{mode}-{time.time_ns()}",
                                         file_name=path.name, chunk=data[:step])
        for start in range(step, len(data), step):
            yield pb.UploadImportFileRequest(chunk=data[start:start + step])

    started = time.perf_counter()
    uploaded = (await stub.UploadImportFile(messages(), metadata=SUPER)).file
    upload_s = time.perf_counter() - started
    started = time.perf_counter()
    job = (await stub.StartImport(pb.StartImportRequest(request_id=f"bench-start-{time.time_ns()}",
                                                        file_id=uploaded.file_id, mode=mode, tag_name=tag),
                                  metadata=SUPER)).job
    while job.state not in (pb.IMPORT_JOB_STATE_SUCCEEDED, pb.IMPORT_JOB_STATE_FAILED):
        await asyncio.sleep(0.2)
        job = (await stub.GetImportJob(pb.GetImportJobRequest(job_id=job.job_id), metadata=SUPER)).job
    job_s = time.perf_counter() - started
    if job.state != pb.IMPORT_JOB_STATE_SUCCEEDED:
        raise RuntimeError(f"import failed: {job.error_message}")
    return {"rows": job.total_rows, "created": job.created, "updated": job.updated + job.unchanged,
            "upload_s": upload_s, "job_s": job_s, "rows_per_s": job.total_rows / job_s}


async def run_mode(nats_url: str, folder: Path, csv_path: Path, mode: int, database_url: str | None,
                   repeat_update: bool) -> list[dict[str, float]]:
    state = folder / f"state-{mode}"
    state.mkdir()
    url = database_url or f"sqlite+aiosqlite:///{state / 'customer.db'}"
    settings = CustomerSettings(grpc_port=0, metrics_port=0, database_url=url)
    results = []
    async with running_service(build_spec, settings, nats_url=nats_url, state_dir=state) as (_rt, channel):
        stub = pb_grpc.ImportServiceStub(channel)
        results.append(await import_once(stub, csv_path, mode, "bench"))
        if repeat_update:
            results.append(await import_once(stub, csv_path, mode, "bench"))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast-rows", type=int, default=1_000_000)
    parser.add_argument("--normal-rows", type=int, default=50_000)
    parser.add_argument("--database-url", default=None, help="an empty database to import into (default: SQLite)")
    parser.add_argument("--no-update-pass", action="store_true", help="skip the second import of the same file")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    plain: float | None = None
    with tempfile.TemporaryDirectory(prefix="crowdpack-bench-import-") as tmp:
        folder = Path(tmp)
        system = System(state_dir=folder / "nats-state", ports=Ports.free())
        system.start(("nats",))
        try:
            table = []
            for mode, rows in ((pb.IMPORT_MODE_FAST, args.fast_rows), (pb.IMPORT_MODE_NORMAL, args.normal_rows)):
                path = folder / f"user_{rows}.csv"
                size = write_csv(path, rows)
                name = pb.ImportMode.Name(mode).removeprefix("IMPORT_MODE_").lower()
                log(f"{name}: {rows:,} rows, {size / 1e6:.1f} MB GB18030")
                if mode == pb.IMPORT_MODE_FAST and args.database_url is None:
                    log("the baseline: the same file by plain SQL (sqlite3, no checks)")
                    plain = plain_sql(path, folder)
                    log(f"plain SQL: {plain:,.0f} rows/s")
                results = asyncio.run(run_mode(system.nats_url, folder, path, mode, args.database_url,
                                               not args.no_update_pass))
                for result, what in zip(results, ("create", "update")):
                    log(f"{name} {what}: {result['rows_per_s']:,.0f} rows/s")
                    table.append((name, what, rows, size, result))
        finally:
            system.processes["nats"].stop()
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, {backend}; "
          f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("| mode | pass | rows | file | upload | job | rows/s | vs plain SQL | goal | met |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, what, rows, size, r in table:
        goal = 50_000 if name == "fast" else 5_000
        met = "met" if r["rows_per_s"] >= goal else "MISSED"
        ratio = f"{r['rows_per_s'] / plain:.2f}x" if plain and (name, what) == ("fast", "create") else "-"
        print(f"| {name} | {what} ({r['created']:,} created, {r['updated']:,} matched) | {rows:,} | "
              f"{size / 1e6:.1f} MB | {r['upload_s']:.1f} s | {r['job_s']:.1f} s | {r['rows_per_s']:,.0f} | {ratio} | "
              f"{goal:,} | {met} |")
    if plain:
        print(f"| plain SQL (baseline) | create: csv + sqlite3 executemany, no checks | {args.fast_rows:,} | - | - | "
              f"- | {plain:,.0f} | 1.00x | - | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
