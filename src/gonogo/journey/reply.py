"""A response as the journey sees it once its body has been read (and hashed).

The body is streamed: every byte goes through sha256, but only what a step needs is
kept in memory (the whole body, up to `MAX_KEPT_BODY`, when the step reads JSON or text
from it; otherwise just the first `EXCERPT_BYTES` for failure reports). A raw-mode step's
response (`from_raw`) is hashed only when it was kept whole.
"""

from __future__ import annotations

__all__ = ["EXCERPT_BYTES", "MAX_KEPT_BODY", "Reply", "ReplyError", "excerpt"]

import codecs
import email.message
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from gonogo.errors import GonogoError

if TYPE_CHECKING:
    from gonogo.journey.raw import RawResponse

EXCERPT_BYTES = 2048
MAX_KEPT_BODY = 16 * 1024 * 1024

_NOT_PARSED = object()


class ReplyError(GonogoError, ValueError):
    """The body cannot be read the way the step asks (not JSON, too large)."""


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes  # the first bytes of the body (all of it when `complete`)
    size: int  # the body's full size in bytes
    sha256: str | None  # of the whole (decoded) body; None: not known (a raw reply not kept whole)
    complete: bool  # `body` holds the whole body
    _json: Any = field(default=_NOT_PARSED, repr=False)

    @classmethod
    def from_raw(cls, response: RawResponse) -> Reply:
        """A raw client's response (which has a status) as the journey sees it."""
        assert response.status is not None
        return cls(
            status=response.status,
            # As received: the raw client read them as latin-1, httpx decodes UTF-8 where it is.
            headers=httpx.Headers(
                [(key.encode("latin-1"), value.encode("latin-1")) for key, value in response.headers]
            ),
            body=response.body,
            size=response.size,
            sha256=hashlib.sha256(response.body).hexdigest() if response.complete else None,
            complete=response.complete,
        )

    def json(self) -> Any:
        if self._json is _NOT_PARSED:
            if not self.complete:
                raise ReplyError(
                    f"the response body is {self.size} bytes, more than the "
                    f"{MAX_KEPT_BODY // (1024 * 1024)} MiB gonogo reads as JSON"
                )
            try:
                self._json = json.loads(self.body)
            except ValueError as error:
                content_type = self.headers.get("content-type", "no content type")
                raise ReplyError(f"the response is not JSON ({content_type}): {error}") from None
        return self._json

    def parsed_json(self) -> Any:
        """The body's JSON if a step already parsed it, else None (nothing parsed here)."""
        return None if self._json is _NOT_PARSED else self._json

    def text(self) -> str:
        if not self.complete:
            raise ReplyError(
                f"the response body is {self.size} bytes, more than the "
                f"{MAX_KEPT_BODY // (1024 * 1024)} MiB gonogo keeps as text"
            )
        return self.body.decode(self.charset(), errors="replace")

    def charset(self) -> str:
        """The charset the Content-Type names when Python knows it, else UTF-8."""
        message = email.message.Message()
        message["content-type"] = self.headers.get("content-type", "")
        charset = message.get_content_charset()
        if charset:
            try:
                return codecs.lookup(charset).name
            except LookupError:
                pass
        return "utf-8"

    def excerpt(self) -> str:
        return excerpt(self.body, self.size, self.headers.get("content-type", ""))


def excerpt(body: bytes, size: int, content_type: str) -> str:
    """At most `EXCERPT_BYTES` of the body as text, or a description of binary content."""
    head = body[:EXCERPT_BYTES]
    textual = any(word in content_type for word in ("text", "json", "xml", "html", "form"))
    if not textual and head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as error:
            # A multi-byte character cut at the end of the excerpt is still text.
            if error.start < len(head) - 3:
                return f"<{size} bytes of binary content, {content_type or 'no content type'}>"
    return head.decode("utf-8", errors="replace")
