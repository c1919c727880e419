"""X-Request-Id: echoed when the request has an acceptable one, generated otherwise, on every response."""

from __future__ import annotations

import uuid

import pytest

from api_support import UUID_RE, unique

ROUTES = [
    ("GET", "/health", None, 200),
    ("GET", "/ready", None, 200),
    ("GET", "/metrics", None, 200),
    ("GET", "/openapi.yaml", None, 200),
    ("GET", "/analytics/latency?limit=1", None, 200),
    ("GET", "/event/%s" % uuid.uuid4(), None, 404),
    ("GET", "/event/nope", None, 400),
    ("GET", "/no/such/route", None, 404),
    ("PATCH", "/health", None, 405),
    ("POST", "/event/", {"conversation_id": unique("request-id"), "event_name": "rid"}, 202),
    ("POST", "/event/", {"colour": "blue"}, 400),
    ("POST", "/events/batch", {"events": [{"conversation_id": unique("request-id"), "event_name": "rid"}]}, 207),
]


@pytest.mark.parametrize("method,path,body,status", ROUTES, ids=["%s %s" % (m, p) for m, p, _, _ in ROUTES])
def test_request_id_is_echoed(api, method, path, body, status):
    given = "test-%s" % uuid.uuid4()
    response = api.request(method, path, body=body, headers={"X-Request-Id": given})
    assert response.status == status, response
    assert response.headers.get_all("X-Request-Id") == [given]


@pytest.mark.parametrize("method,path,body,status", ROUTES, ids=["%s %s" % (m, p) for m, p, _, _ in ROUTES])
def test_request_id_is_generated(api, method, path, body, status):
    first = api.request(method, path, body=body)
    second = api.request(method, path, body=body)
    assert (first.status, second.status) == (status, status)
    ids = [first.header("X-Request-Id"), second.header("X-Request-Id")]
    assert all(i and UUID_RE.match(i) for i in ids), ids
    assert ids[0] != ids[1]


@pytest.mark.parametrize("given", ["x" * 129, "has space", "tab\there", "ünïcode".encode().decode("latin-1")])
def test_unacceptable_request_id_is_replaced(api, given):
    response = api.get("/health", headers={"X-Request-Id": given})
    assert response.status == 200
    assert UUID_RE.match(response.header("X-Request-Id")), response.header("X-Request-Id")


def test_longest_acceptable_request_id(api):
    given = "r" * 128
    assert api.get("/health", headers={"X-Request-Id": given}).header("X-Request-Id") == given
    odd = "!#$%&'*+-.^_`|~0aZ"
    assert api.get("/health", headers={"X-Request-Id": odd}).header("X-Request-Id") == odd
