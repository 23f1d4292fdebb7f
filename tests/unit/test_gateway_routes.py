"""Every RPC of the fronted services has an HTTP mapping, and every mapping is a served route."""

from __future__ import annotations

import re

from starlette.routing import Match

from gateway.app import create_app, routes_of
from gateway.bindings import all_bindings, services, unmapped_methods
from gateway.route_index import MATCHED, RouteIndex


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


def test_the_route_index_finds_the_route_the_router_would_find():
    """Every binding's path (and the same path with another method, or a segment more) goes to the route that
    trying the routes one by one finds first; what no binding serves in full the index leaves to the router."""
    app = create_app()
    routes = app.router.routes
    at = next(i for i, r in enumerate(routes) if isinstance(r, RouteIndex))
    index, behind = routes[at], routes[at + 1:]
    paths = {re.sub(r"\{p\d+\}", value, b.path) for b in all_bindings() for value in ("12", "abc")}
    paths |= {p + "/extra" for p in paths} | {"/v1/nothing", "/v1", "/", "/v1/members/12/"}
    tried = 0
    for path in sorted(paths):
        for method in ("GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"):
            scope = {"type": "http", "method": method, "path": path, "root_path": "", "path_params": {}}
            first = next((r for r in behind if r.matches(scope)[0] is Match.FULL), None)
            match, child = index.matches(scope)
            if first is not None and first in index.routes:
                assert match is Match.FULL and child[MATCHED] is first, (method, path)
                assert child["path_params"] == first.matches(scope)[1]["path_params"]
                tried += 1
            else:
                assert match is Match.NONE, (method, path)
    assert tried >= len(all_bindings())
