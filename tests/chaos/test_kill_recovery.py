"""SIGKILL a service while events are in flight: after restart nothing is lost and nothing applies twice."""

from __future__ import annotations

import threading
import time

import grpc

from crowdpack.customer.v1 import member_service_pb2 as customer_pb
from crowdpack.customer.v1 import member_service_pb2_grpc as customer_grpc
from tests.support import identity
from tests.support.inspect import caught_up, scalar, stream_messages

MEMBERS = 300


def create_members(address: str, created: list[str], refusals: list[grpc.StatusCode],
                   errors: list[BaseException]) -> None:
    """Creates MEMBERS members, retrying each with its request_id until the service answers."""
    try:
        for i in range(MEMBERS):
            deadline = time.monotonic() + 60
            while True:
                try:
                    with identity.sync_channel(address) as channel:
                        reply = customer_grpc.MemberServiceStub(channel).CreateMember(
                            customer_pb.CreateMemberRequest(request_id=f"chaos-{i}", phone=f"13{i:09d}"), timeout=5)
                    created.append(reply.member.member_id)
                    break
                except grpc.RpcError as err:
                    if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                            or time.monotonic() > deadline:
                        raise
                    refusals.append(err.code())
                    time.sleep(0.05)
    except BaseException as err:  # noqa: BLE001 - reported to the test thread
        errors.append(err)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_sigkill_customer_and_ledger_mid_flight_loses_nothing_and_applies_nothing_twice(system):
    created: list[str] = []
    refusals: list[grpc.StatusCode] = []
    errors: list[BaseException] = []
    writer = threading.Thread(target=create_members,
                              args=(system.processes["customer"].address, created, refusals, errors))
    writer.start()

    wait_until(lambda: len(created) >= MEMBERS // 5 or errors, 60, "the first members")
    system.processes["ledger"].kill()          # the consumer dies mid-batch
    wait_until(lambda: len(created) >= MEMBERS // 2 or errors, 60, "more members")
    system.processes["customer"].kill()        # the producer dies with events in its outbox
    wait_until(lambda: refusals or errors, 60, "the writer to find the customer service gone")
    system.start(("customer", "ledger"))
    writer.join(120)
    assert not errors, errors
    assert len(set(created)) == MEMBERS

    wait_until(lambda: scalar(system, "ledger", "SELECT count(*) FROM account") >= 3 * MEMBERS
               and stream_messages(system, "LEDGER") >= 3 * MEMBERS, 60, "the ledger to catch up")
    # Settled: both outboxes sent and the ledger's consumer has acked all of CUSTOMER. Whatever would
    # apply twice has applied by now.
    unsent = "SELECT count(*) FROM outbox_event WHERE published_at IS NULL"
    wait_until(lambda: scalar(system, "customer", unsent) == 0, 60, "the customer outbox to be sent")
    caught_up(system, "CUSTOMER", "ledger-customer-events", timeout=60)
    wait_until(lambda: scalar(system, "ledger", unsent) == 0, 60, "the ledger outbox to be sent")

    assert scalar(system, "customer", "SELECT count(*) FROM customer") == MEMBERS
    assert scalar(system, "customer", "SELECT count(*) FROM outbox_event WHERE published_at IS NULL") == 0
    assert stream_messages(system, "CUSTOMER") == MEMBERS           # one member.created per member
    # The ledger's other customer consumers (places, member malls) record the same messages under their names.
    applied = "SELECT count(*) FROM processed_message WHERE consumer = 'ledger-customer-events'"
    assert scalar(system, "ledger", applied) == MEMBERS
    assert scalar(system, "ledger", "SELECT count(*) FROM account") == 3 * MEMBERS
    assert scalar(system, "ledger", "SELECT count(DISTINCT member_id) FROM account") == MEMBERS
    assert stream_messages(system, "LEDGER") == 3 * MEMBERS         # one account.opened per account
