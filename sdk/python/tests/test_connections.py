"""Connections: kept alive between calls, replaced when the server closed them, and an answer the
server sent before it took the whole body is the outcome."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from event_client import ApiError, EventClient, ValidationError
from stubserver import Reply


def kept_alive(request):
    return Reply(202, {"event_id": request.json["event_id"], "status": "accepted"}, keep_alive=True)


def test_calls_share_one_kept_alive_connection(stub, client, sleeps):
    stub.responder = kept_alive
    for _ in range(5):
        client.track_event("c", "e")
    assert len(stub.requests) == 5
    assert len({r.peer for r in stub.requests}) == 1, [r.peer for r in stub.requests]
    assert sleeps.calls == []


def test_each_thread_has_its_own_connection(stub, client):
    stub.responder = kept_alive
    threads = [threading.Thread(target=lambda: [client.track_event("c", "e") for _ in range(3)]) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stub.requests) == 9
    assert len({r.peer for r in stub.requests}) == 3


def test_a_connection_the_server_closed_while_idle_is_replaced_before_use(stub, client, sleeps, monkeypatch):
    event_id = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    stub.queue(Reply(202, {"event_id": event_id, "status": "accepted"}, close_silently=True))
    stub.responder = kept_alive
    exchanges = []
    original = EventClient._exchange
    monkeypatch.setattr(EventClient, "_exchange", staticmethod(lambda *a: exchanges.append(1) or original(*a)))
    client.track_event("c", "e", event_id=event_id)
    time.sleep(0.1)  # the server's close reaches the client's socket
    client.track_event("c", "e")
    assert len(stub.requests) == 2
    assert stub.requests[0].peer != stub.requests[1].peer
    # Noticed before sending: no request went out on the closed connection first.
    assert len(exchanges) == 2
    assert sleeps.calls == []


def test_a_connection_is_not_shared_with_a_forked_child(stub, client):
    stub.responder = kept_alive
    client.track_event("c", "e")
    pid = os.fork()
    if pid == 0:  # the child: its own connection, or the parent's answers could be read here
        try:
            client.track_event("c", "e")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    client.track_event("c", "e")
    peers = [r.peer for r in stub.requests]
    assert len(peers) == 3 and peers[0] == peers[2] != peers[1], peers


def test_a_kept_alive_connection_closed_as_the_request_went_out_is_sent_again_at_once(stub, client, sleeps):
    # The server takes the request on the kept-alive connection and closes without answering (its
    # idle timeout struck as the request arrived): sent once more on a new connection, at once,
    # with the same id, and not counted as a failed attempt.
    stub.queue(Reply(202, {"event_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "status": "accepted"}, keep_alive=True),
               Reply(drop=True))
    stub.responder = kept_alive
    client.track_event("c", "e", event_id="0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    second = client.track_event("c", "e")
    assert [r.json["event_id"] for r in stub.requests[1:]] == [second, second]
    assert stub.requests[0].peer == stub.requests[1].peer != stub.requests[2].peer
    assert sleeps.calls == []


def test_a_fresh_connection_dropped_without_an_answer_is_a_retried_failure(stub, client, sleeps):
    stub.queue(Reply(drop=True))
    stub.responder = kept_alive
    client.track_event("c", "e")
    assert len(stub.requests) == 2
    assert sleeps.calls == [0.05]


def early_answer_server(answer: bytes):
    """A server that reads only the request head, answers, and closes with the body unread (as
    event-api answers 413 to a body over its limit). Its receive buffer is small, so the client's
    upload of a large body cannot all go into the kernel's buffers first."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted = []

    def serve():
        connection, _ = listener.accept()
        accepted.append(connection)
        head = b""
        while b"\r\n\r\n" not in head:
            head += connection.recv(1024)
        connection.sendall(answer)
        connection.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return "http://127.0.0.1:%d" % listener.getsockname()[1], accepted, thread


def test_an_answer_before_the_whole_body_is_the_outcome_not_a_network_failure(make_client, sleeps):
    body = b'{"error":"request body is larger than 65536 bytes","field":null}'
    url, accepted, thread = early_answer_server(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: close\r\nX-Request-Id: r\r\n\r\n%s" % (len(body), body)
    )
    client = make_client(base_url=url)
    with pytest.raises(ApiError) as raised:
        client.track_event("c", "e", input="x" * 1_000_000)
    thread.join(5)
    assert (raised.value.status, str(raised.value.args[0])) == (413, "request body is larger than 65536 bytes")
    assert len(accepted) == 1 and sleeps.calls == []


def test_a_single_event_no_server_can_take_is_refused_before_sending(stub, client):
    # 1048576 bytes is the largest API_MAX_BODY_BYTES a server can have.
    with pytest.raises(ValidationError) as raised:
        client.track_event("c", "e", input="x" * 1_048_576, event_id="0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    assert raised.value.args[0] == "the request body is 1048717 bytes of JSON, over the 1048576-byte limit of a single-event write"
    assert raised.value.status is None
    with pytest.raises(ValidationError) as raised:
        client.update_event("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", output="y" * 1_048_576)
    assert raised.value.args[0] == "the request body is 1048589 bytes of JSON, over the 1048576-byte limit of a single-event write"
    assert stub.requests == []


@pytest.mark.parametrize("url,host,port", [
    ("http://[::1]", "::1", 80), ("https://[::1]/api", "::1", 443), ("http://[::1]:8080", "::1", 8080),
    ("http://localhost", "localhost", 80),
])
def test_a_url_without_a_port_gets_its_schemes_default(url, host, port):
    # Found in review: http://[::1] went to host ":" port 1 (http.client splits "::1" itself).
    connection, _ = EventClient(url)._connection()
    assert (connection.host, connection.port) == (host, port)
