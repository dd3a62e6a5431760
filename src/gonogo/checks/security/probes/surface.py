"""What the probes aim at, from what gonogo knows: the journeys' requests (with their real
values) and the operations of the OpenAPI document the journeys did not call (with values
the journeys used for parameters of the same name, else the schema's examples).

An `Endpoint` is one request to vary; a `Point` is one value in it (a path segment, a query
value, a string field of a JSON body, a form field) that a probe replaces with its payload.
What a Swagger 2.0 document keeps beside a parameter's type (`default`, `x-example`, …) and its
`in: body` and `in: formData` parameters are read from the document itself.
Requests that end a session (logout, revoke) are left out: replaying them would cut every
later probe off from authenticated code.
"""

from __future__ import annotations

__all__ = ["Endpoint", "Point", "endpoints", "example_of"]

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from gonogo.checks.security.openapi import OpenApi, Operation, example_value, normal_name
from gonogo.checks.security.target import NOT_REPLAYED_HEADERS, Exchange, Target
from gonogo.journey.redact import is_secret_name

MAX_JSON_POINTS = 20  # string fields of one JSON body probed at most
# Requests that end the first user's session: never replayed.
_ENDS_SESSION = re.compile(r"(?i)log-?out|sign-?out|revoke")
_TEMPLATE = re.compile(r"^\{([^{}/]+)\}$")
_ID_LIKE = re.compile(r"^(?:\d+|[0-9a-fA-F-]{8,}|[0-9A-Za-z_-]{20,})$")
# Types as documents write them (Swagger 2.0 documents in the wild say `int`, `long`, `float`)
_INTEGER_TYPES = frozenset({"integer", "int", "long", "int32", "int64"})
_NUMBER_TYPES = frozenset({"number", "float", "double"})
# What a Swagger 2.0 parameter keeps beside its `type` that a schema would hold
_SWAGGER_SCHEMA_KEYS = (
    "type", "format", "enum", "default", "example", "x-example", "minimum", "maximum", "items", "pattern",
)  # fmt: skip


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # as on the wire, without the query
    query: tuple[tuple[str, str], ...]  # decoded names and values, in order, as sent
    headers: tuple[tuple[str, str], ...]  # without credentials and framing
    body: bytes | None
    # the body's media type, lower case, without parameters; with no body, the one the document
    # declares ("" for none)
    media: str
    label: str  # `METHOD /template` (or `METHOD /path` when no OpenAPI document knows it)
    operation: Operation | None
    path_parameters: tuple[tuple[int, str], ...]  # (segment index, name) of the path's parameters
    from_journey: bool
    # query parameters the document declares that the request did not send (example values)
    declared: tuple[tuple[str, str], ...] = ()
    # each declared parameter's schema by (location, name), with a Swagger 2.0 `default` and the like
    schemas: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict, compare=False)
    body_schema: Mapping[str, Any] | None = field(default=None, compare=False)  # resolved

    def target(self, path: str | None = None, query: str | None = None) -> str:
        """The request-target with `path` and `query` (encoded, as on the wire) in place of the
        endpoint's own."""
        path = self.path if path is None else path
        query = _encode_query(self.query) if query is None else query
        return path + (f"?{query}" if query else "")

    def with_segment(self, index: int, raw: str) -> str:
        """The request-target with path segment `index` replaced by `raw` as is."""
        segments = self.path.split("/")
        segments[index] = raw
        return self.target("/".join(segments))

    def with_query(self, index: int | None, raw: str, name: str = "") -> str:
        """The request-target with the value of query parameter `index` replaced by `raw` as is
        (or, for `index` None, parameter `name` added with it)."""
        pairs = [quote(key, safe="") + "=" + quote(value, safe="") for key, value in self.query]
        if index is None:
            pairs.append(quote(name, safe="") + "=" + raw)
        else:
            pairs[index] = quote(self.query[index][0], safe="") + "=" + raw
        return self.target(query="&".join(pairs))

    def points(self) -> list[Point]:
        """The values a payload can take the place of: the path's parameters, the query's (the
        ones sent, then the ones the document declares and the journey did not send), the string
        fields of a JSON body, the fields of a form, the text fields of a multipart body."""
        found = [
            Point(self, "path", name, self.path.split("/")[index], index)
            for index, name in self.path_parameters
        ]
        found += [Point(self, "query", name, value, index) for index, (name, value) in enumerate(self.query)]
        found += [Point(self, "query", name, value, None) for name, value in self.declared]
        if self.body is not None and "json" in self.media:
            try:
                document = json.loads(self.body)
            except ValueError:
                document = None
            leaves = list(_string_leaves(document, ()))[:MAX_JSON_POINTS]
            found += [Point(self, "json", _dotted(where), value, where) for where, value in leaves]
        if self.body is not None and self.media == "application/x-www-form-urlencoded":
            form = parse_qsl(self.body.decode("utf-8", errors="replace"), keep_blank_values=True)
            found += [Point(self, "form", name, value, index) for index, (name, value) in enumerate(form)]
        boundary = self.boundary()
        if self.body is not None and boundary is not None:
            for index, (head, content) in enumerate(_multipart_parts(self.body, boundary)):
                name = _text_field(head)
                if name is not None:
                    value = content.decode("utf-8", errors="replace")
                    found.append(Point(self, "multipart", name, value, index))
        return found

    def boundary(self) -> bytes | None:
        """The boundary of a multipart body, from its Content-Type."""
        if not self.media.startswith("multipart/"):
            return None
        content_type = next((value for name, value in self.headers if name.lower() == "content-type"), "")
        match = re.search(r'boundary="?([^";]+)"?', content_type)
        return match.group(1).encode("latin-1") if match else None

    def schema(self, name: str, location: str) -> Mapping[str, Any]:
        """The declared schema of a parameter ({} when the document does not declare it)."""
        return self.schemas.get((location, name), {})

    def parameter_type(self, name: str, location: str) -> str | None:
        """The declared type of a parameter (`integer` for a Swagger `int`), when the document says."""
        kind = self.schema(name, location).get("type")
        if not isinstance(kind, str):
            return None
        return "integer" if kind in _INTEGER_TYPES else "number" if kind in _NUMBER_TYPES else kind


@dataclass(frozen=True)
class Point:
    endpoint: Endpoint
    location: str  # path, query, json, form, multipart
    name: str  # the parameter, or the JSON field (`meta.tags.0`)
    value: str  # the journey's (or example's) value
    # path segment index, query index (None: a declared parameter the journey did not send),
    # form field index, multipart part index, or JSON path
    where: Any = field(compare=False)

    @property
    def label(self) -> str:
        return f"{self.location} {self.name}"

    def request(self, value: str, *, encoded: bool = False) -> tuple[str, bytes | None]:
        """The request-target and body with `value` in this point's place. In a path or a query,
        `value` is percent-encoded unless `encoded` says it is ready for the wire."""
        endpoint = self.endpoint
        if self.location in ("path", "query"):
            raw = value if encoded else quote(value, safe="")
            if self.location == "path":
                return endpoint.with_segment(self.where, raw), endpoint.body
            return endpoint.with_query(self.where, raw, self.name), endpoint.body
        assert endpoint.body is not None
        if self.location == "json":
            document = _replaced(json.loads(endpoint.body), self.where, value)
            return endpoint.target(), json.dumps(document, ensure_ascii=False).encode()
        if self.location == "multipart":
            boundary = endpoint.boundary()
            assert boundary is not None
            parts = _multipart_parts(endpoint.body, boundary)
            parts[self.where] = (parts[self.where][0], value.encode("utf-8"))
            return endpoint.target(), _multipart_body(parts, boundary)
        form = parse_qsl(endpoint.body.decode("utf-8", errors="replace"), keep_blank_values=True)
        form[self.where] = (form[self.where][0], value)
        return endpoint.target(), urlencode(form, quote_via=quote).encode()


def endpoints(target: Target) -> list[Endpoint]:
    """The journeys' requests (the first of each operation), then the OpenAPI operations they
    did not call."""
    base_path = urlsplit(target.base_url).path.rstrip("/")
    known = _known_values(target)
    found: dict[str, Endpoint] = {}
    for exchange in target.exchanges:
        endpoint = _from_exchange(exchange, target.openapi, base_path, known)
        if endpoint is not None:
            found.setdefault(endpoint.label, endpoint)
    spec = target.openapi
    if spec is not None:
        for operation in spec.operations:
            if operation.label in found or _ENDS_SESSION.search(operation.path):
                continue
            if operation.method in ("OPTIONS", "TRACE", "HEAD"):
                continue
            found[operation.label] = _from_operation(operation, spec, known, base_path)
    return list(found.values())


def _from_exchange(
    exchange: Exchange, spec: OpenApi | None, base_path: str, known: Mapping[str, str]
) -> Endpoint | None:
    parts = urlsplit(exchange.url)
    path = parts.path or "/"
    if _ENDS_SESSION.search(path):
        return None
    operation = None
    if spec is not None:
        operation = spec.operation_for(exchange.method, path) or spec.operation_for(
            exchange.method, path.removeprefix(base_path) or "/"
        )
    label = exchange.operation or (operation.label if operation else f"{exchange.method} {path}")
    headers = tuple(pair for pair in exchange.headers if pair[0].lower() not in NOT_REPLAYED_HEADERS)
    media = (exchange.header("content-type") or "").split(";")[0].strip().lower()
    body = exchange.body if exchange.body and exchange.body_complete else None
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    declared: tuple[tuple[str, str], ...] = ()
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    body_media, body_schema = "", None
    if operation is not None and spec is not None:
        schemas = _schemas(spec, operation)
        body_media, body_schema = _body(spec, operation)
        sent = {name for name, _ in query}
        declared = tuple(
            (parameter.name, _value(parameter.name, schemas[parameter.location, parameter.name], known))
            for parameter in operation.parameters
            if parameter.location == "query" and parameter.name not in sent
        )
    return Endpoint(
        method=exchange.method,
        path=path,
        query=query,
        headers=headers,
        body=body,
        media=media if exchange.body else body_media,  # what the document says a body would be
        label=label,
        operation=operation,
        path_parameters=_path_parameters(path, operation),
        from_journey=True,
        declared=declared,
        schemas=schemas,
        body_schema=body_schema,
    )


def _path_parameters(path: str, operation: Operation | None) -> tuple[tuple[int, str], ...]:
    segments = path.split("/")
    if operation is not None:
        template = operation.path.split("/")
        offset = len(segments) - len(template)  # the base URL's path before the template's
        if offset >= 0:
            return tuple(
                (index + offset, match.group(1))
                for index, segment in enumerate(template)
                if (match := _TEMPLATE.match(segment))
            )
    # No template: the segments that look like ids or file names are the parameters.
    return tuple(
        (index, f"segment {index}")
        for index, segment in enumerate(segments)
        if index > 1 and segment and (_ID_LIKE.match(segment) or "." in segment.strip("."))
    )


def _from_operation(
    operation: Operation, spec: OpenApi, known: Mapping[str, str], base_path: str
) -> Endpoint:
    schemas = _schemas(spec, operation)
    segments = []
    for segment in operation.path.split("/"):
        match = _TEMPLATE.match(segment)
        if match:
            segment = quote(_value(match.group(1), schemas.get(("path", match.group(1)), {}), known), safe="")
        segments.append(segment)
    path = base_path + "/".join(segments)
    query = tuple(
        (parameter.name, _value(parameter.name, schemas[parameter.location, parameter.name], known))
        for parameter in operation.parameters
        if parameter.location == "query"
    )
    body: bytes | None = None
    media, body_schema = _body(spec, operation)
    headers: list[tuple[str, str]] = [("Accept", "*/*")]
    if body_schema is not None and ("json" in media or media == "application/x-www-form-urlencoded"):
        instance = _every_example(body_schema, known)
        if "json" in media:
            body = json.dumps(instance).encode()
        elif isinstance(instance, dict):
            body = urlencode({k: _text(v) for k, v in instance.items()}, quote_via=quote).encode()
        headers.append(("Content-Type", media))
    return Endpoint(
        method=operation.method,
        path=path or "/",
        query=query,
        headers=tuple(headers),
        body=body,
        media=media,
        label=operation.label,
        operation=operation,
        path_parameters=_path_parameters(path or "/", operation),
        from_journey=False,
        schemas=schemas,
        body_schema=body_schema,
    )


def _raw_parameters(spec: OpenApi, operation: Operation) -> list[dict[str, Any]]:
    """The operation's parameters as the document writes them (the path's, then its own), resolved."""
    item = spec.document.get("paths", {}).get(operation.path)
    item = spec.resolve(item) if isinstance(item, dict) else {}
    own = item.get(operation.method.lower())
    own = own if isinstance(own, dict) else {}
    found = [*item.get("parameters", []), *own.get("parameters", [])]
    return [raw for raw in found if isinstance(raw, dict) and "name" in raw and "in" in raw]


def _schemas(spec: OpenApi, operation: Operation) -> dict[tuple[str, str], dict[str, Any]]:
    """Each parameter's schema, resolved, with what the document keeps beside it: a Swagger 2.0
    `default`, `x-example` or `enum` next to the `type`, an OpenAPI 3 parameter's `example`."""
    schemas = {
        (parameter.location, parameter.name): dict(spec.resolve(dict(parameter.schema)))
        for parameter in operation.parameters
    }
    for raw in _raw_parameters(spec, operation):
        schema = schemas.setdefault((str(raw["in"]), str(raw["name"])), {})
        for key in ("example", *_SWAGGER_SCHEMA_KEYS):
            if key in raw and key not in schema:
                schema[key] = raw[key]
        examples = raw.get("examples")
        if "example" not in schema and isinstance(examples, dict) and examples:
            first = next(iter(examples.values()))
            if isinstance(first, dict) and "value" in first:
                schema["example"] = first["value"]
    return schemas


def _body(spec: OpenApi, operation: Operation) -> tuple[str, dict[str, Any] | None]:
    """The media type (lower case, "" when unknown) and resolved schema of the operation's body:
    its `requestBody`, or a Swagger 2.0 `in: body` parameter (JSON unless `consumes` says
    otherwise) or `in: formData` parameters (a form, multipart when one is a file)."""
    if operation.body_media:
        schema = operation.body_schema
        return operation.body_media[0].lower(), spec.resolve(schema) if isinstance(schema, dict) else None
    if "swagger" not in spec.document:
        return "", None
    raw = _raw_parameters(spec, operation)
    own = (spec.document.get("paths", {}).get(operation.path) or {}).get(operation.method.lower()) or {}
    consumes = [str(media).lower() for media in own.get("consumes") or spec.document.get("consumes") or []]
    body = next((parameter for parameter in raw if parameter["in"] == "body"), None)
    if body is not None:
        media = next((media for media in consumes if "json" in media), consumes[0] if consumes else "")
        schema = body.get("schema")
        return media or "application/json", spec.resolve(schema) if isinstance(schema, dict) else None
    form = [parameter for parameter in raw if parameter["in"] == "formData"]
    if not form:
        return "", None
    properties = {
        str(parameter["name"]): (
            {"type": "string", "format": "binary"}
            if parameter.get("type") == "file"
            else {key: parameter[key] for key in _SWAGGER_SCHEMA_KEYS if key in parameter}
        )
        for parameter in form
    }
    files = any(parameter.get("type") == "file" for parameter in form)
    multipart = files or "multipart/form-data" in consumes
    media = "multipart/form-data" if multipart else "application/x-www-form-urlencoded"
    return media, {"type": "object", "properties": properties}


def _known_values(target: Target) -> dict[str, str]:
    """Values the journeys used, by normalised name: their query parameters, then the first
    user's variables (never a secret)."""
    known: dict[str, str] = {}
    for exchange in target.exchanges:
        for name, value in parse_qsl(urlsplit(exchange.url).query):
            known.setdefault(normal_name(name), value)
    for exchange in reversed(target.exchanges):
        for name, value in exchange.variables.items():
            if isinstance(value, str | int) and not isinstance(value, bool) and not is_secret_name(name):
                known.setdefault(normal_name(name), str(value))
    return known


def _value(name: str, schema: Mapping[str, Any], known: Mapping[str, str]) -> str:
    value = known.get(normal_name(name))
    return value if value is not None else _text(_every_example(schema, known))


def example_of(schema: Mapping[str, Any]) -> str | None:
    """A value the document itself gives for a parameter (its example, default or first enum
    value), or a small number for a number; None when it gives nothing to go by."""
    if any(key in schema for key in ("example", "x-example", "default", "examples", "enum")):
        return _text(_every_example(schema, {}))
    kind = schema.get("type")
    if kind in _INTEGER_TYPES or kind in _NUMBER_TYPES:
        return _text(_every_example(schema, {}))
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _encode_query(query: tuple[tuple[str, str], ...]) -> str:
    return "&".join(quote(name, safe="") + "=" + quote(value, safe="") for name, value in query)


def _string_leaves(node: Any, where: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _string_leaves(value, (*where, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _string_leaves(value, (*where, index))


def _dotted(where: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in where) or "(body)"


def _replaced(node: Any, where: tuple[str | int, ...], value: str) -> Any:
    if not where:
        return value
    head, rest = where[0], where[1:]
    if isinstance(node, dict):
        return {key: _replaced(item, rest, value) if key == head else item for key, item in node.items()}
    return [_replaced(item, rest, value) if index == head else item for index, item in enumerate(node)]


def _multipart_parts(body: bytes, boundary: bytes) -> list[tuple[bytes, bytes]]:
    """The (headers, content) of each part of a multipart body."""
    parts = []
    for section in body.split(b"--" + boundary)[1:]:
        if section.startswith(b"--"):
            break  # the closing delimiter
        head, separator, content = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if separator:
            parts.append((head, content.removesuffix(b"\r\n")))
    return parts


def _multipart_body(parts: list[tuple[bytes, bytes]], boundary: bytes) -> bytes:
    sections = [
        b"--" + boundary + b"\r\n" + head + b"\r\n\r\n" + content + b"\r\n" for head, content in parts
    ]
    return b"".join(sections) + b"--" + boundary + b"--\r\n"


def _text_field(head: bytes) -> str | None:
    """The name of a multipart part that is a text field (not a file)."""
    disposition = head.decode("utf-8", errors="replace")
    match = re.search(r'(?i)content-disposition:[^\r\n]*\bname="([^"]*)"', disposition)
    if match is None or re.search(r"(?i)\bfilename\*?=", disposition):
        return None
    return match.group(1)


def _every_example(schema: Any, known: Mapping[str, str]) -> Any:
    """An instance with every property: each string in it is a place to probe."""
    return example_value(schema, known, every_property=True)
