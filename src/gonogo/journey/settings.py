"""The `journeys` check's settings: the plan's `checks.<name>` section, validated once.

```yaml
checks:
  e2e:
    kind: journeys
    base_url: "{base_url}"        # default: the plan's system.base_url
    request_timeout: 30s          # per request (a step may override it)
    journeys:
      upload_and_fetch:
        iterations: 5
        concurrency: 2
        variables: {email: "user-{iteration}-{uuid}@example.test"}
        steps:
          - name: login
            request: {method: POST, path: /login, json: {email: "{email}"}}
            expect: {status: 200, json: {"$.token_type": bearer}}
            extract: {token: "json:$.access_token"}
```

Everything a plan can get wrong without running is checked here: step names, JSON
paths, extractors, that every `{variable}` is defined by an earlier step, that
`body_sha256_of` points at an earlier step that sends a body, and that a request the HTTP
client would alter or refuse (a path with `..` segments, a header value with a trailing
space) says `raw: true`, so a test never silently sends something else than it says.
"""

from __future__ import annotations

__all__ = [
    "BodySource",
    "Expect",
    "Journey",
    "JourneysSettings",
    "Poll",
    "RequestSpec",
    "Step",
    "TextExpect",
    "client_header_problem",
    "client_path_problem",
    "inherited_variables",
]

import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from gonogo.journey.auth import Auth
from gonogo.journey.jsonpath import JsonPath
from gonogo.journey.matchers import Matcher, parse_matcher
from gonogo.journey.variables import (
    BUILTINS,
    Extractor,
    names_in,
    parse_extractor,
    unknown_message,
)
from gonogo.plan.model import ByteSize, Duration, LocatedValueError, StrictModel, http_url

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_RESERVED = {*BUILTINS, "base_url", "plan_dir", "run_dir", "work_dir", "port"}
# What h11 (httpx's HTTP/1.1 layer) accepts as a header name and value (RFC 9110 token and
# field-value, bytewise): anything else makes the request fail before it is sent.
_HEADER_NAME = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_HEADER_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_RAW_ADVICE = "set raw: true on the request to send it exactly as written"
# Variables a journey may use without defining them, set while a model that hands a journey
# variables validates it (a load's per-user `setup` feeds its journeys); empty elsewhere.
inherited_variables: ContextVar[frozenset[str]] = ContextVar("inherited_variables", default=frozenset())


def _parse_status(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    statuses = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or not 100 <= item <= 599:
            raise ValueError(f"expected an HTTP status (100-599) or a list of them, not {item!r}")
        statuses.append(item)
    if not statuses:
        raise ValueError("expected at least one HTTP status")
    return tuple(statuses)


def _parse_json_path(value: Any) -> JsonPath:
    if isinstance(value, JsonPath):
        return value
    return JsonPath.parse(value)


def _parse_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name; use letters, digits, '_' or '-' only")
    return value


def _parse_variable_name(value: Any) -> str:
    if not isinstance(value, str) or not _VARIABLE.match(value):
        raise ValueError(
            f"{value!r} is not a valid variable name; use letters, digits and '_', not starting with a digit"
        )
    if value in _RESERVED:
        raise ValueError(f"{value!r} is a built-in name and cannot be redefined")
    return value


def client_path_problem(path: str) -> str | None:
    """Why the HTTP client would not send `path` as written (None: it would).

    httpx removes dot segments (`/files/../x` goes out as `/x`, RFC 3986 §5.2.4) and drops a
    `#fragment`: a traversal test written that way would test nothing.
    """
    absolute = _ABSOLUTE.match(path)
    if absolute:  # a variable holding a same-origin URL: its path starts after the authority
        rest = path[absolute.end() :]
        path = rest[rest.find("/") :] if "/" in rest else ""
    hierarchy = path.split("?", 1)[0].split("#", 1)[0]
    dots = [segment for segment in hierarchy.split("/")[1:] if segment in (".", "..")]
    if dots:
        return (
            f"the path {path!r} has a {dots[0]!r} segment, which the HTTP client would remove "
            f"(it sends {_normalised(hierarchy)!r}); {_RAW_ADVICE}"
        )
    if "#" in path:
        return (
            f"the path {path!r} has a '#', which starts a fragment the HTTP client never sends; "
            f"write %23 for a literal '#', or {_RAW_ADVICE}"
        )
    return None


def _normalised(path: str) -> str:
    """`path` with its dot segments removed, as RFC 3986 §5.2.4 (and httpx) do."""
    output: list[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        elif segment == ".":
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


def client_header_problem(name: str, value: str) -> str | None:
    """Why the HTTP client would refuse the header (None: it sends it as written).

    Values go out as UTF-8; a name must be a token, and a value may not start or end with a
    space or tab, nor hold NUL, CR, LF, vertical tab or form feed.
    """
    if not _HEADER_NAME.fullmatch(name):
        return (
            f"the header name {name!r} is not a token (letters, digits and !#$%&'*+-.^_`|~), "
            f"which the HTTP client refuses; {_RAW_ADVICE}"
        )
    if _HEADER_VALUE.fullmatch(value.encode()):
        return None
    if value != value.strip(" \t"):
        why = "starts or ends with a space or tab"
    else:
        why = "holds a control character (NUL, CR, LF, vertical tab or form feed)"
    return f"the value of header {name} ({value!r}) {why}, which the HTTP client refuses; {_RAW_ADVICE}"


Name = Annotated[str, BeforeValidator(_parse_name)]
VariableName = Annotated[str, BeforeValidator(_parse_variable_name)]
Statuses = Annotated[
    tuple[int, ...] | None,
    PlainValidator(_parse_status),
    PlainSerializer(lambda statuses: list(statuses) if statuses else None),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}}]}),
]
JsonPathKey = Annotated[
    JsonPath,
    PlainValidator(_parse_json_path),
    PlainSerializer(str),
    WithJsonSchema({"type": "string", "description": "a JSON path such as $.items[0].id"}),
]
MatcherField = Annotated[
    Matcher,
    PlainValidator(parse_matcher),
    PlainSerializer(lambda matcher: matcher.to_plan()),
    WithJsonSchema({"description": "a value, or {equals|exists|matches|one_of: ...}"}),
]
ExtractorField = Annotated[
    Extractor,
    PlainValidator(parse_extractor),
    PlainSerializer(str),
    WithJsonSchema({"type": "string", "description": "json:$.path, header:Name, status or body"}),
]
Scalar = str | int | float | bool


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _parse_field_value(value: Any) -> Scalar | list[Scalar]:
    if _is_scalar(value) or (isinstance(value, list) and all(_is_scalar(item) for item in value)):
        return value  # type: ignore[no-any-return]
    raise ValueError("expected text, a number, true/false, or a list of them")


def _parse_scalar(value: Any) -> Scalar:
    if _is_scalar(value):
        return value  # type: ignore[no-any-return]
    raise ValueError("expected text, a number or true/false")


def _parse_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError("expected text (or a number)")


FieldValue = Annotated[
    Scalar | list[Scalar],
    PlainValidator(_parse_field_value),
    WithJsonSchema({"description": "text, a number, true/false, or a list of them"}),
]
ScalarValue = Annotated[
    Scalar,
    PlainValidator(_parse_scalar),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]
Text = Annotated[str, PlainValidator(_parse_text), WithJsonSchema({"type": "string"})]
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class BodySource(StrictModel):
    """Bytes to send: a file on disk (`path`) or `generate` N deterministic pseudo-random bytes.

    Generated content depends only on (journey, iteration, step, field), so the same
    iteration always sends the same bytes and a download can be compared with them.
    """

    path: str | None = Field(default=None, description="relative to the plan's directory")
    generate: ByteSize | None = None
    filename: str | None = Field(default=None, description="may use {variables}")
    content_type: str | None = Field(
        default=None, description="default: guessed from the file name, else application/octet-stream"
    )

    @model_validator(mode="after")
    def _one_source(self) -> BodySource:
        if (self.path is None) == (self.generate is None):
            raise ValueError("give exactly one of path (a file to send) or generate (a size, e.g. 50MB)")
        if self.path is not None and names_in(self.path):
            raise ValueError(
                "a file path may use {plan_dir}, {work_dir} and the other runner placeholders, "
                f"not journey variables ({', '.join(sorted(names_in(self.path)))})"
            )
        return self


def _parse_part(value: Any) -> BodySource | Scalar | list[Scalar]:
    if isinstance(value, dict | BodySource):
        return BodySource.model_validate(value)
    try:
        return _parse_field_value(value)
    except ValueError:
        raise ValueError(
            "expected a form value (text, a number, true/false), a list of them, or a file "
            "({path: FILE} or {generate: SIZE})"
        ) from None


def _parse_body(value: Any) -> BodySource | str:
    if isinstance(value, dict | BodySource):
        return BodySource.model_validate(value)
    if isinstance(value, str):
        return value
    raise ValueError("expected text, {path: FILE} or {generate: SIZE}; for JSON use `json:`")


def _dump_part(value: Any) -> Any:
    return value.model_dump(mode="json", exclude_none=True) if isinstance(value, BodySource) else value


MultipartValue = Annotated[
    BodySource | Scalar | list[Scalar],
    PlainValidator(_parse_part),
    PlainSerializer(_dump_part),
    WithJsonSchema({"description": "a form value, or a file: {path|generate, filename, content_type}"}),
]
BodyValue = Annotated[
    BodySource | str,
    PlainValidator(_parse_body),
    PlainSerializer(_dump_part),
    WithJsonSchema({"description": "text, or {path|generate, content_type}"}),
]


class RequestSpec(StrictModel):
    """One HTTP request. Give at most one body: `json`, `form`, `multipart` or `body`.

    `raw: true` sends it with gonogo's raw client instead of httpx: the path and the headers
    go on the wire exactly as written (once filled in), and `chunked` and `expect_continue`
    become available.
    """

    # Before `path` and `headers`: their checks depend on it.
    raw: bool = Field(
        default=False,
        description="send the path and headers exactly as written (no dot-segment removal, any header value)",
    )
    method: Annotated[HttpMethod, BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)] = "GET"
    path: str = Field(description="starts with /, appended to the base URL; may use {variables}")
    query: dict[str, FieldValue] = Field(default_factory=dict)
    headers: dict[str, Text] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json", description="a JSON body (null: none)")
    form: dict[str, FieldValue] | None = None
    multipart: dict[str, MultipartValue] | None = None
    body: BodyValue | None = None
    auth: Auth | None = Field(default=None, description="basic: [user, password] or bearer: TOKEN")
    chunked: bool = Field(
        default=False, description="raw only: send the body with Transfer-Encoding: chunked"
    )
    expect_continue: bool = Field(
        default=False, description="raw only: send Expect: 100-continue and the body after the server's 100"
    )

    @field_validator("auth")
    @classmethod
    def _one_authorization(cls, auth: Auth | None, info: ValidationInfo) -> Auth | None:
        _refuse_two_authorizations(auth, info.data.get("headers", {}), "headers")
        return auth

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str, info: ValidationInfo) -> str:
        if not (path.startswith("/") or path.startswith("{")):
            raise ValueError(
                "a path starts with / and is appended to the base URL (requests only ever "
                "go to the base URL); e.g. /documents/{doc_id}"
            )
        if not info.data.get("raw"):
            problem = client_path_problem(path)
            if problem:
                raise ValueError(problem)
        return path

    @field_validator("headers")
    @classmethod
    def _sendable(cls, headers: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        # A placeholder is checked once filled in, at run time.
        if not info.data.get("raw"):
            for name, value in headers.items():
                problem = None if names_in([name, value]) else client_header_problem(name, value)
                if problem:
                    raise ValueError(problem)
        return headers

    @model_validator(mode="after")
    def _one_body(self) -> RequestSpec:
        bodies = [
            name
            for name, given in (
                ("json", self.json_body is not None),
                ("form", self.form is not None),
                ("multipart", self.multipart is not None),
                ("body", self.body is not None),
            )
            if given
        ]
        if len(bodies) > 1:
            raise ValueError(f"a request has at most one body; got {' and '.join(bodies)}")
        for option, given in (("chunked", self.chunked), ("expect_continue", self.expect_continue)):
            if given and not self.raw:
                raise ValueError(
                    f"{option}: true needs raw: true (the HTTP client chooses the framing itself); "
                    "add raw: true to the request"
                )
        return self

    @property
    def has_json(self) -> bool:
        return self.json_body is not None

    def sources(self) -> dict[str | None, BodySource | str]:
        """What `body_sha256_of` can point at: multipart files by field name, `body` as None."""
        found: dict[str | None, BodySource | str] = {}
        for field, value in (self.multipart or {}).items():
            if isinstance(value, BodySource):
                found[field] = value
        if self.body is not None:
            found[None] = self.body
        return found

    def templates(self) -> Iterator[tuple[str, Any]]:
        """(where, template) for every value that may use {variables}."""
        yield "request.path", self.path
        for key, value in self.query.items():
            yield f"request.query.{key}", [key, value]
        for key, value in self.headers.items():
            yield f"request.headers.{key}", [key, value]
        if self.has_json:
            yield "request.json", self.json_body
        for key, value in (self.form or {}).items():
            yield f"request.form.{key}", [key, value]
        for key, part in (self.multipart or {}).items():
            if isinstance(part, BodySource):
                yield f"request.multipart.{key}", [key, part.filename]
            else:
                yield f"request.multipart.{key}", [key, part]
        if isinstance(self.body, str):
            yield "request.body", self.body
        elif self.body is not None:
            yield "request.body.filename", self.body.filename
        if self.auth is not None:
            yield from self.auth.templates("request.auth")


def _parse_texts(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    texts = []
    for item in items:
        if isinstance(item, dict | list) or item is None:
            raise ValueError(f"expected text or a list of texts, not {item!r}")
        text = _parse_text(item)
        if not text:
            raise ValueError("an empty text is in every body; give the text to look for")
        texts.append(text)
    return tuple(texts)


def _parse_patterns(value: Any) -> tuple[re.Pattern[str], ...]:
    items = value if isinstance(value, list | tuple) else [value]
    patterns = []
    for item in items:
        if isinstance(item, re.Pattern):
            patterns.append(item)
            continue
        if not isinstance(item, str):
            raise ValueError(f"expected a regular expression (text) or a list of them, not {item!r}")
        try:
            patterns.append(re.compile(item, re.MULTILINE))
        except re.error as error:
            raise ValueError(f"{item!r} is not a valid regular expression: {error}") from None
    return tuple(patterns)


Texts = Annotated[
    tuple[str, ...],
    PlainValidator(_parse_texts),
    PlainSerializer(list),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]
Patterns = Annotated[
    tuple[re.Pattern[str], ...],
    PlainValidator(_parse_patterns),
    PlainSerializer(lambda patterns: [pattern.pattern for pattern in patterns]),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]


class TextExpect(StrictModel):
    """What the body must say, read as text (UTF-8, or the charset its Content-Type names).

    Each key takes one text or a list; every item must hold. `contains` and `not_contains`
    may use {variables}; a regular expression is written as is (its braces are its own) and
    is searched with `^` and `$` matching at every line, as /metrics-style bodies need.
    """

    contains: Texts = Field(default=(), description="texts the body must contain")
    not_contains: Texts = Field(default=(), description="texts the body must not contain")
    matches: Patterns = Field(default=(), description="regular expressions found in the body")
    not_matches: Patterns = Field(default=(), description="regular expressions not found in the body")

    @model_validator(mode="after")
    def _something(self) -> TextExpect:
        if not (self.contains or self.not_contains or self.matches or self.not_matches):
            raise ValueError(
                'give at least one of contains, not_contains, matches or not_matches, e.g. {contains: "up 1"}'
            )
        return self

    def templates(self) -> Iterator[tuple[str, Any]]:
        if self.contains:
            yield "expect.text.contains", list(self.contains)
        if self.not_contains:
            yield "expect.text.not_contains", list(self.not_contains)


def _parse_text_expect(value: Any) -> Any:
    # A plain text would read as "the body equals this" by analogy with `json:`; say what is meant.
    if isinstance(value, str):
        example = f"text: {{contains: {value!r}}}"
        raise ValueError(
            "expected a mapping of contains, not_contains, matches, not_matches (each a text or a "
            f"list), e.g. {example}"
        )
    if isinstance(value, list):
        raise ValueError("expected a mapping of contains, not_contains, matches, not_matches, not a list")
    return value


class Expect(StrictModel):
    """What the response must be. Without `status`, any 2xx status passes."""

    status: Statuses = None
    json_fields: dict[JsonPathKey, MatcherField] = Field(default_factory=dict, alias="json")
    headers: dict[str, MatcherField] = Field(default_factory=dict)
    body_sha256_of: str | None = Field(
        default=None,
        description="the body must equal what an earlier step sent: STEP, or STEP.FIELD "
        "for a multipart file field",
    )
    body_sha256: str | None = None
    text: Annotated[TextExpect | None, BeforeValidator(_parse_text_expect)] = Field(
        default=None, description="the body as text: {contains, not_contains, matches, not_matches}"
    )

    @field_validator("body_sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None:
            value = value.strip().lower()
            if not _SHA256.match(value):
                raise ValueError("expected a sha256 as 64 hexadecimal digits")
        return value

    @property
    def needs_body(self) -> bool:
        return bool(self.json_fields) or self.text is not None

    @property
    def needs_hash(self) -> bool:
        return self.body_sha256_of is not None or self.body_sha256 is not None

    def templates(self) -> Iterator[tuple[str, Any]]:
        for path, matcher in self.json_fields.items():
            yield f"expect.json.{path}", matcher.templates()
        for name, matcher in self.headers.items():
            yield f"expect.headers.{name}", matcher.templates()
        if self.text is not None:
            yield from self.text.templates()


class Poll(StrictModel):
    """Repeat the request until the response satisfies `until` (and `status`, if given)."""

    until: dict[JsonPathKey, MatcherField] = Field(default_factory=dict)
    status: Statuses = None
    interval: Duration = Field(default=0.5, gt=0)
    timeout: Duration = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _has_condition(self) -> Poll:
        if not self.until and self.status is None:
            raise ValueError("poll needs a condition: until (JSON path → expected value), status, or both")
        return self

    def templates(self) -> Iterator[tuple[str, Any]]:
        for path, matcher in self.until.items():
            yield f"poll.until.{path}", matcher.templates()


class Step(StrictModel):
    name: Name
    request: RequestSpec
    expect: Expect = Field(default_factory=Expect)
    extract: dict[VariableName, ExtractorField] = Field(default_factory=dict)
    poll: Poll | None = None
    request_timeout: Duration | None = Field(default=None, gt=0, description="overrides the check's")

    @property
    def needs_body(self) -> bool:
        """Whether the whole response body is read (JSON or text), not just an excerpt."""
        polls_json = self.poll is not None and bool(self.poll.until)
        return self.expect.needs_body or polls_json or any(e.needs_body for e in self.extract.values())

    def templates(self) -> Iterator[tuple[str, Any]]:
        yield from self.request.templates()
        yield from self.expect.templates()
        if self.poll is not None:
            yield from self.poll.templates()


class Journey(StrictModel):
    iterations: int = Field(default=1, ge=1, le=1_000_000)
    concurrency: int = Field(default=1, ge=1, le=1000, description="iterations in flight at once")
    variables: dict[VariableName, ScalarValue] = Field(
        default_factory=dict,
        description="set at the start of every iteration, in order; may use the built-ins "
        "{iteration}, {uuid}, {journey} and earlier variables",
    )
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _coherent(self) -> Journey:
        known: set[str] = set(BUILTINS) | inherited_variables.get()
        for name, value in self.variables.items():
            _require_known(f"variables.{name}", value, known, "")
            known.add(name)
        seen: dict[str, int] = {}
        for index, step in enumerate(self.steps):
            label = f"step {step.name!r} (steps[{index}])"
            if step.name in seen:
                raise ValueError(f"{label}: another step (steps[{seen[step.name]}]) has that name")
            for where, template in step.templates():
                _require_known(where, template, known, label, at=("steps", index, *_keys(where)))
            if step.expect.body_sha256_of is not None:
                self._check_sha_reference(step, label, seen)
            seen[step.name] = index
            known.update(step.extract)
        return self

    def _check_sha_reference(self, step: Step, label: str, seen: dict[str, int]) -> None:
        reference = step.expect.body_sha256_of
        assert reference is not None
        target, _, field = reference.partition(".")
        if target not in seen:
            earlier = ", ".join(seen) or "none"
            raise ValueError(
                f"{label}: expect.body_sha256_of names {target!r}, which is not an earlier "
                f"step of this journey (earlier steps: {earlier})"
            )
        sources = self.steps[seen[target]].request.sources()
        if field:
            if field not in sources:
                raise ValueError(
                    f"{label}: expect.body_sha256_of: step {target!r} sends no file in "
                    f"multipart field {field!r} (its files: {', '.join(map(str, sources)) or 'none'})"
                )
        elif len(sources) != 1:
            if not sources:
                raise ValueError(
                    f"{label}: expect.body_sha256_of: step {target!r} sends no file or body to "
                    "compare with (give it a multipart file or a body)"
                )
            raise ValueError(
                f"{label}: expect.body_sha256_of: step {target!r} sends several files; "
                f"name one, e.g. {target}.{next(name for name in sources if name)}"
            )

    def body_source_key(self, reference: str) -> tuple[str, str | None]:
        """(step, multipart field or None for `body`) that `body_sha256_of` refers to."""
        target, _, field = reference.partition(".")
        if field:
            return target, field
        step = next(s for s in self.steps if s.name == target)
        return target, next(iter(step.request.sources()))


def _refuse_two_authorizations(auth: Auth | None, headers: dict[str, str], where: str) -> None:
    written = [name for name in headers if name.lower() == "authorization"]
    if auth is not None and written:
        raise ValueError(
            f"both auth and {where}.{written[0]} set the Authorization header; keep auth "
            f"(it writes the header) and remove {where}.{written[0]}"
        )


def _require_known(
    where: str, template: Any, known: set[str], label: str, at: tuple[str | int, ...] = ()
) -> None:
    for name in sorted(names_in(template)):
        if name not in known:
            prefix = f"{label}: " if label else ""
            problem = unknown_message(name, known)
            raise LocatedValueError(f"{prefix}{where}: {problem}", at, problem if at else "")


def _keys(where: str) -> list[str]:
    """The plan keys of a template's place (`request.auth.bearer`), up to a JSON path."""
    keys: list[str] = []
    for part in where.split("."):
        if not part.isidentifier():
            break
        keys.append(part)
    return keys


class JourneysSettings(StrictModel):
    """Multi-step HTTP user journeys against the system's base URL."""

    base_url: str | None = Field(
        default=None, description="default: the plan's system.base_url; may use {port.NAME}"
    )
    request_timeout: Duration = Field(default=30.0, gt=0, description="per request")
    headers: dict[str, Text] = Field(
        default_factory=dict, description="sent with every request; may use {iteration}, {uuid}, {journey}"
    )
    auth: Auth | None = Field(
        default=None, description="sent with every request unless a step has its own auth or Authorization"
    )
    verify_tls: bool = True
    journeys: dict[Name, Journey] = Field(min_length=1)

    @field_validator("headers")
    @classmethod
    def _builtins_only(cls, headers: dict[str, str]) -> dict[str, str]:
        for key, value in headers.items():
            _require_known(f"headers.{key}", [key, value], set(BUILTINS), "")
        return headers

    @field_validator("auth")
    @classmethod
    def _auth_builtins_only(cls, auth: Auth | None, info: ValidationInfo) -> Auth | None:
        if auth is not None:
            for where, template in auth.templates("auth"):
                _require_known(where, template, set(BUILTINS), "")
        _refuse_two_authorizations(auth, info.data.get("headers", {}), "headers")
        return auth

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @model_validator(mode="after")
    def _sendable_headers(self) -> JourneysSettings:
        plain = [
            f"{journey}.{step.name}"
            for journey, spec in self.journeys.items()
            for step in spec.steps
            if not step.request.raw
        ]
        for name, value in self.headers.items():
            problem = None if names_in([name, value]) else client_header_problem(name, value)
            if problem and plain:
                # Sent with every request: only raw steps may carry it.
                message = (
                    f"{problem.removesuffix(_RAW_ADVICE)}move it to the headers of steps that "
                    f"say raw: true (step {plain[0]} does not)"
                )
                raise LocatedValueError(f"headers.{name}: {message}", ("headers", name), message)
        return self
