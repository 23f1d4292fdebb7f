"""The console's API client: how an RPC call becomes the gateway's HTTP request, and errors come back."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway.console import api
from gateway.console.api import ApiError, Route, build_request, flatten_query
from gateway.console.widgets import fen_from_yuan, yuan, yuan_text


@pytest.fixture
def fake_routes(monkeypatch):
    table = {
        "S.Get": [Route("GET", "/v1/things/{thing_id}", "")],
        "S.List": [Route("GET", "/v1/things", ""), Route("POST", "/v1/things:search", "*")],
        "S.Update": [Route("PATCH", "/v1/things/{thing.thing_id}", "*")],
        "S.Move": [Route("POST", "/v1/groups/{group_id}:move", "ids")],
    }
    monkeypatch.setattr(api, "routes", lambda: table)
    return table


def test_path_variables_are_taken_from_the_request_and_escaped(fake_routes):
    method, path, query, body = build_request("S.Get", {"thing_id": "a/b c", "view": "FULL"})
    assert (method, path, body) == ("GET", "/v1/things/a%2Fb%20c", None)
    assert query == [("view", "FULL")]


def test_query_strings_flatten_nested_and_repeated_fields():
    pairs = flatten_query({"filter": {"search": "王", "levels": [1, 2], "crowd_mall_id": ""}, "ascending": True,
                           "page_size": 20})
    assert pairs == [("filter.search", "王"), ("filter.levels", "1"), ("filter.levels", "2"),
                     ("ascending", "true"), ("page_size", "20")]


def test_a_request_with_repeated_messages_takes_the_binding_with_a_body(fake_routes):
    simple = build_request("S.List", {"filter": {"levels": [1]}})
    assert simple[:2] == ("GET", "/v1/things")
    crowd = {"filter": {"crowd": {"groups": [{"conditions": [{"gender": {"genders": ["GENDER_MALE"]}}]}]}}}
    method, path, query, body = build_request("S.List", crowd)
    assert (method, path, query, body) == ("POST", "/v1/things:search", [], crowd)


def test_a_nested_path_variable_leaves_the_rest_of_the_body(fake_routes):
    method, path, _, body = build_request("S.Update", {"thing": {"thing_id": "7", "name": "x"}, "update_mask": "name"})
    assert (method, path) == ("PATCH", "/v1/things/7")
    assert body == {"thing": {"name": "x"}, "update_mask": "name"}


def test_a_body_field_binding_sends_that_field_and_queries_the_rest(fake_routes):
    method, path, query, body = build_request("S.Move", {"group_id": "g1", "ids": ["1", "2"], "request_id": "r"})
    assert (method, path, query, body) == ("POST", "/v1/groups/g1:move", [("request_id", "r")], ["1", "2"])


def test_an_rpc_without_a_route_is_a_clear_error(fake_routes):
    with pytest.raises(ApiError) as err:
        build_request("S.Nothing", {})
    assert err.value.status == 404 and "S.Nothing" in err.value.message


def test_the_gateway_routes_are_read_from_the_descriptors():
    table = api.routes()
    assert table["MemberService.GetMember"][0].path == "/v1/members/{member_id}"
    assert table["LedgerService.AdjustBalance"][0].method == "POST"


def test_errors_name_their_field_from_either_error_shape():
    plain = httpx.Response(400, json={"error": {"code": "INVALID_ARGUMENT", "message": "phone: bad", "field": "phone"}})
    status = httpx.Response(400, json={"error": {"code": 3, "message": "bad", "details": [
        {"fieldViolations": [{"field": "filter.levels", "description": "bad"}]}]}})
    assert api._error_of(plain).field == "phone"
    assert api._error_of(status).field == "filter.levels"
    assert api._error_of(httpx.Response(502, text="<html>")).status == 502


def test_csv_answers_come_back_as_bytes_with_their_counts():
    response = httpx.Response(200, content="\ufeffa,b\n".encode(), headers={
        "content-type": "text/csv; charset=utf-8", "x-row-count": "1", "x-truncated": "true"})
    assert api._answer(response) == {"csv": "\ufeffa,b\n".encode(), "row_count": 1, "truncated": True}


@pytest.mark.parametrize(("typed", "fen"), [("12.5", 1250), ("0.01", 1), ("100", 10000), (" 3 ", 300)])
def test_yuan_typed_by_a_person_becomes_exact_fen(typed, fen):
    assert fen_from_yuan(typed) == fen


@pytest.mark.parametrize("typed", ["0.001", "abc", "1e-3"])
def test_yuan_with_fractions_of_a_fen_is_refused(typed):
    with pytest.raises(ValueError):
        fen_from_yuan(typed)


def test_fen_are_shown_as_yuan_exactly():
    assert yuan(123456789) == "¥1,234,567.89"
    assert yuan(-5) == "-¥0.05"
    assert yuan_text(1250) == "12.50"


def counting_app(seen: list[str]):
    """An ASGI app answering every request with its path as JSON (404 for /v1/things/missing), counting them."""
    async def app(scope, receive, send):
        seen.append(scope["path"])
        missing = scope["path"].endswith("/missing")
        body = (b'{"error": {"code": "NOT_FOUND", "message": "thing_id: no thing", "reason": "NOT_FOUND", '
                b'"field": "thing_id"}}' if missing else b'{"path": "%s"}' % scope["path"].encode())
        await send({"type": "http.response.start", "status": 404 if missing else 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
    return app


async def test_prefetched_answers_serve_the_same_call_once_then_it_asks_again(fake_routes):
    seen: list[str] = []
    client = api.Api(counting_app(seen))
    await client.prefetch([("S.Get", {"thing_id": thing}) for thing in ("1", "2", "missing")])
    assert sorted(seen) == ["/v1/things/1", "/v1/things/2", "/v1/things/missing"]
    assert await client.call("S.Get", {"thing_id": "2"}) == {"path": "/v1/things/2"}
    with pytest.raises(ApiError) as err:  # a kept error is raised where the page makes the call, with its field
        await client.call("S.Get", {"thing_id": "missing"})
    assert err.value.field == "thing_id"
    assert len(seen) == 3  # both answered from what was kept
    await client.call("S.Get", {"thing_id": "2"})
    await client.call("S.Get", {"thing_id": "3"})
    assert seen[3:] == ["/v1/things/2", "/v1/things/3"]  # taken once; an unprefetched call goes out


async def test_a_remembered_list_is_asked_once_a_minute_and_forgotten_on_the_persons_change(fake_routes, monkeypatch):
    seen: list[str] = []
    memory: dict = {}
    client = api.Api(counting_app(seen), memory=memory)
    first = await client.call_remembered("S.Get", {"thing_id": "1"})
    await client.prefetch([("S.Get", {"thing_id": "1"})])  # remembered: not asked again
    assert await client.call_remembered("S.Get", {"thing_id": "1"}) == first
    assert api.Api(counting_app(seen), memory=memory) and len(seen) == 1
    await client.call("S.Move", {"group_id": "g", "ids": ["1"]})  # a change forgets every list
    await client.call_remembered("S.Get", {"thing_id": "1"})
    assert seen == ["/v1/things/1", "/v1/groups/g:move", "/v1/things/1"]
    monkeypatch.setattr(api, "REMEMBER_S", 0.0)  # older than REMEMBER_S: still given, and asked anew behind it
    assert await client.call_remembered("S.Get", {"thing_id": "1"}) == first
    await asyncio.gather(*client._refreshing.values())
    assert len(seen) == 4 and not client._refreshing
    monkeypatch.setattr(api, "FORGET_S", 0.0)  # older than FORGET_S: the page waits for a new answer
    await client.call_remembered("S.Get", {"thing_id": "1"})
    assert len(seen) == 5
