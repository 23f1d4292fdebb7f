"""A service process: health, graceful SIGTERM, start-up without NATS, a second run finds its data."""

from __future__ import annotations

import signal
import time

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.supervisor import Ports, System
from tests.support import identity
from tests.support.inspect import log_text, scalar


def test_health_reflection_and_graceful_sigterm(tmp_path):
    system = System(state_dir=tmp_path, ports=Ports.free())
    try:
        system.start(("nats", "customer"))
        address = system.processes["customer"].address
        with identity.sync_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(service="crowdpack.customer.v1.MemberService"))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
            asked = reflection_pb2.ServerReflectionRequest(list_services="")
            answer = next(reflect.ServerReflectionInfo(iter([asked])))
            names = {s.name for s in answer.list_services_response.service}
            assert "crowdpack.customer.v1.MemberService" in names and "grpc.health.v1.Health" in names

            watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            system.processes["customer"].signal(signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert system.processes["customer"].popen.wait(20) == 0
        assert '"service stopped"' in log_text(system, "customer")
    finally:
        system.stop()


def test_service_without_nats_says_so_and_retries_until_it_comes(tmp_path):
    system = System(state_dir=tmp_path, ports=Ports.free())
    try:
        system.processes["ledger"].start()
        deadline = time.monotonic() + 20
        while "cannot reach dependency" not in log_text(system, "ledger"):
            assert time.monotonic() < deadline and system.processes["ledger"].alive
            time.sleep(0.2)
        line = next(ln for ln in log_text(system, "ledger").splitlines() if "cannot reach dependency" in ln)
        assert "nats://" in line and "Traceback" not in log_text(system, "ledger")
        system.start(("nats",))
        system.wait_ready("ledger", timeout=60)
    finally:
        system.stop()


def test_a_second_run_finds_the_data_of_the_first(tmp_path):
    from crowdpack.customer.v1 import member_service_pb2 as pb
    from crowdpack.customer.v1 import member_service_pb2_grpc as pb_grpc

    for run in range(2):
        system = System(state_dir=tmp_path, ports=Ports.free())
        try:
            system.start(("nats", "customer"))
            with identity.sync_channel(system.processes["customer"].address) as channel:
                stub = pb_grpc.MemberServiceStub(channel)
                stub.CreateMember(pb.CreateMemberRequest(request_id=f"run-{run}", phone=f"1380000000{run}"))
                listed = stub.ListMembers(pb.ListMembersRequest())
            assert len(listed.members) == run + 1
            assert scalar(system, "customer", "SELECT count(*) FROM customer") == run + 1
        finally:
            system.stop()
