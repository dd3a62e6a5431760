"""The service's OpenAPI document (3.x, or Swagger 2.0 for what it shares): its operations,
their parameters, request bodies, declared responses and security requirements.

Read from a file (JSON or YAML) or fetched from the running service; local `$ref`s
(`#/components/...`) are resolved when asked for, with a depth bound for cyclic schemas.
"""

from __future__ import annotations

__all__ = [
    "OpenApi",
    "OpenApiError",
    "Operation",
    "Parameter",
    "example_value",
    "load_openapi",
    "normal_name",
]

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from gonogo.errors import GonogoError

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
_TEMPLATE = re.compile(r"\{([^{}/]+)\}")


class OpenApiError(GonogoError, ValueError):
    """The document cannot be read or is not an OpenAPI document; the message says which and why."""


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # path, query, header, cookie
    required: bool
    schema: dict[str, Any]


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    path: str  # the template, `/documents/{id}`
    operation_id: str | None
    parameters: tuple[Parameter, ...]
    body_media: tuple[str, ...]  # media types of the request body (`application/json`, …)
    body_schema: dict[str, Any] | None  # of the first JSON (else first) media type
    body_required: bool
    secured: bool  # a security requirement applies (an empty one, `[]` or `[{}]`, does not count)
    responses: frozenset[str]  # declared status codes: `200`, `4XX`, `default`

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def path_parameters(self) -> list[Parameter]:
        return [parameter for parameter in self.parameters if parameter.location == "path"]

    def declares(self, status: int) -> bool:
        """Whether `status` is among the declared responses (`default` declares every one)."""
        return (
            str(status) in self.responses
            or f"{str(status)[0]}XX" in {code.upper() for code in self.responses}
            or "default" in self.responses
        )

    def matches(self, method: str, path: str) -> bool:
        """Whether a concrete request (`GET /documents/12`) is this operation."""
        if method.upper() != self.method:
            return False
        escaped = re.escape(self.path).replace(r"\{", "{").replace(r"\}", "}")
        return re.match("^" + _TEMPLATE.sub(r"[^/]+", escaped) + "$", path) is not None


@dataclass
class OpenApi:
    document: dict[str, Any]
    source: str  # the file or URL it came from
    operations: list[Operation] = field(default_factory=list)

    @property
    def base_path(self) -> str:
        """The path the operations' paths are under on the service: that of the first server's
        URL (`servers: [{url: /api/v1}]`) or Swagger's `basePath`; "" for the root."""
        servers = self.document.get("servers")
        first = servers[0] if isinstance(servers, list) and servers and isinstance(servers[0], dict) else {}
        url = str(first.get("url") or self.document.get("basePath") or "")
        path = urlsplit(url).path if "://" in url else url
        return "" if "{" in path else path.rstrip("/")

    def request_path(self, operation: Operation, filled: str | None = None) -> str:
        """The path to send for `operation` (its template, or `filled` in), under `base_path`."""
        return self.base_path + (operation.path if filled is None else filled)

    def resolve(self, node: Any, depth: int = 0) -> Any:
        """`node` with its local `$ref`s replaced by what they point at (bounded for cycles)."""
        if depth > 20:
            return {}
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
                target: Any = self.document
                for part in node["$ref"][2:].split("/"):
                    part = part.replace("~1", "/").replace("~0", "~")
                    target = target.get(part, {}) if isinstance(target, dict) else {}
                return self.resolve(target, depth + 1)
            return {key: self.resolve(value, depth + 1) for key, value in node.items()}
        if isinstance(node, list):
            return [self.resolve(item, depth + 1) for item in node]
        return node

    def operation_for(self, method: str, path: str) -> Operation | None:
        """The operation a concrete request is, preferring a literal path over a template."""
        base = self.base_path
        if base and (path == base or path.startswith(base + "/")):
            path = path[len(base) :] or "/"
        candidates = [operation for operation in self.operations if operation.matches(method, path)]
        candidates.sort(key=lambda operation: operation.path.count("{"))
        return candidates[0] if candidates else None


def load_openapi(location: str, *, plan_dir: Path, base_url: str | None, timeout: float = 10.0) -> OpenApi:
    """Read the document at `location`: an http(s) URL, a path on the service (`/openapi.json`,
    fetched from `base_url`), or a file (relative to the plan's folder)."""
    on_service = location.startswith("/") and base_url is not None and not Path(location).exists()
    if location.startswith(("http://", "https://")) or on_service:
        url = location if location.startswith("http") else f"{base_url}{location}"
        try:
            response = httpx.get(url, timeout=timeout, follow_redirects=False, trust_env=False)
        except httpx.HTTPError as error:
            raise OpenApiError(f"{url}: cannot fetch the OpenAPI document: {error}") from None
        if response.status_code != 200:
            raise OpenApiError(f"{url}: the OpenAPI document answered {response.status_code}, expected 200")
        data, source = response.content, url
    else:
        path = Path(location).expanduser()
        if not path.is_absolute():
            path = plan_dir / path
        try:
            data = path.read_bytes()
        except OSError as error:
            reason = error.strerror or error
            raise OpenApiError(f"{path}: cannot read the OpenAPI document: {reason}") from None
        source = str(path)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise OpenApiError(f"{source}: refused: over {MAX_DOCUMENT_BYTES // 2**20} MiB")
    try:
        document = json.loads(data) if data.lstrip()[:1] in (b"{", b"[") else yaml.safe_load(data)
    except (ValueError, yaml.YAMLError) as error:
        raise OpenApiError(f"{source}: not JSON or YAML: {error}") from None
    if not isinstance(document, dict) or not ("openapi" in document or "swagger" in document):
        raise OpenApiError(f"{source}: not an OpenAPI document (no `openapi` or `swagger` field at the top)")
    if not isinstance(document.get("paths"), dict):
        raise OpenApiError(f"{source}: the OpenAPI document has no `paths`")
    spec = OpenApi(document, source)
    spec.operations = _operations(spec)
    return spec


def _swagger_schema(parameter: dict[str, Any]) -> dict[str, Any]:
    """A Swagger 2.0 parameter's schema: its type keywords sit on the parameter itself."""
    keywords = ("type", "format", "enum", "default", "example", "x-example", "minimum", "maximum",
                "minLength", "maxLength", "pattern", "items")  # fmt: skip
    schema = {key: parameter[key] for key in keywords if key in parameter}
    if "x-example" in schema:
        schema["example"] = schema.pop("x-example")
    return schema


def _operations(spec: OpenApi) -> list[Operation]:
    document = spec.document
    default_security = document.get("security")
    operations = []
    for path, item in document["paths"].items():
        item = spec.resolve(item) if isinstance(item, dict) else {}
        shared = item.get("parameters", [])
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            parameters: dict[tuple[str, str], Parameter] = {}
            swagger_body: dict[str, Any] | None = None
            form_fields: dict[str, Any] = {}
            for raw in [*shared, *operation.get("parameters", [])]:
                if not (isinstance(raw, dict) and "name" in raw and "in" in raw):
                    continue
                if raw["in"] == "body":  # Swagger 2.0: the request body is a parameter
                    swagger_body = {"required": raw.get("required", False), "schema": raw.get("schema") or {}}
                    continue
                if raw["in"] == "formData":
                    form_fields[str(raw["name"])] = _swagger_schema(raw)
                    continue
                parameters[(raw["name"], raw["in"])] = Parameter(
                    str(raw["name"]),
                    str(raw["in"]),
                    bool(raw.get("required", raw["in"] == "path")),
                    raw.get("schema") or _swagger_schema(raw),
                )
            body = operation.get("requestBody") or {}
            content = body.get("content") or {}
            if not content and (swagger_body is not None or form_fields):
                consumes = operation.get("consumes") or document.get("consumes") or []
                if swagger_body is not None:
                    kinds = [kind for kind in consumes if "json" in kind] or ["application/json"]
                    content = {kinds[0]: {"schema": swagger_body["schema"]}}
                    body = swagger_body
                else:
                    kind = next(
                        (kind for kind in consumes if "form" in kind), "application/x-www-form-urlencoded"
                    )
                    content = {kind: {"schema": {"type": "object", "properties": form_fields}}}
            media = tuple(content)
            json_media = next((name for name in media if "json" in name), media[0] if media else None)
            security = operation.get("security", default_security)
            operations.append(
                Operation(
                    method=method.upper(),
                    path=str(path),
                    operation_id=operation.get("operationId"),
                    parameters=tuple(parameters.values()),
                    body_media=media,
                    body_schema=(content.get(json_media) or {}).get("schema") if json_media else None,
                    body_required=bool(body.get("required")),
                    secured=any(bool(requirement) for requirement in security or []),
                    responses=frozenset(str(code) for code in (operation.get("responses") or {})),
                )
            )
    return operations


# Swagger 2.0 documents in the wild write types their own way (httpbin's `type: int`).
_NUMBER_TYPES = frozenset({"integer", "int", "long", "int32", "int64", "number", "float", "double"})
_FORMATS = {
    "uuid": "00000000-0000-4000-8000-000000000000",
    "email": "gonogo@example.com",
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "uri": "https://example.com/",
}


def normal_name(name: str) -> str:
    """A name as compared across a document and the journeys: `doc_id`, `docId`, `DocID` alike."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def example_value(schema: Any, known: Mapping[str, Any], *, every_property: bool, depth: int = 0) -> Any:
    """A small instance of a JSON schema: its example, default or first enum value; else, for a
    property, the journeys' value of one of the same name (`known`, by `normal_name`); else the
    simplest value of its type. `every_property`: all of an object's properties and one item of
    an array (what probes want, every string a place to probe); else only what is required (a
    request that should be accepted)."""
    if not isinstance(schema, Mapping) or depth > 8:
        return "gonogo"
    for key in ("example", "x-example", "default"):
        if key in schema:
            return schema[key]
    examples = schema.get("examples")
    if examples:
        return examples[0] if isinstance(examples, list) else next(iter(examples.values()), "gonogo")
    if schema.get("enum"):
        return schema["enum"][0]
    for combined in ("allOf", "anyOf", "oneOf"):
        if schema.get(combined):
            return example_value(schema[combined][0], known, every_property=every_property, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "string")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        names = list(properties) if every_property else list(schema.get("required") or [])
        return {
            name: known[normal_name(name)]
            if known.get(normal_name(name)) is not None
            else example_value(properties.get(name), known, every_property=every_property, depth=depth + 1)
            for name in names
        }
    if kind == "array":
        if every_property or schema.get("minItems"):
            return [example_value(schema.get("items"), known, every_property=every_property, depth=depth + 1)]
        return []
    if kind in _NUMBER_TYPES:
        minimum = schema.get("minimum", 1)
        return max(1, int(minimum)) if isinstance(minimum, int | float) else 1
    if kind == "boolean":
        return True
    return _FORMATS.get(str(schema.get("format")), "gonogo")
