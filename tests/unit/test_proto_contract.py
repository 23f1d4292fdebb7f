"""The protos' contract. ``make check`` runs buf (lint, and breaking against protos/released.binpb); these tests
prove that check bites, keep the house rules buf has no rule for, and that gen/ is current."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.api import annotations_pb2
from google.protobuf.descriptor import FieldDescriptor

ROOT = Path(__file__).resolve().parents[2]
BUF = Path(sys.executable).parent / "buf"
COMMON_PROTOS = Path(annotations_pb2.__file__).parents[2]  # googleapis-common-protos ships google/api/*.proto
READ_PREFIXES = ("Get", "List", "Search", "Check", "Count", "Preview", "Export", "Download", "Verify")
# Sign-in calls issue fresh secrets: a repeat must never be answered from a stored copy of the tokens.
NOT_IDEMPOTENT = {"CreateSession", "RefreshSession", "RevokeSession", "CreateMemberSession"}
# Lists bounded by a rule (at most 20 alert rules per mall) answer in one page.
UNPAGED = {"crowdpack.alert.v1.AlertService.ListAlertRules"}


def proto_modules() -> list:
    found = []
    for package in ("crowdpack.customer.v1", "crowdpack.ledger.v1", "crowdpack.alert.v1", "crowdpack.events.v1"):
        folder = importlib.import_module(package)
        found += [importlib.import_module(f"{package}.{m.name}") for m in pkgutil.iter_modules(folder.__path__)
                  if m.name.endswith("_pb2")]
    return found


MODULES = proto_modules()


def image(protos: Path, out: Path) -> Path:
    files = sorted(str(p.relative_to(protos)) for p in protos.rglob("*.proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{protos}", f"-I{COMMON_PROTOS}",
                    "--include_imports", f"--descriptor_set_out={out}", *files], check=True, cwd=protos,
                   capture_output=True)
    return out


def breaking(current: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BUF), "breaking", str(current), "--against", str(ROOT / "protos" / "released.binpb"),
                           "--config", str(ROOT / "buf.yaml"), "--path", "crowdpack"],
                          capture_output=True, text=True, cwd=ROOT)


def test_buf_breaking_refuses_a_renumbered_field_and_accepts_the_current_protos(tmp_path):
    assert breaking(image(ROOT / "protos", tmp_path / "current.binpb")).returncode == 0
    copy = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", copy)
    ledger = copy / "crowdpack" / "ledger" / "v1" / "ledger_service.proto"
    text = ledger.read_text()
    assert "string member_id = 1;" in text
    ledger.write_text(text.replace("string member_id = 1;", "string member_id = 99;", 1))
    broken = breaking(image(copy, tmp_path / "broken.binpb"))
    assert broken.returncode != 0 and "member_id" in broken.stdout + broken.stderr


@pytest.mark.parametrize("module", [m for m in MODULES if m.DESCRIPTOR.services_by_name],
                         ids=lambda m: m.DESCRIPTOR.name)
def test_mutations_carry_request_id_and_lists_page(module):
    for service in module.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            if not method.name.startswith(READ_PREFIXES) and method.name not in NOT_IDEMPOTENT:
                assert "request_id" in method.input_type.fields_by_name, method.full_name
            if method.name.startswith("List") and method.full_name not in UNPAGED:
                fields = method.input_type.fields_by_name
                assert fields["page_size"].type == FieldDescriptor.TYPE_INT32, method.full_name
                assert "page_token" in fields and "next_page_token" in method.output_type.fields_by_name
                assert method.output_type.fields[0].number == 1 and method.output_type.fields[0].is_repeated


NUMBERS = {FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT32,
           FieldDescriptor.CPPTYPE_UINT64, FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT}


def leaves(message, seen=None):
    seen = seen if seen is not None else set()
    for field in message.fields:
        if field.message_type is None:
            yield field
        elif field.message_type.full_name not in seen and not field.message_type.full_name.startswith("google."):
            seen.add(field.message_type.full_name)
            yield from leaves(field.message_type, seen)


def all_messages(module):
    def walk(msgs):
        for m in msgs:
            yield m
            yield from walk(m.nested_types)
    return list(walk(module.DESCRIPTOR.message_types_by_name.values()))


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.DESCRIPTOR.name)
def test_money_is_int64_and_times_are_timestamps(module):
    for m in all_messages(module):
        for f in m.fields:
            if any(word in f.name for word in ("balance", "amount", "fen", "revenue", "limit_fen")):
                if f.message_type is not None:  # a range of money (or a condition on one): its numbers are int64
                    assert all(b.type == FieldDescriptor.TYPE_INT64 for b in leaves(f.message_type)
                               if b.cpp_type in NUMBERS), f.full_name
                else:
                    assert f.type == FieldDescriptor.TYPE_INT64, f.full_name
            if f.name.endswith("_time"):  # a time, or a crowd condition on one
                assert f.message_type is not None and (f.message_type.full_name == "google.protobuf.Timestamp"
                                                       or f.message_type.name.endswith("Condition")), f.full_name


def test_generated_code_is_current(tmp_path):
    """gen/ is not committed; make rebuilds it when a proto changes. This checks the rebuild is complete."""
    protos = sorted(str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos").rglob("*.proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'protos'}", f"-I{COMMON_PROTOS}",
                    f"--python_out={tmp_path}", *protos], check=True, cwd=ROOT / "protos")
    for proto in protos:
        fresh = (tmp_path / proto.replace(".proto", "_pb2.py")).read_text()
        current = (ROOT / "gen" / proto.replace(".proto", "_pb2.py")).read_text()
        assert fresh == current, f"gen/ is stale for {proto}: run 'make protos'"
