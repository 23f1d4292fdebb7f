"""The event catalogue: JetStream streams, their subjects, and the protobuf type each subject carries.

Subjects are ``<owner>.<entity>.<verb>.v<version>``; each owning service has one stream
named after it in upper case. Every stream keeps a two-minute duplicate window, so a
message republished with the same ``Nats-Msg-Id`` (the outbox id) is stored once.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from crowdpack.events.v1 import customer_events_pb2, ledger_events_pb2


@dataclass(frozen=True)
class Stream:
    name: str
    subjects: tuple[str, ...]


CUSTOMER_STREAM = Stream("CUSTOMER", ("customer.>",))
LEDGER_STREAM = Stream("LEDGER", ("ledger.>",))
ALERT_STREAM = Stream("ALERT", ("alert.>",))
STREAMS = (CUSTOMER_STREAM, LEDGER_STREAM, ALERT_STREAM)

MEMBER_CREATED = "customer.member.created.v1"
ACCOUNT_OPENED = "ledger.account.opened.v1"

SUBJECT_TYPES: dict[str, type[Message]] = {
    MEMBER_CREATED: customer_events_pb2.MemberCreated,
    ACCOUNT_OPENED: ledger_events_pb2.AccountOpened,
}


def subject_of(message: Message) -> str:
    for subject, cls in SUBJECT_TYPES.items():
        if isinstance(message, cls):
            return subject
    raise KeyError(f"no subject carries {type(message).__name__}")


def decode(subject: str, payload: bytes) -> Message:
    cls = SUBJECT_TYPES[subject]
    message = cls()
    message.ParseFromString(payload)
    return message
