"""The event catalogue: JetStream streams, their subjects, and the protobuf type each subject carries.

Subjects are ``<owner>.<entity>.<verb>.v<version>``; each owning service has one stream
named after it in upper case. Every stream keeps a two-minute duplicate window, so a
message republished with the same ``Nats-Msg-Id`` (the outbox id) is stored once.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from crowdpack.events.v1 import alert_events_pb2, customer_events_pb2, ledger_events_pb2


@dataclass(frozen=True)
class Stream:
    name: str
    subjects: tuple[str, ...]


CUSTOMER_STREAM = Stream("CUSTOMER", ("customer.>",))
LEDGER_STREAM = Stream("LEDGER", ("ledger.>",))
ALERT_STREAM = Stream("ALERT", ("alert.>",))
STREAMS = (CUSTOMER_STREAM, LEDGER_STREAM, ALERT_STREAM)

# customer
MEMBER_CREATED = "customer.member.created.v1"
MEMBER_STATUS_CHANGED = "customer.member.status_changed.v1"
MEMBER_LEVEL_CHANGED = "customer.member.level_changed.v1"
MEMBER_UPDATED = "customer.member.updated.v1"
MEMBER_CARD_OPENED = "customer.member.card_opened.v1"
MEMBER_ACTIVITY_CHANGED = "customer.member.activity_changed.v1"  # no longer published (MEMBERS_ACTIVITY_CHANGED)
MEMBERS_ACTIVITY_CHANGED = "customer.members.activity_changed.v1"
TAG_ADDED = "customer.tag.added.v1"
TAG_REMOVED = "customer.tag.removed.v1"
IMPORT_COMPLETED = "customer.import.completed.v1"
MEMBERS_IMPORTED = "customer.members.imported.v1"
MALL_CHANGED = "customer.mall.changed.v1"
STORE_CHANGED = "customer.store.changed.v1"
BUSINESS_OWNER_CHANGED = "customer.business.owner_changed.v1"
BUSINESS_FOLLOWED_UP = "customer.business.followed_up.v1"
TRANSFER_APPLICATION_CREATED = "customer.transfer_application.created.v1"
TRANSFER_APPLICATION_DECIDED = "customer.transfer_application.decided.v1"
# ledger
ACCOUNT_OPENED = "ledger.account.opened.v1"
ACCOUNTS_OPENED = "ledger.accounts.opened.v1"
ENTRY_POSTED = "ledger.entry.posted.v1"
ENTRIES_POSTED = "ledger.entries.posted.v1"
ORDER_RECORDED = "ledger.order.recorded.v1"
ORDER_REFUNDED = "ledger.order.refunded.v1"
VOUCHER_REDEEMED = "ledger.voucher.redeemed.v1"
# alert
ALERT_RAISED = "alert.alert.raised.v1"
DIGEST_CREATED = "alert.digest.created.v1"

SUBJECT_TYPES: dict[str, type[Message]] = {
    MEMBER_CREATED: customer_events_pb2.MemberCreated,
    MEMBER_STATUS_CHANGED: customer_events_pb2.MemberStatusChanged,
    MEMBER_LEVEL_CHANGED: customer_events_pb2.MemberLevelChanged,
    MEMBER_UPDATED: customer_events_pb2.MemberUpdated,
    MEMBER_CARD_OPENED: customer_events_pb2.MemberCardOpened,
    MEMBER_ACTIVITY_CHANGED: customer_events_pb2.MemberActivityChanged,
    MEMBERS_ACTIVITY_CHANGED: customer_events_pb2.MembersActivityChanged,
    ACCOUNT_OPENED: ledger_events_pb2.AccountOpened,
    ACCOUNTS_OPENED: ledger_events_pb2.AccountsOpened,
    ENTRY_POSTED: ledger_events_pb2.EntryPosted,
    ENTRIES_POSTED: ledger_events_pb2.EntriesPosted,
    ORDER_RECORDED: ledger_events_pb2.OrderRecorded,
    ORDER_REFUNDED: ledger_events_pb2.OrderRefunded,
    VOUCHER_REDEEMED: ledger_events_pb2.VoucherRedeemed,
    TAG_ADDED: customer_events_pb2.CustomerTagged,
    TAG_REMOVED: customer_events_pb2.CustomerUntagged,
    IMPORT_COMPLETED: customer_events_pb2.ImportCompleted,
    MEMBERS_IMPORTED: customer_events_pb2.MembersImported,
    MALL_CHANGED: customer_events_pb2.MallChanged,
    STORE_CHANGED: customer_events_pb2.StoreChanged,
    BUSINESS_OWNER_CHANGED: customer_events_pb2.BusinessOwnerChanged,
    BUSINESS_FOLLOWED_UP: customer_events_pb2.BusinessFollowedUp,
    TRANSFER_APPLICATION_CREATED: customer_events_pb2.TransferApplicationCreated,
    TRANSFER_APPLICATION_DECIDED: customer_events_pb2.TransferApplicationDecided,
    ALERT_RAISED: alert_events_pb2.AlertRaised,
    DIGEST_CREATED: alert_events_pb2.DigestCreated,
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
