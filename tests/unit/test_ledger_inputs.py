"""The ledger's request checks name the field they refuse, inside the request (services/ledger/inputs.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.errors import FailedPrecondition, InvalidArgument
from services.ledger.inputs import parse_posting

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def posting(**fields) -> pb.Posting:
    values = dict(member_id="7", asset=pb.ASSET_POINTS, kind=pb.ENTRY_KIND_EARN, amount=5, mall_id="100")
    return pb.Posting(**(values | fields))


def test_a_good_posting_is_signed_by_its_kind_and_remembers_where_it_sits():
    earn = parse_posting(posting(), "postings[0]", NOW)
    spend = parse_posting(posting(kind=pb.ENTRY_KIND_SPEND, note="  lunch "), "postings[1]", NOW)
    assert (earn.member_id, earn.amount, earn.mall_id, earn.field) == ("7", 5, "100", "postings[0]")
    assert (spend.amount, spend.note, spend.at("amount")) == (-5, "lunch", "postings[1].amount")


@pytest.mark.parametrize(("fields", "field"), [
    ({"member_id": "x1"}, "postings[3].member_id"),
    ({"amount": 0}, "postings[3].amount"),
    ({"kind": 99}, "postings[3].kind"),
    ({"kind": pb.ENTRY_KIND_EXPIRE}, "postings[3].kind"),
    ({"kind": pb.ENTRY_KIND_ADJUST}, "postings[3].direction"),
    ({"asset": pb.ASSET_BALANCE}, "postings[3].asset"),
    ({"store_id": "s-1"}, "postings[3].store_id"),
    ({"note": "n" * 501}, "postings[3].note"),
])
def test_a_bad_field_is_named_within_the_request(fields, field):
    with pytest.raises(InvalidArgument) as raised:
        parse_posting(posting(**fields), "postings[3]", NOW)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_a_document_time_in_the_future_is_refused_by_name():
    message = posting()
    message.document_time.FromDatetime(NOW + timedelta(hours=1))
    with pytest.raises(InvalidArgument, match=r"^posting\.document_time: must not be in the future$"):
        parse_posting(message, "posting", NOW)


def test_an_error_moved_within_a_prefix_keeps_its_kind_and_reason():
    err = FailedPrecondition("is less than 5", field="amount").within("postings[2]")
    assert isinstance(err, FailedPrecondition)
    assert (err.field, err.reason, err.message) == ("postings[2].amount", "is less than 5",
                                                    "postings[2].amount: is less than 5")
    assert InvalidArgument("is empty").within("posting").field == "posting"
