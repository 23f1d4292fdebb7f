"""The protos follow the house style (buf style guide, AIP-155/158): checked on the generated descriptors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from crowdpack.alert.v1 import alert_service_pb2
from crowdpack.customer.v1 import (level_service_pb2, member_pb2, member_service_pb2, organization_service_pb2,
                                   settings_service_pb2)
from crowdpack.customer.v1 import business_customer_service_pb2, classification_service_pb2
from crowdpack.events.v1 import alert_events_pb2, customer_events_pb2, ledger_events_pb2
from crowdpack.ledger.v1 import ledger_service_pb2

FILES = [member_service_pb2, organization_service_pb2, level_service_pb2, settings_service_pb2, member_pb2,
         ledger_service_pb2, alert_service_pb2, customer_events_pb2, ledger_events_pb2, alert_events_pb2]
FILES += [business_customer_service_pb2, classification_service_pb2]
FILES += [__import__("crowdpack.customer.v1.import_service_pb2", fromlist=["_"])]
SERVICE_FILES = [f for f in FILES if f.DESCRIPTOR.services_by_name]
READ_PREFIXES = ("Get", "List", "Search", "Check", "Count", "Preview", "Export", "Download", "Verify")
ROOT = Path(__file__).resolve().parents[2]


def all_messages(file):
    def walk(msgs):
        for m in msgs:
            yield m
            yield from walk(m.nested_types)
    return list(walk(file.DESCRIPTOR.message_types_by_name.values()))


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.DESCRIPTOR.name)
def test_package_is_versioned_and_matches_its_directory(file):
    d = file.DESCRIPTOR
    assert d.package.startswith("crowdpack.") and d.package.endswith(".v1")
    assert Path(d.name).parent.as_posix() == d.package.replace(".", "/")


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.DESCRIPTOR.name)
def test_every_enum_starts_with_unspecified_and_prefixes_values(file):
    enums = list(file.DESCRIPTOR.enum_types_by_name.values())
    for m in all_messages(file):
        enums += list(m.enum_types)
    for enum in enums:
        prefix = "".join("_" + c if c.isupper() else c.upper() for c in enum.name).lstrip("_")
        assert enum.values_by_number[0].name == f"{prefix}_UNSPECIFIED"
        assert all(v.name.startswith(prefix + "_") for v in enum.values)


@pytest.mark.parametrize("file", SERVICE_FILES, ids=lambda f: f.DESCRIPTOR.name)
def test_rpcs_have_their_own_request_and_response_and_mutations_carry_request_id(file):
    for service in file.DESCRIPTOR.services_by_name.values():
        assert service.name.endswith("Service")
        for method in service.methods:
            assert method.input_type.name == f"{method.name}Request"
            assert method.output_type.name == f"{method.name}Response"
            if not method.name.startswith(READ_PREFIXES):
                assert "request_id" in method.input_type.fields_by_name, method.full_name
            if method.name.startswith("List"):
                fields = method.input_type.fields_by_name
                assert fields["page_size"].type == FieldDescriptor.TYPE_INT32
                assert "page_token" in fields
                assert "next_page_token" in method.output_type.fields_by_name
                assert method.output_type.fields[0].number == 1 and method.output_type.fields[0].is_repeated


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.DESCRIPTOR.name)
def test_money_is_int64_and_times_are_timestamps(file):
    for m in all_messages(file):
        for f in m.fields:
            if any(word in f.name for word in ("balance", "amount", "fen", "revenue", "limit_fen")):
                assert f.type == FieldDescriptor.TYPE_INT64, f.full_name
            if f.name.endswith("_time"):
                assert f.message_type is not None and f.message_type.full_name == "google.protobuf.Timestamp", \
                    f.full_name


def test_generated_code_is_current(tmp_path):
    """gen/ is not committed; make rebuilds it when a proto changes. This checks the rebuild is complete."""
    protos = sorted(str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos").rglob("*.proto"))
    from google.api import annotations_pb2  # googleapis-common-protos ships google/api/*.proto beside it
    googleapis = Path(annotations_pb2.__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'protos'}", f"-I{googleapis}",
                    f"--python_out={tmp_path}", *protos], check=True, cwd=ROOT / "protos")
    for proto in protos:
        fresh = (tmp_path / proto.replace(".proto", "_pb2.py")).read_text()
        current = (ROOT / "gen" / proto.replace(".proto", "_pb2.py")).read_text()
        assert fresh == current, f"gen/ is stale for {proto}: run 'make protos'"
