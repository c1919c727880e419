"""Shared fixtures: a local stub server (see stubserver.py) and clients pointed at it."""

from __future__ import annotations

from typing import Any

import pytest

from event_client import EventClient
from stubserver import SleepRecorder, StubServer


@pytest.fixture
def stub():
    server = StubServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_client(stub: StubServer, sleeps: SleepRecorder):
    """Build a client pointed at the stub, with recorded sleeps and random() == 0.5."""

    def make(**kwargs: Any) -> EventClient:
        kwargs.setdefault("base_url", stub.url)
        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("sleep", sleeps)
        kwargs.setdefault("random", lambda: 0.5)
        return EventClient(**kwargs)

    return make


@pytest.fixture
def client(make_client) -> EventClient:
    return make_client()
