"""Property-based API tests: schemathesis generates requests from service/openapi.json.

Every operation gets at most ``MAX_EXAMPLES`` generated requests (valid and invalid ones,
derandomized: the same requests on every run, no example database), sent to the WSGI app in
process, and each response must pass: no 5xx, a documented status code, a documented
content type, and a body that matches the documented schema.

The app serves a private copy of the corpus with a reindex token. ``POST /v1/reindex``
is left out of the generated run, where every accepted request would start a real indexer
process; a few explicit requests cover it (one real build) instead.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from falcon import testing
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import OPENAPI_PATH, create_app

from .conftest import TOKEN, Site

MAX_EXAMPLES = 25


@schemathesis.check
def status_code_is_listed(ctx, response, case):
    """Stricter than status_code_conformance, which any status passes when a `default`
    response is documented (every operation has one, for 405 and 500): the status must be
    listed by number."""
    if case.method.upper() != case.operation.method.upper():
        return None  # schemathesis's wrong-method probe (TRACE...): a 405 under `default`
    listed = case.operation.definition.raw.get("responses", {})
    if str(response.status_code) not in listed:
        raise AssertionError(f"status {response.status_code} is not listed for {case.operation.label}")
    return None


CHECKS = [not_a_server_error, status_code_conformance, status_code_is_listed, content_type_conformance,
          response_schema_conformance]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def st_site(tmp_path_factory) -> Site:
    site = Site(tmp_path_factory.mktemp("schemathesis"))
    site.build()
    return site


@pytest.fixture(scope="module")
def st_app(st_site):
    return create_app(st_site.config(reindex_token=TOKEN))


@pytest.fixture
def fresh_app(st_site):
    """An app of its own: the generated run's failed authentications have filled the shared
    app's throttle of failed reindex/analytics tokens, which would answer 429 here."""
    return create_app(st_site.config(reindex_token=TOKEN))


# Loaded from the packaged file at collection time (test_openapi.py checks that the app serves
# this same document). schemathesis.pytest.from_fixture would load it from the running app, but
# its lazy parametrization does not work with pytest 9.2 (it sets Function._nodeid).
CONFIG = SchemathesisConfig.from_dict({
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
})
schema = schemathesis.openapi.from_path(OPENAPI_PATH, config=CONFIG)


@schema.exclude(method="POST", path="/v1/reindex").parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_document(case, st_app):
    # Every request carries the token: the reindex job endpoint is exercised beyond its 401.
    case.call_and_validate(app=st_app, headers=AUTH, checks=CHECKS)


# --------------------------------------------------------------------------- POST /v1/reindex


def post_case(body=None, media_type="application/json", headers=None):
    operation = schema["/v1/reindex"]["POST"]
    kwargs = {"headers": headers or {}}
    if body is not None:
        kwargs.update(body=body, media_type=media_type)
    return operation.Case(**kwargs)


@pytest.mark.parametrize(("body", "headers", "status"), [
    (None, {}, 401),
    ({"mode": "update"}, {"Authorization": "Bearer wrong"}, 401),
    ({"mode": "sometimes"}, AUTH, 400),
    ({"mode": "full", "force": True}, AUTH, 400),
    (["full"], AUTH, 400),
    ({"mode": "full", "pad": "x" * 70_000}, AUTH, 413),
], ids=["no-token", "wrong-token", "bad-mode", "unknown-field", "not-an-object", "too-large"])
def test_refused_reindex_requests_conform(fresh_app, body, headers, status):
    case = post_case(body, headers=headers)
    response = case.call_and_validate(app=fresh_app, checks=CHECKS)
    assert response.status_code == status


def test_accepted_reindex_and_conflict_conform(fresh_app):
    st_app = fresh_app
    response = post_case({}, headers=AUTH).call_and_validate(app=st_app, checks=CHECKS)
    assert response.status_code == 202
    job = response.json()["job"]
    conflict = post_case({"mode": "full"}, headers=AUTH).call_and_validate(app=st_app, checks=CHECKS)
    assert conflict.status_code in (202, 409)  # 202 only if the first build already finished
    get_job = schema["/v1/reindex/{job}"]["GET"]
    deadline = time.monotonic() + 60
    while True:
        res = get_job.Case(path_parameters={"job": job}, headers=AUTH).call_and_validate(app=st_app, checks=CHECKS)
        if res.json()["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert res.json()["status"] == "succeeded", res.json()
    st_app.jobs.join(30)
    if conflict.status_code == 202:
        st_app.jobs.join(60)


# --------------------------------------------------------------------------- q


@pytest.mark.parametrize("path", ["/v1/search", "/v1/answer", "/v1/suggest"])
def test_q_of_only_control_characters_is_400(st_app, path):
    # Documented (q's pattern); schemathesis's valid-data phase never sends such a q.
    response = testing.TestClient(st_app).simulate_get(path, params={"q": " \x7f\x01 "})
    assert response.status_code == 400
