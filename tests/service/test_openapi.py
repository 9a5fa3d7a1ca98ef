"""service/openapi.json: a valid OpenAPI 3.1 document that matches the real responses."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from falcon import inspect, testing
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from service.app import OPENAPI_PATH, create_app

from .conftest import TOKEN

DOC = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
BASE = "urn:faq:openapi"
REGISTRY = Registry().with_resource(BASE, Resource.from_contents(DOC, default_specification=DRAFT202012))
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HTML_PAGES = ("/", "/search", "/widget/{file}")


def resolve(node: dict) -> dict:
    """Follow a local ``$ref`` (responses, parameters) to the node it names."""
    while "$ref" in node:
        pointer = node["$ref"].removeprefix("#/").split("/")
        node = DOC
        for part in pointer:
            node = node[part]
    return node


def documented_schema(method: str, template: str, status: int) -> dict | None:
    responses = DOC["paths"][template][method.lower()]["responses"]
    response = responses.get(str(status)) or responses.get("default")
    assert response is not None, f"{method} {template} does not document status {status}"
    content = resolve(response).get("content")
    if content is None:
        return None
    schema = content["application/json"]["schema"]
    if "$ref" in schema:
        return {"$ref": BASE + schema["$ref"]}
    return schema


def check(res, method: str, template: str) -> None:
    schema = documented_schema(method, template, res.status_code)
    if schema is None:
        assert not res.content, f"{method} {template} {res.status_code} has an undocumented body"
        return
    validator = Draft202012Validator(schema, registry=REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(res.json), key=lambda e: list(e.path))
    assert not errors, f"{method} {template} {res.status_code}: " + "; ".join(
        f"{list(e.path)}: {e.message}" for e in errors[:5])


def test_document_is_valid_openapi_3_1():
    validate(DOC)
    assert DOC["openapi"].startswith("3.1")


def test_document_is_served_at_openapi_json(client):
    res = client.simulate_get("/openapi.json")
    assert res.status_code == 200
    # `servers` names the deployment (service/openapi.py): FAQ_SITE_URL or the request's base URL.
    assert [set(server) for server in res.json["servers"]] in ([{"url"}], [{"url", "description"}])
    assert {k: v for k, v in res.json.items() if k != "servers"} == {k: v for k, v in DOC.items() if k != "servers"}


def operations():
    for path, ops in DOC["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def test_every_operation_with_input_documents_a_client_error():
    # Redocly's operation-4xx-response rule is off (tests/service/lint/redocly.yaml) because
    # operations without parameters or body have no 4xx; the others must list theirs.
    missing = [f"{m.upper()} {p}" for p, m, op in operations()
               if (op.get("parameters") or op.get("requestBody")) and not any(c.startswith("4") for c in op["responses"])]
    assert missing == []


def test_public_operations_need_no_credentials_and_admin_ones_the_bearer_token():
    for path, method, op in operations():
        expected = [{"bearerAuth": []}] if "admin" in op["tags"] else []
        assert op.get("security") == expected, f"{method.upper()} {path}"


def _schema_of(media: dict) -> dict:
    schema = media["schema"]
    return {"$ref": BASE + schema["$ref"]} if "$ref" in schema else schema


def test_every_success_response_has_an_example_that_matches_its_schema():
    for path, method, op in operations():
        code = next(c for c in op["responses"] if c.startswith("2"))
        content = resolve(op["responses"][code])["content"]
        if "application/json" not in content:  # GET /metrics: Prometheus text, its example a string
            assert all(isinstance(m.get("example"), str) for m in content.values()), f"{method.upper()} {path}"
            continue
        media = content["application/json"]
        examples = [media["example"]] if "example" in media else [e["value"] for e in media.get("examples", {}).values()]
        assert examples, f"{method.upper()} {path} {code} has no example"
        validator = Draft202012Validator(_schema_of(media), registry=REGISTRY,
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        for example in examples:
            errors = [e.message for e in validator.iter_errors(example)]
            assert errors == [], f"{method.upper()} {path} {code}: {errors[:3]}"


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{BASE}#/components/schemas/{name}"}, registry=REGISTRY,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_contract_details():
    ready = _validator("Ready")
    base = {"generation": "000001-20260101T000000Z", "created": "2026-01-01T00:00:00Z", "articles": 4, "sections": 46}
    assert ready.is_valid({"status": "ready", **base})
    assert ready.is_valid({"status": "degraded", "problem": "the newest generation cannot be opened", **base})
    assert not ready.is_valid({"status": "broken", **base})
    assert not ready.is_valid({"status": "ready", **base, "created": "yesterday"})
    body = _validator("ReindexRequest")
    assert body.is_valid({}) and body.is_valid({"mode": "full"}) and not body.is_valid({"mode": "x"})
    assert DOC["components"]["schemas"]["ReindexRequest"]["properties"]["mode"]["default"] == "update"
    job = DOC["components"]["schemas"]["ReindexJob"]["properties"]
    assert all(job[name]["format"] == "date-time" for name in ("created", "started", "finished"))
    post = DOC["paths"]["/v1/reindex"]["post"]["responses"]
    assert {"202", "400", "401", "404", "409", "413", "503"} <= set(post)
    for name in ("q", "qPrefix"):
        schema = DOC["components"]["parameters"][name]["schema"]
        pattern = re.compile(schema["pattern"])
        assert not any(pattern.search(q) for q in (" ", "\t\n", "\x00\x01", " \x7f\x85 "))
        assert all(pattern.search(q) for q in ("a", " ü ", "?", "\x00x"))


def test_every_route_is_documented_and_every_documented_path_is_routed(app):
    routed: dict[str, set[str]] = {}
    for route in inspect.inspect_app(app).routes:
        methods = {m.method for m in route.methods if not m.internal and m.method != "OPTIONS"}
        routed[re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)] = methods  # {anchor:path} is {anchor}
    for page in HTML_PAGES:  # service/pages.py: HTML for people, outside the JSON API's document
        routed.pop(page, None)
    documented = {path: {m.upper() for m in ops} for path, ops in DOC["paths"].items()}
    assert routed == documented


def test_object_schemas_refuse_unknown_properties():
    loose = [name for name, schema in DOC["components"]["schemas"].items()
             if schema.get("type") == "object" and schema.get("additionalProperties") is not False]
    assert loose == []


def test_query_parameter_bounds_match_the_app(client):
    params = DOC["components"]["parameters"]
    for name, path, low, high in (("searchLimit", "/v1/search", 1, 50), ("offset", "/v1/search", 0, 1000),
                                  ("suggestLimit", "/v1/suggest", 1, 20)):
        schema = params[name]["schema"]
        assert (schema["minimum"], schema["maximum"]) == (low, high)
        pname = params[name]["name"]
        assert client.simulate_get(path, params={"q": "th", pname: str(high)}).status_code == 200
        assert client.simulate_get(path, params={"q": "th", pname: str(high + 1)}).status_code == 400


# Real requests, each checked against the schema documented for its path and status.
CASES = [
    ("GET", "/v1/search", "/v1/search", {"q": "what is psychotherapy"}, 200),
    ("GET", "/v1/search", "/v1/search", {"q": "psychoterapy goals", "limit": "2"}, 200),
    ("GET", "/v1/search", "/v1/search", {"q": "bread", "article": "goals-of-psychotherapy"}, 200),
    ("GET", "/v1/search", "/v1/search", {"q": ""}, 400),
    ("GET", "/v1/search", "/v1/search", {"q": "therapy", "limit": "51"}, 400),
    ("GET", "/v1/search", "/v1/search", {"q": "therapy", "article": "nope"}, 404),
    ("GET", "/v1/answer", "/v1/answer", {"q": "how long does psychoanalysis take"}, 200),
    ("GET", "/v1/answer", "/v1/answer", {"q": "how do I bake sourdough bread"}, 200),
    ("GET", "/v1/answer", "/v1/answer", {}, 400),
    ("GET", "/v1/suggest", "/v1/suggest", {"q": "psy"}, 200),
    ("GET", "/v1/suggest", "/v1/suggest", {"q": "zzzz"}, 200),
    ("GET", "/v1/suggest", "/v1/suggest", {"q": "psy", "limit": "0"}, 400),
    ("GET", "/v1/articles", "/v1/articles", None, 200),
    ("GET", "/v1/articles", "/v1/articles", None, 405),
    ("GET", "/v1/articles/{slug}", "/v1/articles/goals-of-psychotherapy", None, 200),
    ("GET", "/v1/articles/{slug}", "/v1/articles/online-therapy-new-york-city", None, 200),
    ("GET", "/v1/articles/{slug}", "/v1/articles/nope", None, 404),
    ("GET", "/v1/articles/{slug}/related", "/v1/articles/how-long-does-psychoanalysis-take/related", None, 200),
    ("GET", "/v1/articles/{slug}/related", "/v1/articles/goals-of-psychotherapy/related", {"limit": "0"}, 400),
    ("GET", "/v1/articles/{slug}/related", "/v1/articles/nope/related", None, 404),
    ("GET", "/v1/faqs/{slug}/{anchor}", "/v1/faqs/goals-of-psychotherapy/what-is-psychotherapy", None, 200),
    ("GET", "/v1/faqs/{slug}/{anchor}", "/v1/faqs/goals-of-psychotherapy/nope", None, 404),
    ("GET", "/healthz", "/healthz", None, 200),
    ("GET", "/readyz", "/readyz", None, 200),
    ("GET", "/openapi.json", "/openapi.json", None, 200),
]


@pytest.mark.parametrize(("method", "template", "path", "params", "status"), CASES,
                         ids=[f"{c[2]}-{c[4]}-{i}" for i, c in enumerate(CASES)])
def test_real_response_matches_its_documented_schema(client, method, template, path, params, status):
    real_method = "DELETE" if status == 405 else method
    res = client.simulate_request(real_method, path, params=params)
    assert res.status_code == status, res.text
    check(res, method, template)


def test_not_modified_response_matches_the_document(client):
    etag = client.simulate_get("/v1/articles").headers["etag"]
    res = client.simulate_get("/v1/articles", headers={"If-None-Match": etag})
    assert res.status_code == 304
    check(res, "GET", "/v1/articles")


def test_responses_without_an_index_match_the_document(tmp_path: Path):
    from .conftest import CORPUS, api_settings

    client = testing.TestClient(create_app(api_settings(CORPUS, tmp_path / "empty")))
    for template, path, params in (("/readyz", "/readyz", None), ("/v1/search", "/v1/search", {"q": "therapy"}),
                                   ("/v1/articles/{slug}", "/v1/articles/goals-of-psychotherapy", None)):
        res = client.simulate_get(path, params=params)
        assert res.status_code == 503
        check(res, "GET", template)


def test_reindex_responses_match_the_document(site):
    client = testing.TestClient(create_app(site.config(reindex_token=TOKEN)))
    res = client.simulate_post("/v1/reindex", json={"mode": "full"}, headers=AUTH)
    assert res.status_code == 202
    check(res, "POST", "/v1/reindex")
    job = res.json["job"]
    conflict = client.simulate_post("/v1/reindex", json={"mode": "full"}, headers=AUTH)
    assert conflict.status_code == 409
    check(conflict, "POST", "/v1/reindex")
    deadline = time.monotonic() + 60
    while True:
        res = client.simulate_get(f"/v1/reindex/{job}", headers=AUTH)
        check(res, "GET", "/v1/reindex/{job}")
        if res.json["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert res.json["status"] == "succeeded"
    client.app.jobs.join(10)
    for r in (client.simulate_post("/v1/reindex", body=b"{", headers=AUTH),
              client.simulate_post("/v1/reindex", json={"mode": "full"}),
              client.simulate_post("/v1/reindex", body=b"x" * 70_000, headers=AUTH)):
        check(r, "POST", "/v1/reindex")
    for r in (client.simulate_get(f"/v1/reindex/{'0' * 32}", headers=AUTH),
              client.simulate_get(f"/v1/reindex/{job}")):
        check(r, "GET", "/v1/reindex/{job}")
    off = testing.TestClient(create_app(site.config(reindex_token=None)))
    check(off.simulate_post("/v1/reindex", headers=AUTH), "POST", "/v1/reindex")
