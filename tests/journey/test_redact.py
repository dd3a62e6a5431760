"""Redaction of the run's secrets: every form a secret can take in text gonogo keeps, and the
credentials found among a journey's variables and headers."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from gonogo.journey.redact import REDACTED, is_secret_name, redact, secrets_of

PASSWORD = "s3cret pass/word+é"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.mark.parametrize(
    "form",
    [
        PASSWORD,
        quote(PASSWORD, safe=""),  # in a query string or a form body
        quote_plus(PASSWORD),
        quote(PASSWORD),  # in a path
        json.dumps(PASSWORD)[1:-1],  # inside a JSON string (`é` escaped as \u00e9)
    ],
)
def test_every_form_of_a_secret_is_redacted(form: str) -> None:
    text = f"before {form} after"
    assert redact(text, [PASSWORD]) == f"before {REDACTED} after"


@pytest.mark.parametrize("user", ["a", "ab", "abc", "alice@example.com"])
def test_a_password_inside_basic_credentials_is_redacted_at_any_alignment(user: str) -> None:
    header = "Authorization: Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    before, marker, after = (
        redact(header, [PASSWORD]).removeprefix("Authorization: Basic ").partition(REDACTED)
    )
    assert marker
    # around the redaction only the characters that also hold bits of `user:` or the padding
    assert len(before) <= -(-len(f"{user}:") * 4 // 3)
    assert len(after) <= 4


def test_the_longest_secret_is_replaced_first() -> None:
    # the token contains the shorter secret: replacing that first would leave the token's ends
    assert redact(f"token={TOKEN}", ["c2lnbmF0", TOKEN]) == f"token={REDACTED}"
    assert redact("a c2lnbmF0 b", ["c2lnbmF0", TOKEN]) == f"a {REDACTED} b"


def test_short_secrets_are_left_alone() -> None:
    # replacing every `1234` would mangle the text more than it protects
    assert redact("pin 1234 in 12345", ["1234", "12345"]) == "pin 1234 in 12345"
    assert redact("pin 123456", ["123456"]) == f"pin {REDACTED}"
    assert redact("nothing", []) == "nothing"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("user_pwd", True),
        ("passwd", True),
        ("password2", True),
        ("newPassword", True),
        ("access_token", True),
        ("refreshToken", True),
        ("token", True),
        ("api_key", True),
        ("apiKey", True),
        ("client_secret", True),
        ("session", True),
        ("session_id", True),
        ("token_type", False),
        ("session_count", False),
        ("possession", False),
        ("email", False),
        ("doc_id", False),
        ("author", False),
    ],
)
def test_names_of_secrets(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_secrets_of_variables_and_authorization_headers() -> None:
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    found = secrets_of(
        {
            "email": "alice@example.com",
            "password": PASSWORD,
            "token_type": "bearer",
            "token": TOKEN,
            "tries": 3,
        },
        {"Authorization": f"Basic {basic}", "Accept": "application/json"},
    )
    assert found == {PASSWORD, TOKEN, basic}
    assert secrets_of({}, {"authorization": f"Bearer {TOKEN}"}) == {TOKEN}
    assert secrets_of({}, {"Authorization": "opaque-key-without-scheme"}) == {"opaque-key-without-scheme"}
    assert secrets_of({"pin": 1234, "api_key": 123456, "flag_secret": True}, {}) == {"123456"}
