"""The OpenAPI reader: operations, parameters, bodies and security of OpenAPI 3 and Swagger 2.0
documents, matched against concrete requests, and clear errors for what is not a document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gonogo.checks.security.openapi import OpenApiError, load_openapi

REPO = Path(__file__).resolve().parents[3]
SWAGGER = {
    "swagger": "2.0",
    "basePath": "/api/v1",
    "consumes": ["application/json"],
    "securityDefinitions": {"token": {"type": "apiKey", "in": "header", "name": "Authorization"}},
    "paths": {
        "/items/{id}": {
            "parameters": [{"name": "id", "in": "path", "type": "integer", "required": True}],
            "get": {"security": [{"token": []}], "responses": {"200": {}, "404": {}}},
            "put": {
                "parameters": [
                    {"name": "item", "in": "body", "required": True, "schema": {"type": "object"}}
                ],
                "responses": {"2XX": {}},
            },
        },
        "/items/new": {"get": {"responses": {"default": {}}}},
        "/drip": {
            "get": {
                "parameters": [
                    {"name": "code", "in": "query", "type": "integer", "default": 200},
                    {"name": "unit", "in": "query", "type": "string", "x-example": "ms"},
                ],
                "responses": {"200": {}},
            }
        },
        "/forms": {
            "post": {
                "consumes": ["application/x-www-form-urlencoded"],
                "parameters": [{"name": "title", "in": "formData", "type": "string"}],
                "responses": {"200": {}},
            }
        },
    },
}


def write(tmp_path: Path, document: object, name: str = "spec.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_the_examples_document_lists_its_operations_and_which_are_protected() -> None:
    spec = load_openapi("openapi.json", plan_dir=REPO / "examples" / "docservice", base_url=None)
    labels = {operation.label: operation for operation in spec.operations}
    assert labels["GET /documents/{doc_id}"].secured and not labels["POST /login"].secured
    assert labels["POST /documents"].body_media == ("multipart/form-data",)
    assert [p.name for p in labels["GET /documents/{doc_id}"].path_parameters()] == ["doc_id"]
    assert spec.operation_for("GET", "/documents/12") is labels["GET /documents/{doc_id}"]
    assert labels["GET /documents"].declares(200) and not labels["GET /documents"].declares(500)


def test_swagger_2_bodies_forms_defaults_and_its_base_path(tmp_path: Path) -> None:
    spec = load_openapi(str(write(tmp_path, SWAGGER)), plan_dir=tmp_path, base_url=None)
    labels = {operation.label: operation for operation in spec.operations}
    assert spec.base_path == "/api/v1"
    put = labels["PUT /items/{id}"]
    assert (
        put.body_media == ("application/json",)
        and put.body_schema == {"type": "object"}
        and put.body_required
    )
    assert labels["POST /forms"].body_media == ("application/x-www-form-urlencoded",)
    code, unit = labels["GET /drip"].parameters
    assert code.schema == {"type": "integer", "default": 200} and unit.schema == {
        "type": "string",
        "example": "ms",
    }
    assert labels["GET /items/{id}"].secured and not put.secured
    assert put.declares(204) and labels["GET /items/new"].declares(503)
    # a concrete request under the base path; a literal path wins over a template
    assert spec.operation_for("GET", "/api/v1/items/new") is labels["GET /items/new"]
    assert spec.operation_for("GET", "/api/v1/items/7") is labels["GET /items/{id}"]
    assert spec.operation_for("GET", "/elsewhere/items/7") is None
    assert spec.request_path(labels["GET /items/{id}"], "/items/7") == "/api/v1/items/7"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"title": "not an API"}, "not an OpenAPI document"),
        ({"openapi": "3.0.0"}, "has no `paths`"),
        ("{not json", "not JSON or YAML"),
    ],
)
def test_what_is_not_a_document_is_refused_naming_the_file(
    tmp_path: Path, content: object, expected: str
) -> None:
    path = tmp_path / "spec.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(OpenApiError, match=expected) as caught:
        load_openapi(str(path), plan_dir=tmp_path, base_url=None)
    assert str(path) in str(caught.value)


def test_a_missing_file_and_an_unreachable_service_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(OpenApiError, match="cannot read the OpenAPI document"):
        load_openapi("missing.json", plan_dir=tmp_path, base_url=None)
    with pytest.raises(OpenApiError, match="cannot fetch the OpenAPI document"):
        load_openapi("/openapi.json", plan_dir=tmp_path, base_url="http://127.0.0.1:9", timeout=2)
