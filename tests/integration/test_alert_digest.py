"""The daily digest: made at 10:00 in each mall's time zone, published on NATS and POSTed to a real local
webhook exactly once per id, across a restart of the alert service in the middle of the delivery."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.alert.v1 import alert_service_pb2_grpc as pb_grpc
from services.alert.assembly import build_spec
from services.alert.config import AlertSettings
from services.common.auth import Caller, Role
from tests.support import alert_events as ev
from tests.support.identity import signed
from tests.support.runtime import running_service
from tests.support.webhook import Receiver

ADMIN = signed(Caller(staff_id="admin-1", role=Role.SUPER_ADMIN))


def zone_at_local_hour(hour: int) -> str:
    """A fixed-offset zone whose local time is ``hour`` o'clock right now."""
    offset = (hour - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return f"Etc/GMT{-offset:+d}"


async def until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_digest_reaches_the_webhook_once_across_a_restart(database_url, nats_url, js, tmp_path):
    receiver = Receiver(hold_first=True, refuse=1).start()
    try:
        settings = AlertSettings(grpc_port=0, metrics_port=0, database_url=database_url, outbox_poll_s=0.05,
                                 digest_check_s=0.2, digest_webhook_url=receiver.url, webhook_retry_first_s=0.1,
                                 webhook_timeout_s=60)
        # Mall 1 is at 10 o'clock now (its digest is due); mall 2 at 8 (not yet).
        due, early = zone_at_local_hour(10), zone_at_local_hour(8)
        async with running_service(build_spec, settings, nats_url=nats_url, state_dir=tmp_path) as (_, channel):
            stub = pb_grpc.AlertServiceStub(channel)
            await ev.mall(js, "1", "一号商场", early)  # moved to the due zone once its alerts are in
            await ev.mall(js, "2", "二号商场", early)
            await ev.store(js, "11", "1")
            await ev.store(js, "21", "2")
            await ev.caught_up(js, "CUSTOMER", "alert-customer-events")
            for mall_id in ("1", "2"):
                await stub.CreateAlertRule(pb.CreateAlertRuleRequest(
                    request_id=f"r{mall_id}", mall_id=mall_id, name="大额",
                    scope=pb.StoreScope(kind=pb.STORE_SCOPE_KIND_ALL),
                    single_order=pb.SingleOrderCondition(enabled=True, min_paid_amount=100)), metadata=ADMIN)
            now = datetime.now(UTC)
            for i, (mall_id, store_id) in enumerate([("1", "11"), ("1", "11"), ("2", "21")]):
                await ev.order(js, f"70{i}", f"30{i}", mall_id, store_id, 5_000, now)
            await ev.caught_up(js, "LEDGER", "alert-ledger-orders")
            await ev.mall(js, "1", "一号商场", due)
            # The digest pass runs every 0.2 s: mall 1's digest is made and its POST held by the receiver.
            await until(lambda: len(receiver.posts) == 1, "the first POST")
        # The service stopped while its POST was in flight; the receiver took the digest and now answers
        # a connection nobody listens to any more.
        receiver.release.set()
        key, body = receiver.posts[0]
        local_date = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo(due)).date().isoformat()
        assert key == f"1:{local_date}" == body["digest_id"]
        assert body["alert_count"] == 2 and {a["member_id"] for a in body["alerts"]} == {"300", "301"}
        assert body["mall_name"] == "一号商场"

        async with running_service(build_spec, settings, nats_url=nats_url, state_dir=tmp_path) as (_, channel):
            stub = pb_grpc.AlertServiceStub(channel)

            async def delivered() -> pb.Digest | None:
                listed = await stub.ListDigests(pb.ListDigestsRequest(mall_id="1"), metadata=ADMIN)
                done = [d for d in listed.digests if d.delivery_state == pb.DELIVERY_STATE_DELIVERED]
                return done[0] if done else None

            deadline = time.monotonic() + 30
            while (digest := await delivered()) is None:
                assert time.monotonic() < deadline, "the digest was never marked delivered"
                await asyncio.sleep(0.05)
            assert digest.digest_id == key and digest.alert_count == 2
            assert digest.attempts == 2  # a 503, then the repeat the receiver dropped
            assert (await stub.ListDigests(pb.ListDigestsRequest(mall_id="2"), metadata=ADMIN)).digests == []
            # Published on NATS once, with the outbox.
            sub = await js.pull_subscribe("alert.digest.created.v1", stream="ALERT")
            msgs = await sub.fetch(10, timeout=2)
            assert [m.headers is not None for m in msgs] == [True]
        assert [k for k, _ in receiver.posts] == [key, key, key]  # held, refused, repeated
        assert receiver.applied == [key]  # reached the webhook exactly once
    finally:
        receiver.stop()
