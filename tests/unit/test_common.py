"""Shared mechanisms: configuration, paging tokens, validation, caller identity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError

from crowdpack.customer.v1 import member_pb2 as pb
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from services.common.config import CommonSettings, database_url_for, describe_settings_error
from services.common.errors import InvalidArgument
from services.common.idempotency import response_type
from services.common.pagination import (
    after_id,
    after_token,
    before_id,
    decode_token,
    encode_token,
    keyset_page,
    page_size,
)
from services.common.validation import (
    bounded_text,
    from_timestamp,
    known_enum,
    optional_id,
    parse_int_id,
    to_timestamp,
)
from services.customer.config import CustomerSettings
from services.customer.validation import normalize_email, normalize_phone


def test_settings_come_from_the_environment_with_defaults(monkeypatch, tmp_path):
    assert CustomerSettings().grpc_port == 50051
    monkeypatch.setenv("CROWDPACK_CUSTOMER_GRPC_PORT", "6000")
    monkeypatch.setenv("CROWDPACK_STATE_DIR", str(tmp_path))
    settings, common = CustomerSettings(), CommonSettings()
    assert settings.grpc_port == 6000
    assert database_url_for("customer", settings, common) == f"sqlite+aiosqlite:///{tmp_path}/customer.db"
    monkeypatch.setenv("CROWDPACK_CUSTOMER_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert database_url_for("customer", CustomerSettings(), common) == "postgresql+psycopg://u@h/db"


def test_a_bad_setting_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv("CROWDPACK_CUSTOMER_GRPC_PORT", "70000")
    with pytest.raises(ValidationError) as info:
        CustomerSettings()
    line = describe_settings_error(info.value)
    assert line.startswith("CROWDPACK_CUSTOMER_GRPC_PORT:") and "\n" not in line


def test_page_size_defaults_caps_and_rejects_negative():
    assert page_size(0) == 50 and page_size(10) == 10 and page_size(5000) == 1000
    with pytest.raises(InvalidArgument) as info:
        page_size(-1)
    assert info.value.field == "page_size"


def test_page_tokens_round_trip_and_garbage_is_rejected():
    assert decode_token(encode_token({"before": 42})) == {"before": 42}
    assert decode_token("") is None
    for bad in ("%%%", "WzFd"):  # "WzFd" is "[1]": valid JSON, not a token
        with pytest.raises(InvalidArgument):
            decode_token(bad)


def test_after_tokens_round_trip_and_foreign_tokens_are_rejected():
    assert after_id("") == 0 and after_id(after_token(0)) == 0 and after_id(after_token(12345)) == 12345
    for bad in (encode_token({}), encode_token({"after": "7"}), encode_token({"after": -1}),
                encode_token({"after": True}), encode_token({"before": 3})):
        with pytest.raises(InvalidArgument) as info:
            after_id(bad)
        assert info.value.field == "page_token"


@pytest.mark.parametrize("phone", ["13800000000", "19912345678", " 15000000000 "])
def test_valid_phones(phone):
    assert normalize_phone(phone) == phone.strip()


@pytest.mark.parametrize("phone", ["1380000000", "138000000000", "12800000000", "23800000000", "1380000000a",
                                   "+8613800000000"])
def test_invalid_phones_name_the_field(phone):
    with pytest.raises(InvalidArgument) as info:
        normalize_phone(phone)
    assert info.value.field == "phone"


def test_emails_are_lower_cased_and_validated():
    assert normalize_email("Ada.L@Example.COM") == "ada.l@example.com"
    assert normalize_email("") is None
    for bad in ("a@", "@b.cn", "a b@c.cn", "a@b", "a@-b.cn"):
        with pytest.raises(InvalidArgument):
            normalize_email(bad)


@pytest.mark.parametrize("when", [
    datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=UTC),
    datetime(2026, 11, 22, 17, 30, 15, 999999, tzinfo=timezone(timedelta(hours=8))),
    datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999),  # naive: UTC
])
def test_a_time_becomes_the_timestamp_protobuf_makes_of_it(when):
    expected = Timestamp()
    expected.FromDatetime(when if when.tzinfo else when.replace(tzinfo=UTC))
    assert to_timestamp(when) == expected
    assert to_timestamp(when).ToDatetime(tzinfo=UTC) == (when if when.tzinfo else when.replace(tzinfo=UTC))
    assert to_timestamp(None) is None


@pytest.mark.parametrize(("seconds", "nanos"), [
    (1_795_000_000, 123_456_789), (0, 0), (-1, 999_999_999), (-62_135_596_800, 0), (253_402_300_799, 999_999_999)])
def test_a_timestamp_becomes_the_time_protobuf_makes_of_it(seconds, nanos):
    ts = Timestamp(seconds=seconds, nanos=nanos)
    assert from_timestamp(ts) == ts.ToDatetime(tzinfo=UTC)
    assert from_timestamp(ts).tzinfo is UTC


def test_enums_and_ids():
    assert known_enum(pb.Gender, pb.GENDER_MALE, "gender") == pb.GENDER_MALE
    with pytest.raises(InvalidArgument, match="gender: must be one of GENDER_MALE"):
        known_enum(pb.Gender, 42, "gender")
    with pytest.raises(InvalidArgument):
        known_enum(pb.Gender, 0, "gender", allow_unspecified=False)
    assert parse_int_id("17", "member_id") == 17
    for bad in ("", "-1", "1.5", "x", "9" * 19):
        with pytest.raises(InvalidArgument):
            parse_int_id(bad, "member_id")


def test_free_ports_are_all_different_and_bindable():
    import socket
    from dataclasses import astuple

    from services.supervisor import Ports

    for _ in range(50):
        ports = astuple(Ports.free())
        assert len(set(ports)) == len(ports) == 8
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_the_benchmark_runner_takes_no_names_some_names_or_refuses_unknown_ones():
    from tests.bench.__main__ import parse_args

    assert parse_args([]).names == [] and parse_args(["--quick"]).quick  # [] runs every benchmark
    assert parse_args(["ledger", "import"]).names == ["ledger", "import"]
    with pytest.raises(SystemExit):
        parse_args(["nope"])


async def test_a_keyset_page_reads_one_row_more_than_it_shows():
    rows = list(range(1, 8))
    asked: list[int] = []

    async def fetch(n: int) -> list[int]:
        asked.append(n)
        return rows[:n]

    first = await keyset_page(fetch, 3)
    assert (first.items, first.more, asked) == ([1, 2, 3], True, [4])
    assert decode_token(first.next_token(lambda last: {"after": last})) == {"after": 3}
    last = await keyset_page(fetch, 10)
    assert (last.items, last.more, last.next_token(lambda r: {"after": r})) == (rows, False, "")


def test_before_tokens_round_trip_and_foreign_tokens_are_rejected():
    assert before_id("") is None
    assert before_id(encode_token({"before": 41})) == 41
    for foreign in (encode_token({"after": 3}), encode_token({"before": "x"}), "%%%"):
        with pytest.raises(InvalidArgument) as err:
            before_id(foreign)
        assert err.value.field == "page_token"


def test_the_response_type_of_an_rpc_comes_from_its_descriptor():
    assert response_type(org_pb.CreateMallRequest, "CreateMall") is org_pb.CreateMallResponse
    with pytest.raises(LookupError):
        response_type(org_pb.CreateMallRequest, "CreateStore")


def test_bounded_text_and_optional_id_name_their_field():
    assert bounded_text("  a b  ", "note", 3) == "a b"
    with pytest.raises(InvalidArgument) as err:
        bounded_text("abcd", "note", 3)
    assert err.value.field == "note"
    assert optional_id("", "mall_id") is None
    assert optional_id("12", "mall_id") == 12
    with pytest.raises(InvalidArgument) as err:
        optional_id("x1", "mall_id")
    assert err.value.field == "mall_id"


@pytest.mark.parametrize("when", [
    None, datetime(1, 1, 1), datetime(999, 3, 4, 5, 6, 7, 123), datetime(2026, 12, 2, 23, 5, 7, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=8))), datetime(9999, 12, 31, 23, 59, 59, 999_999),
    datetime(2026, 5, 6).date()])
def test_bulk_rows_bind_a_sqlite_time_as_sqlalchemy_does(when):
    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    from services.common.bulk import _bind_processor

    dialect = sqlite.dialect()
    impl = DateTime(timezone=True).dialect_impl(dialect)
    fast, sqlalchemys = _bind_processor(impl, dialect), impl.bind_processor(dialect)
    assert fast is not None and sqlalchemys is not None and fast is not sqlalchemys
    assert fast(when) == sqlalchemys(when)


def test_a_failing_benchmark_is_one_line_and_the_others_still_run(monkeypatch, capsys):
    import sys
    import types

    from tests.bench import __main__ as runner

    ran: list[str] = []

    def failing(_argv):
        raise AssertionError

    def fine(_argv):
        ran.append("fine")
        return 0

    monkeypatch.setitem(sys.modules, "bench_failing", types.SimpleNamespace(main=failing))
    monkeypatch.setitem(sys.modules, "bench_fine", types.SimpleNamespace(main=fine))
    monkeypatch.setattr(runner, "BENCHES", {"failing": ("bench_failing", []), "fine": ("bench_fine", [])})
    assert runner.main([]) == 1
    assert ran == ["fine"]
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[0].startswith("error: failing: AssertionError (test_common.py:") and len(errors) == 2
    assert errors[1] == "error: benchmarks failed: failing"


def test_the_crowd_benchmark_fills_every_column_the_crowd_index_keeps():
    import numpy as np

    from services.customer.crowds.columns import COLUMNS
    from tests.bench.bench_crowds import member_columns

    columns = member_columns(100, np.random.default_rng(1))
    assert set(columns) == set(COLUMNS)
    assert all(len(values) == 100 and (valid is None or len(valid) == 100) for values, valid in columns.values())


def test_the_do_nothing_twin_of_a_consumer_keeps_its_stream_subjects_batch_and_mode():
    from services.common.consumer import EventConsumer
    from services.common.events import LEDGER_STREAM, ORDER_RECORDED, ORDER_REFUNDED
    from services.ledger.models import ProcessedMessage
    from tests.bench.common import do_nothing_twin

    async def handler(_session, _event):
        raise AssertionError("the twin never calls the consumer's handlers")

    def whole(_session, _items):
        raise AssertionError("nor its batch handler")

    consumer = EventConsumer(None, None, durable="real", stream=LEDGER_STREAM,  # type: ignore[arg-type]
                             handlers={ORDER_RECORDED: handler, ORDER_REFUNDED: handler}, model=ProcessedMessage,
                             max_deliver=7, batch=777, sync_batch_handler=whole)
    twin = do_nothing_twin(consumer)
    assert (twin.durable, twin.stream, sorted(twin.handlers), twin.model) == (
        "bench-noop", LEDGER_STREAM, sorted(consumer.handlers), ProcessedMessage)
    assert (twin.batch, twin.batched, twin.max_deliver, twin.batch_handler) == (777, True, 7, None)
    assert twin.sync_batch_handler is not None and twin.sync_batch_handler(None, []) is None  # type: ignore[arg-type]


def test_the_benchmarks_split_cpu_time_by_kind_of_thread():
    import threading
    import time

    from tests.bench.common import cpu_by_role, thread_cpu

    def burn(seconds: float) -> None:  # until this thread has used that much CPU
        clock = time.pthread_getcpuclockid(threading.get_ident())
        start = time.clock_gettime(clock)
        while time.clock_gettime(clock) - start < seconds:
            pass

    release = threading.Event()
    before = thread_cpu()
    threads = [threading.Thread(target=lambda: (burn(0.05), release.wait()), name=name)
               for name in ("sqlite-writer_0", "sqlite-checkpoint")]
    for thread in threads:
        thread.start()
    burn(0.03)  # the main thread's
    while any(thread_cpu().get(t.ident, ("", 0.0))[1] < 0.05 for t in threads):
        release.wait(0.01)  # the burning threads are still alive here, so their CPU is counted
    roles = cpu_by_role(before, thread_cpu())
    release.set()
    for thread in threads:
        thread.join()
    assert set(roles) == {"writer", "loop", "other"}
    assert 0.05 <= roles["writer"] < 0.5 and 0.05 <= roles["other"] < 0.5 and 0.03 <= roles["loop"] < 0.5
