"""Journey variables: `{name}` placeholders and the extractors that fill them.

A placeholder is `{name}` where name is an identifier. Names are, in this order of
definition: the built-ins `iteration` (1, 2, …), `uuid` (fresh per iteration) and
`journey`; the journey's own `variables`; then whatever earlier steps `extract`ed.
The runner's placeholders (`{base_url}`, `{port.NAME}`, `{plan_dir}`, `{run_dir}`,
`{work_dir}`) are handed to the runner's `expand`. `{{name}}` is a literal `{name}`.
Any other brace (`{}`, `{"a": 1}`, `\\d{2,3}`) is just text.

Inside JSON values (a request's `json`, an expected value), a string that is exactly
one placeholder keeps the variable's type: `"{user_id}"` sends the number 42, not "42".
"""

from __future__ import annotations

__all__ = [
    "BUILTINS",
    "ExtractionError",
    "Extractor",
    "VariableError",
    "names_in",
    "parse_extractor",
    "render",
    "render_value",
    "stringify",
    "unknown_message",
]

import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gonogo.errors import GonogoError
from gonogo.journey.jsonpath import JsonPath
from gonogo.journey.reply import Reply, ReplyError
from gonogo.plan.model import PLACEHOLDER

BUILTINS = ("iteration", "uuid", "journey")

_TOKEN = re.compile(r"\{\{([A-Za-z_][\w.-]*)\}\}|\{([A-Za-z_][\w.-]*)\}")

Expand = Callable[[str], str]


class VariableError(GonogoError, ValueError):
    """A placeholder names no variable known at this point of the journey."""


class ExtractionError(GonogoError, ValueError):
    """A value to extract is not in the response."""


def _is_runner_placeholder(name: str) -> bool:
    return PLACEHOLDER.fullmatch("{" + name + "}") is not None


def _placeholders(text: str) -> Iterator[re.Match[str]]:
    """The `{name}` placeholders of text (not the escaped `{{name}}` ones)."""
    for match in _TOKEN.finditer(text):
        if match.group(2) is not None:
            yield match


def names_in(value: Any) -> set[str]:
    """The journey variable names a template (or a JSON value of templates) refers to."""
    found: set[str] = set()
    if isinstance(value, str):
        for match in _placeholders(value):
            if not _is_runner_placeholder(match.group(2)):
                found.add(match.group(2))
    elif isinstance(value, dict):
        for key, item in value.items():
            found |= names_in(key) | names_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found |= names_in(item)
    return found


def unknown_message(name: str, known: Mapping[str, Any] | set[str]) -> str:
    available = sorted(known)
    close = difflib.get_close_matches(name, available, n=1, cutoff=0.6)
    hint = f"; did you mean {{{close[0]}}}?" if close else ""
    return (
        f"{{{name}}} is not a variable at this point of the journey{hint} "
        f"(defined here: {', '.join(available)}; write {{{{{name}}}}} for a literal {{{name}}})"
    )


def stringify(value: Any) -> str:
    """How a variable's value reads inside text: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def render(text: str, variables: Mapping[str, Any], expand: Expand) -> str:
    """Fill every placeholder of text; raises VariableError for an unknown name."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return "{" + match.group(1) + "}"
        name = match.group(2)
        if name in variables:
            return stringify(variables[name])
        if _is_runner_placeholder(name):
            return expand(match.group(0))
        raise VariableError(unknown_message(name, variables))

    return _TOKEN.sub(substitute, text)


def render_value(value: Any, variables: Mapping[str, Any], expand: Expand) -> Any:
    """Render every string inside a JSON value; a lone `{name}` keeps the variable's type."""
    if isinstance(value, str):
        match = _TOKEN.fullmatch(value)
        if match and match.group(2) is not None and match.group(2) in variables:
            return variables[match.group(2)]
        return render(value, variables, expand)
    if isinstance(value, dict):
        return {
            render(str(key), variables, expand): render_value(item, variables, expand)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [render_value(item, variables, expand) for item in value]
    return value


@dataclass(frozen=True)
class Extractor:
    """Where a variable's value comes from: `json:$.path`, `header:Name`, `status` or `body`."""

    source: Literal["json", "header", "status", "body"]
    path: JsonPath | None = None
    header: str | None = None

    def __str__(self) -> str:
        if self.source == "json":
            return f"json:{self.path}"
        if self.source == "header":
            return f"header:{self.header}"
        return self.source

    @property
    def needs_body(self) -> bool:
        return self.source in ("json", "body")

    def extract(self, reply: Reply) -> Any:
        """The value from the response; raises ExtractionError when it is not there."""
        if self.source == "status":
            return reply.status
        if self.source == "header":
            assert self.header is not None
            if self.header not in reply.headers:
                raise ExtractionError(f"the response has no {self.header} header")
            return reply.headers[self.header]
        try:
            if self.source == "body":
                return reply.text()
            assert self.path is not None
            found, value = self.path.find(reply.json())
        except ReplyError as error:
            raise ExtractionError(str(error)) from None
        if not found:
            raise ExtractionError(f"{self.path} is not in the response body")
        return value


def parse_extractor(value: Any) -> Extractor:
    if isinstance(value, Extractor):
        return value
    if not isinstance(value, str):
        raise ValueError("expected an extractor: json:$.path, header:Name, status or body")
    text = value.strip()
    if text in ("status", "body"):
        return Extractor(text)  # type: ignore[arg-type]
    source, _, rest = text.partition(":")
    if source == "json":
        return Extractor("json", path=JsonPath.parse(rest.strip()))
    if source == "header" and rest.strip():
        return Extractor("header", header=rest.strip())
    raise ValueError(
        f"{value!r} is not an extractor; expected json:$.path (e.g. json:$.id), "
        "header:Name (e.g. header:Location), status or body"
    )
