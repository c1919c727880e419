"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import re
import uuid


def test_health(api):
    response = api.get("/health")
    assert (response.status, response.json) == (200, {"status": "ok"})
    assert response.header("Content-Type") == "application/json"


def test_ready(api):
    response = api.get("/ready")
    assert (response.status, response.json) == (200, {"status": "ready", "clickhouse": "ok", "kafka": "ok"})
    assert response.header("Retry-After") is None


def test_metrics_count_requests_by_route_pattern(api):
    api.get("/event/%s" % uuid.uuid4())
    api.get("/no/such/route")
    response = api.get("/metrics")
    assert response.status == 200
    assert response.header("Content-Type").startswith("text/plain")
    text = response.body.decode()
    assert re.search(r'^http_requests_total\{[^}]*route="/event/:id"[^}]*status="404"[^}]*\} [1-9]', text, re.M), text[:2000]
    assert re.search(r'^http_requests_total\{[^}]*route="unknown"[^}]*\} [1-9]', text, re.M)
    assert not any(re.match(r"/event/[0-9a-f-]{36}", route) for route in re.findall(r'route="([^"]*)"', text))


def test_openapi_document(api):
    response = api.get("/openapi.yaml")
    assert response.status == 200
    assert response.header("Content-Type") == "application/yaml"
    text = response.body.decode()
    assert text.startswith("openapi: 3.1")
    for path in ("/event/:", "/event/{id}:", "/events/batch:", "/events/conversation/{conversation_id}:",
                 "/analytics/errors:", "/analytics/latency:", "/analytics/sessions/top-errors:", "/health:", "/ready:",
                 "/metrics:", "/openapi.yaml:"):
        assert "\n  %s\n" % path in text, path
