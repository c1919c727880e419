"""Compressed request bodies: `Content-Encoding: gzip` on the writes (the single-event ones, served
by the fast write path, and the batch, served by the router), the limits on the decompressed body,
and the exact answer to a coding the server does not read."""

from __future__ import annotations

import gzip
import json
import os
import socket
import uuid
import zlib

import pytest

from api_support import api_instance, assert_error, closed_within, post_raw, unique, wait_for_conversation, wait_for_event

GZIP = {"Content-Encoding": "gzip"}


def gz(value) -> bytes:
    return gzip.compress(json.dumps(value).encode())


def test_gzip_create_update_and_batch_are_stored_exactly(api):
    conversation = unique("gzip")
    created = api.post("/event/", raw=gz({"conversation_id": conversation, "event_name": "single", "input": "é" * 300,
                                          "latency": 12.5}), headers=GZIP)
    assert created.status == 202, created
    event_id = created.json["event_id"]
    updated = api.put("/event/" + event_id, raw=gz({"output": "gzip update", "error": True}), headers=GZIP)
    assert updated.json == {"event_id": event_id, "status": "accepted"}, updated
    batch = api.post("/events/batch", raw=gz({"events": [{"conversation_id": conversation, "event_name": "batch-%d" % n,
                                                          "input": "x" * 1000} for n in range(50)]}),
                     headers={"Content-Encoding": "GZIP"})  # codings are case-insensitive
    assert batch.status == 207 and batch.json["accepted"] == 50, batch
    event = wait_for_event(api, event_id, lambda e: e["output"] == "gzip update", "the gzip update")
    assert (event["input"], event["latency"], event["error"], event["event_name"]) == ("é" * 300, 12.5, True, "single")
    events = wait_for_conversation(api, conversation, 51)
    assert sorted(e["event_name"] for e in events if e["event_name"] != "single") == sorted("batch-%d" % n for n in range(50))
    assert all(e["input"] == "x" * 1000 for e in events if e["event_name"] != "single")


@pytest.mark.parametrize("header", ["x-gzip", "identity, gzip", "gzip, identity"])
def test_gzip_spellings(api, header):
    response = api.post("/event/", raw=gz({"conversation_id": unique("gzip-spelling"), "event_name": "e"}),
                        headers={"Content-Encoding": header})
    assert response.status == 202, response


@pytest.mark.parametrize("header", ["identity", ""])
def test_identity_is_plain_json(api, header):
    response = api.post("/event/", {"conversation_id": unique("identity"), "event_name": "e"}, headers={"Content-Encoding": header})
    assert response.status == 202, response


@pytest.mark.parametrize("path", ["/event/", "/event/%s" % uuid.UUID(int=7), "/events/batch"])
@pytest.mark.parametrize("header", ["br", "deflate", "zstd", "gzip, gzip", "gzip, br"])
def test_other_codings_are_415_with_accept_encoding(api, path, header):
    method = "PUT" if path.startswith("/event/") and path != "/event/" else "POST"
    response = api.request(method, path, raw=b'{"conversation_id":"c","event_name":"e"}', headers={"Content-Encoding": header})
    assert_error(response, 415, "unsupported Content-Encoding: %s (this server accepts gzip, or none)" % header, None)
    assert response.header("Accept-Encoding") == "gzip"


def test_delete_ignores_the_coding(api):
    event_id = str(uuid.uuid4())
    response = api.delete("/event/" + event_id, headers={"Content-Encoding": "br"})
    assert response.json == {"event_id": event_id, "status": "accepted"}, response


BAD_GZIP = [
    (b'{"conversation_id":"c","event_name":"e"}', "invalid gzip body: incorrect header check"),
    (zlib.compress(b'{"conversation_id":"c","event_name":"e"}'), "invalid gzip body: incorrect header check"),
    (gzip.compress(b'{"conversation_id":"c","event_name":"e"}')[:20], "invalid gzip body: it ends early"),
    (gzip.compress(b'{"conversation_id":"c","event_name":"e"}') + b"xyz", "invalid gzip body: 3 bytes after its end"),
    (gzip.compress(b"{")[:-8] + b"\0\0\0\0\1\0\0\0", "invalid gzip body: incorrect data check"),
]


@pytest.mark.parametrize("body,message", BAD_GZIP)
@pytest.mark.parametrize("path", ["/event/", "/events/batch"])
def test_bad_gzip_is_400(api, path, body, message):
    assert_error(api.post(path, raw=body, headers=GZIP), 400, message, None)


def test_decompressed_json_errors_are_the_plain_ones(api):
    assert_error(api.post("/event/", raw=gzip.compress(b'{"conversation_id":"c"'), headers=GZIP),
                 400, "malformed JSON: unexpected end of JSON at byte 22", None)
    assert_error(api.post("/event/", raw=gzip.compress(b""), headers=GZIP), 400, "request body is empty", None)
    assert_error(api.post("/event/", raw=b"", headers=GZIP), 400, "request body is empty", None)
    assert_error(api.post("/event/", raw=gz({"conversation_id": "c"}), headers=GZIP), 400, "field is required", "event_name")


def test_members_and_padding(api):
    conversation = unique("gzip-members")
    body = (gzip.compress(b'{"conversation_id":"%s",' % conversation.encode())
            + gzip.compress(b'"event_name":"two members"}') + b"\0" * 16)
    response = api.post("/event/", raw=body, headers=GZIP)
    assert response.status == 202, response
    assert wait_for_conversation(api, conversation, 1)[0]["event_name"] == "two members"


@pytest.fixture(scope="module")
def small_limit_api():
    """An event-api with API_MAX_BODY_BYTES=4096 and an API key."""
    yield from api_instance("gzip-limit", {"API_MAX_BODY_BYTES": "4096", "API_KEYS": "gzip-key"})


def event_of_size(size: int) -> bytes:
    head = json.dumps({"conversation_id": unique("gzip-big"), "event_name": "big", "input": ""}).encode()[:-2]
    body = head + b"x" * (size - len(head) - 2) + b'"}'
    assert len(body) == size
    return body


def test_the_limit_holds_for_the_decompressed_body(small_limit_api):
    api = small_limit_api.api("gzip-key")
    assert api.post("/event/", raw=gzip.compress(event_of_size(4096)), headers=GZIP).status == 202
    # Small on the wire, over the limit once inflated: refused without inflating the rest (the
    # connection stays usable, the body was read in full).
    over = gzip.compress(event_of_size(4097))
    assert len(over) < 200
    assert_error(api.post("/event/", raw=over, headers=GZIP), 413, "request body is larger than 4096 bytes once decompressed", None)
    bomb = gzip.compress(b"[" + b" " * (100 << 20) + b"]")
    assert len(bomb) < 200 << 10
    response = api.post("/events/batch", raw=bomb, headers=GZIP)
    assert_error(response, 413, "request body is larger than 5242880 bytes once decompressed", None)
    assert response.header("Connection") != "close"


def test_the_limit_holds_for_the_body_as_sent(small_limit_api):
    api = small_limit_api.api("gzip-key")
    incompressible = gzip.compress(os.urandom(6000))
    assert len(incompressible) > 4096
    status, _, body = post_raw(api, "/event/", incompressible, extra_headers="Content-Encoding: gzip\r\n")
    assert (status, json.loads(body)) == (413, {"error": "request body is larger than 4096 bytes", "field": None})


def test_the_key_is_checked_before_the_coding(small_limit_api):
    for path in ("/event/", "/events/batch"):
        response = small_limit_api.api().post(path, raw=b"{}", headers={"Content-Encoding": "br"})
        assert_error(response, 401, "missing bearer token", None)
        response = small_limit_api.api("gzip-key").post(path, raw=b"{}", headers={"Content-Encoding": "br"})
        assert_error(response, 415, "unsupported Content-Encoding: br (this server accepts gzip, or none)", None)


def test_the_coding_is_refused_before_the_body_is_read(api):
    # A 415 rather than the 413 the declared length would earn, answered at once: the body is not
    # asked for behind `Expect: 100-continue`, and the connection closes.
    status, headers, body = post_raw(api, "/event/", b"x" * (2 << 20), extra_headers="Content-Encoding: br\r\n")
    assert (status, json.loads(body)["error"]) == (415, "unsupported Content-Encoding: br (this server accepts gzip, or none)")
    with socket.create_connection((api.host, api.port), timeout=10) as sock:
        sock.sendall(b"POST /event/ HTTP/1.1\r\nHost: x\r\nContent-Encoding: br\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n")
        closed, received = closed_within(sock, 5)
    assert closed and received.startswith(b"HTTP/1.1 415 Unsupported Media Type\r\n"), received[:300]
    assert b"\r\nConnection: close\r\n" in received and b"100 Continue" not in received, received[:300]
