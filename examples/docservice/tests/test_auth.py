"""Password hashing, token issuing and credential rules."""

from __future__ import annotations

import pytest

from conftest import FAST_SCRYPT_N, FakeClock, make_user
from docservice import auth
from docservice.auth import TokenIssuer, hash_password, hash_token, verify_password
from docservice.db import Database


def test_password_hash_round_trip_with_fresh_salts() -> None:
    first = hash_password("correct horse", n=FAST_SCRYPT_N)
    second = hash_password("correct horse", n=FAST_SCRYPT_N)
    assert first != second  # different salts
    assert first.startswith(f"scrypt${FAST_SCRYPT_N}$8$1$")
    assert verify_password("correct horse", first)
    assert verify_password("correct horse", second)
    assert not verify_password("correct horsE", first)


@pytest.mark.parametrize(
    "stored",
    ["", "plain", "bcrypt$1$2$3$4$5", "scrypt$notanumber$8$1$c2FsdA$a2V5", "scrypt$3$8$1$c2FsdA$a2V5"],
)
def test_malformed_hashes_never_verify(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_the_default_cost_is_production_strength() -> None:
    assert hash_password("pw-123456").split("$")[1] == str(2**14)


@pytest.mark.parametrize(
    ("email", "valid"),
    [
        ("ada@example.test", True),
        ("a.b+c@sub.example.org", True),
        ("no-at-sign", False),
        ("two@@example.test", False),
        ("spaces in@example.test", False),
        ("nodot@localhost", False),
        ("x" * 250 + "@e.io", False),
    ],
)
def test_email_rules(email: str, valid: bool) -> None:
    assert auth.valid_email(email) is valid


def test_password_rules_and_normalisation() -> None:
    assert not auth.valid_password("short")
    assert auth.valid_password("long enough")
    assert not auth.valid_password("x" * 257)
    assert auth.normalize_email("  Ada@Example.TEST ") == "ada@example.test"


def test_tokens_are_random_and_stored_hashed() -> None:
    token = auth.new_token()
    assert len(token) >= 43 and token != auth.new_token()
    assert hash_token(token) != token and len(hash_token(token)) == 64


def _issuer(db: Database, clock: FakeClock, ttl: float = 60.0) -> TokenIssuer:
    return TokenIssuer(db, ttl=ttl, scrypt_n=FAST_SCRYPT_N, clock=clock)


def test_login_issues_a_token_that_expires(db: Database, clock: FakeClock) -> None:
    db.create_user("u1", "ada@example.test", hash_password("pw-secret", n=FAST_SCRYPT_N), 0.0)
    issuer = _issuer(db, clock)
    token = issuer.login(" ADA@example.test", "pw-secret")
    assert token is not None
    user = issuer.authenticate(token)
    assert user is not None and user.id == "u1"
    clock.advance(61)
    assert issuer.authenticate(token) is None


def test_login_refuses_wrong_credentials(db: Database, clock: FakeClock) -> None:
    db.create_user("u1", "ada@example.test", hash_password("pw-secret", n=FAST_SCRYPT_N), 0.0)
    issuer = _issuer(db, clock)
    assert issuer.login("ada@example.test", "pw-wrong") is None
    assert issuer.login("bob@example.test", "pw-secret") is None


def test_authenticate_refuses_garbage(db: Database, clock: FakeClock) -> None:
    issuer = _issuer(db, clock)
    assert issuer.authenticate("") is None
    assert issuer.authenticate("x" * 1000) is None
    assert issuer.authenticate("not-a-token") is None


def test_expired_tokens_are_swept_now_and_then(db: Database, clock: FakeClock) -> None:
    user_id = make_user(db)
    db.create_token("old", user_id, now=0.0, expires_at=clock.now - 1)
    db.create_user("u1", "ada@example.test", hash_password("pw-secret", n=FAST_SCRYPT_N), 0.0)
    issuer = _issuer(db, clock)
    issuer._logins = 99  # the next login is the 100th
    assert issuer.login("ada@example.test", "pw-secret") is not None
    with db.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM tokens WHERE token_hash = 'old'").fetchone()[0] == 0
