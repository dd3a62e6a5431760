"""`auth:` on a journey request: HTTP Basic or a bearer token, written into `Authorization`.

```yaml
request: {path: /me, auth: {basic: ["{email}", "{password}"]}}  # Basic base64("user:password")
request: {path: /me, auth: {bearer: "{token}"}}                 # Bearer <token>
```

Both forms may use `{variables}`. Basic credentials are encoded as RFC 7617 says with
`charset="UTF-8"`: base64 of the UTF-8 bytes of `user:password`.
"""

from __future__ import annotations

__all__ = ["Auth", "AuthError", "authorization"]

import base64
import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from gonogo.errors import GonogoError
from gonogo.plan.model import StrictModel

# A header value cannot hold these; a token with them would be refused by httpx, or worse, split.
_BREAKS_HEADER = re.compile(r"[\x00-\x20\x7f]")


class AuthError(GonogoError, ValueError):
    """Credentials that cannot be sent once their variables are filled in."""


def _as_text(value: Any) -> Any:
    # YAML reads `1234` as a number; a password is still text
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


AuthText = Annotated[str, BeforeValidator(_as_text)]


class Auth(StrictModel):
    """Exactly one of `basic: [user, password]` or `bearer: TOKEN`."""

    basic: tuple[AuthText, AuthText] | None = Field(
        default=None, description="[user, password], sent as Basic base64(user:password); may use {variables}"
    )
    bearer: AuthText | None = Field(
        default=None, description="the token, sent as Bearer TOKEN; may use {variables}"
    )

    @field_validator("basic")
    @classmethod
    def _user_without_colon(cls, basic: tuple[str, str] | None) -> tuple[str, str] | None:
        if basic is not None and ":" in basic[0]:
            raise ValueError(
                "a Basic user name cannot contain ':' (RFC 7617: it separates user and password)"
            )
        return basic

    @field_validator("bearer")
    @classmethod
    def _token_given(cls, bearer: str | None) -> str | None:
        if bearer is not None and not bearer.strip():
            raise ValueError("the bearer token is empty")
        return bearer

    @model_validator(mode="after")
    def _exactly_one(self) -> Auth:
        if (self.basic is None) == (self.bearer is None):
            raise ValueError('give exactly one of basic: [user, password] or bearer: "{token}"')
        return self

    def templates(self, where: str) -> Iterator[tuple[str, Any]]:
        """(where, template) for the values that may use {variables}."""
        if self.basic is not None:
            yield f"{where}.basic", list(self.basic)
        if self.bearer is not None:
            yield f"{where}.bearer", self.bearer


def authorization(auth: Auth, text: Callable[[str], str]) -> str:
    """The `Authorization` header's value, once `text` has filled in the variables."""
    if auth.basic is not None:
        user, password = (text(part) for part in auth.basic)
        if ":" in user:
            raise AuthError(f"the Basic user name {user!r} contains ':', which cannot be sent (RFC 7617)")
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    assert auth.bearer is not None
    token = text(auth.bearer)
    if not token or _BREAKS_HEADER.search(token):
        # the token itself stays out of the message: failures are kept as evidence
        raise AuthError(
            f"the bearer token ({len(token)} characters once filled in) is empty "
            "or holds spaces or control characters"
        )
    return f"Bearer {token}"
