"""Schemathesis against the app's own OpenAPI document, with a bounded number of examples per
route (it runs in `make test`): whatever a client sends, no 5xx, every 4xx in the JSON error
shape, every status the document declares (400, not FastAPI's 422), and a 405 whose Allow
header lists every method of the path."""

from __future__ import annotations

from pathlib import Path

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, status_code_conformance

from postroom.config import Settings

from web_support import AUTH, serving


def test_no_server_errors_and_only_json_errors(tmp_path: Path) -> None:
    config = Settings.model_validate(
        {
            "dsn": f"sqlite:///{tmp_path / 'postroom.db'}",
            "secrets": {"default": ["a-fuzzing-secret-that-is-long-enough"]},
            "courier": {"outbox_path": str(tmp_path / "outbox")},
            "tenants": {"acme": {"courier": {}}},
        }
    )
    with serving(config, run_worker=False) as base:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json", headers=AUTH)
        labels = []
        for result in schema.get_all_operations():
            operation = result.ok()
            labels.append(operation.label)

            @given(case=operation.as_strategy())
            @settings(
                max_examples=30,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                response = case.call(headers=AUTH, timeout=10)
                where = f"{case.method} {case.formatted_path}"
                assert response.status_code < 500, f"{where}: {response.text}"
                case.validate_response(
                    response, checks=[status_code_conformance, content_type_conformance]
                )
                if response.status_code >= 400:
                    error = response.json()["error"]
                    assert error["code"] == response.status_code, where
                    assert error["reason"] and error["message"] and error["status"], where

            check()
        # Methods the path does not have: 405, and Allow names all those it has.
        wrong = httpx.delete(f"{base}/admin/courier/messages", headers=AUTH)
        assert wrong.status_code == 405
        assert wrong.headers["Allow"] == "GET, HEAD, POST"
        wrong = httpx.patch(f"{base}/admin/tenants/acme", headers=AUTH)
        assert wrong.headers["Allow"] == "DELETE, GET, HEAD, PUT"
        declared = schema.raw_schema["paths"]["/admin/courier/messages"]["post"]["responses"]
        assert "422" not in declared and {"400", "401", "409", "413"} <= set(declared)
    assert "PUT /admin/tenants/{tenant_id}" in labels
    assert "POST /admin/courier/messages" in labels


def test_the_schema_is_served_to_the_operator_only(tmp_path: Path) -> None:
    config = Settings.model_validate({"dsn": f"sqlite:///{tmp_path / 'postroom.db'}"})
    with serving(config, run_worker=False) as base, httpx.Client(base_url=base) as http:
        anonymous = http.get("/openapi.json")
        operator = http.get("/openapi.json", headers=AUTH)
    with serving(config, run_worker=False, dev=True) as base, httpx.Client(base_url=base) as http:
        developer = http.get("/openapi.json")
    assert anonymous.status_code == 401
    assert operator.status_code == 200 and "/admin/courier/messages" in operator.json()["paths"]
    assert developer.status_code == 200
