"""Keeping the run's own secrets out of what gonogo writes down.

A run knows the passwords and tokens it used (its journeys' variables, the Authorization
headers it sent). Every excerpt gonogo keeps as evidence (a failed step's response, a security
finding's request and response) goes through `redact` first, so that a report or an artifact
never holds a credential of the run.

A secret is replaced wherever it appears as is, URL-encoded (`%40`, `+` for a space),
JSON-escaped, or inside base64 (an HTTP Basic `Authorization` header encodes
`user:password`, so the password is found at any of the three alignments base64 can put it
at). Secrets shorter than `MIN_SECRET_LENGTH` characters are left alone: replacing every `abc`
or `1234` would mangle the text around it more than it protects (such a password is no secret
anyway).
"""

from __future__ import annotations

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "is_secret_name", "redact", "secret_forms", "secrets_of"]

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "<redacted>"
MIN_SECRET_LENGTH = 6
# How a variable that holds a credential is named: its last word (`user_pwd`, `session_id`,
# `api_key`), or an ending that is unambiguous even glued to another word (`userPassword`,
# `accesstoken`, `clientSecret`). `token_type` or `session_count` end in another word.
_SECRET_WORDS = ("pwd", "session", "session_id", "api_key", "auth")
_SECRET_SUFFIXES = ("password", "passwd", "secret", "token", "apikey", "sessionid")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9._~+/-]*)\s+(\S.*?)\s*$")


def is_secret_name(name: str) -> bool:
    """Whether a variable called `name` holds a credential (a password, token, API key, …)."""
    words = _CAMEL.sub("_", name).lower().replace("-", "_").rstrip("0123456789_")
    return words.endswith(_SECRET_SUFFIXES) or any(
        words == word or words.endswith("_" + word) for word in _SECRET_WORDS
    )


def secrets_of(variables: Mapping[str, Any], headers: Mapping[str, str]) -> set[str]:
    """The credentials among a journey's variables and the headers it sent: the values of
    variables whose names look like a password, secret, token, API key or session, and the
    credential part of `Authorization` headers (the token; for Basic, the encoded pair and the
    password inside it)."""
    found: set[str] = set()
    for name, value in variables.items():
        if is_secret_name(name) and isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value)
            if text:
                found.add(text)
    for name, value in headers.items():
        if name.lower() != "authorization":
            continue
        match = _SCHEME.match(value)
        if match is None:
            if value.strip():
                found.add(value.strip())
            continue
        scheme, credential = match.groups()
        found.add(credential)
        if scheme.lower() == "basic":
            found.update(_basic_password(credential))
    return found


def _basic_password(credential: str) -> set[str]:
    try:
        pair = base64.b64decode(credential, validate=True).decode("utf-8")
    except ValueError:
        return set()
    _, colon, password = pair.partition(":")
    return {password} if colon and password else set()


def secret_forms(secret: str) -> set[str]:
    """The ways `secret` can appear in text gonogo keeps: as is, URL-encoded, JSON-escaped, and
    the part of its base64 encoding that does not depend on what precedes or follows it."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret), json.dumps(secret)[1:-1]}
    data = secret.encode("utf-8")
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data + b"\0\0").decode("ascii")
        # Characters that hold only the secret's bits: after the prefix, before the padding.
        start = -(-offset * 8 // 6)
        end = (offset + len(data)) * 8 // 6
        fragment = encoded[start:end]
        if len(fragment) >= MIN_SECRET_LENGTH:
            forms |= {fragment, fragment.replace("+", "-").replace("/", "_")}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    forms = {form for secret in secrets if len(secret) >= MIN_SECRET_LENGTH for form in secret_forms(secret)}
    if not forms:
        return None
    # Longest first: at each position the alternation takes the first form that matches, so a
    # secret that contains another is replaced whole.
    ordered = sorted(forms, key=lambda form: (-len(form), form))
    return re.compile("|".join(re.escape(form) for form in ordered))


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret of `secrets` (of at least `MIN_SECRET_LENGTH` characters), in
    any of its `secret_forms`, replaced by `<redacted>`."""
    pattern = _pattern(secrets)
    return text if pattern is None else pattern.sub(REDACTED, text)
