"""Every RPC of the fronted services has an HTTP mapping, and every mapping is a served route."""

from __future__ import annotations

from gateway.app import create_app, routes_of
from gateway.bindings import all_bindings, services, unmapped_methods


def test_every_rpc_has_an_http_mapping():
    assert services(), "no services found: are the protos generated?"
    assert unmapped_methods() == []


def test_every_mapping_is_a_served_route_and_in_the_openapi_document():
    app = create_app()
    served = set(routes_of(app))
    bindings = all_bindings()
    missing = [(b.verb, b.path) for b in bindings if (b.verb, b.path) not in served]
    assert missing == []
    rpcs = {m.full_name for service, _ in services() for m in service.methods}
    assert {b.method.full_name for b in bindings} == rpcs
    from gateway import openapi

    document = openapi.document(bindings)
    operations = {(verb.upper(), path) for path, ops in document["paths"].items() for verb in ops}
    assert operations == {(b.verb, openapi.openapi_path(b)) for b in bindings}
