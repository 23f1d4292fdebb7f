"""Contacts of business customers: field rules, the one primary contact, the proto view.

Each customer has at most one primary contact. Making a contact primary first clears the
customer's old primary in the same transaction, then sets the new one; the partial unique
index ``uq_contact_primary`` (customer_id WHERE is_primary) makes a second primary impossible
even for concurrent writers.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf.message import Message

from crowdpack.customer.v1 import business_customer_service_pb2 as pb
from services.common.errors import InvalidArgument
from services.common.validation import bounded_text, to_timestamp
from services.customer.business.fields import required_text
from services.customer.business.models import Contact
from services.customer.validation import normalize_email, normalize_phone, parse_birthday

TEXT_FIELDS = {"title": 50, "department": 50, "wechat": 64, "hobbies": 200, "notes": 2000}
# Digits with the usual separators: "010-12345678", "0755 1234 5678", "+86-10-12345678", "(021)12345678-801".
LANDLINE = re.compile(r"^\+?[0-9()][0-9()\- ]{3,28}[0-9]$")
CONTACT_FIELDS = frozenset({"name", "mobile", "landline", "email", "birthday", "is_primary", *TEXT_FIELDS})
UPDATABLE = CONTACT_FIELDS


def landline(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        return ""
    digits = sum(c.isdigit() for c in value)
    if not LANDLINE.match(value) or not 7 <= digits <= 20:
        raise InvalidArgument("must be a phone number with its area code, e.g. 010-12345678", field=field)
    return value


def contact_values(source: Message, paths: set[str], prefix: str = "") -> dict[str, Any]:
    """Validated column values for the named contact fields of ``source``."""
    values: dict[str, Any] = {}
    for path in sorted(paths):
        field = prefix + path
        raw = getattr(source, path)
        if path == "name":
            values["name"] = required_text(raw, field, 50)
        elif path in TEXT_FIELDS:
            values[path] = bounded_text(raw, field, TEXT_FIELDS[path])
        elif path == "mobile":
            values["mobile"] = normalize_phone(raw, field)
        elif path == "landline":
            values["landline"] = landline(raw, field)
        elif path == "email":
            values["email"] = normalize_email(raw, field)
        elif path == "birthday":
            values["birthday"] = parse_birthday(raw, field)
        elif path == "is_primary":
            values["is_primary"] = bool(raw)
    return values


def contact_to_proto(c: Contact, customer_name: str = "") -> pb.Contact:
    return pb.Contact(
        contact_id=str(c.id), customer_id=str(c.customer_id), name=c.name, title=c.title, department=c.department,
        mobile=c.mobile or "", landline=c.landline, email=c.email or "", wechat=c.wechat,
        birthday=c.birthday.isoformat() if c.birthday else "", hobbies=c.hobbies, notes=c.notes,
        is_primary=c.is_primary, create_time=to_timestamp(c.created_at), update_time=to_timestamp(c.updated_at),
        customer_name=customer_name)
