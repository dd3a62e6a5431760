"""Passwords, access tokens and the input rules for credentials.

Passwords are hashed with scrypt and a random 16-byte salt; the stored string carries its
parameters (`scrypt$n$r$p$salt$hash`), so the cost can be raised later without breaking
existing users. Access tokens are 256-bit random strings handed to the client once and
stored only as their SHA-256, with an expiry.
"""

from __future__ import annotations

__all__ = [
    "EMAIL_PATTERN",
    "TokenIssuer",
    "hash_password",
    "hash_token",
    "new_token",
    "normalize_email",
    "valid_email",
    "valid_password",
    "verify_password",
]

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable

from docservice.db import Database, User

# no whitespace or control characters (PostgreSQL refuses NUL in text)
EMAIL_PATTERN = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256
MAX_EMAIL = 254
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * n * r + 1024 * 1024,
        dklen=KEY_BYTES,
    )


def hash_password(password: str, *, n: int = 2**14) -> str:
    """A self-describing scrypt hash of the password with a fresh salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, n, SCRYPT_R, SCRYPT_P)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True when the password matches the stored hash; False for any malformed hash."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def valid_email(email: str) -> bool:
    return len(email) <= MAX_EMAIL and EMAIL_PATTERN.match(email) is not None


def valid_password(password: str) -> bool:
    return MIN_PASSWORD <= len(password) <= MAX_PASSWORD


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenIssuer:
    """Logs users in and resolves bearer tokens back to users."""

    def __init__(
        self,
        db: Database,
        *,
        ttl: float,
        scrypt_n: int = 2**14,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.ttl = ttl
        self.clock = clock
        # Verified against when the email is unknown, so a login takes as long either way
        # and the response time does not reveal which emails are registered.
        self._decoy_hash = hash_password(new_token(), n=scrypt_n)
        self._logins = 0

    def login(self, email: str, password: str) -> str | None:
        """A new access token, or None when the credentials are wrong."""
        user = self.db.get_user_by_email(normalize_email(email))
        if user is None:
            verify_password(password, self._decoy_hash)
            return None
        if not verify_password(password, user.password_hash):
            return None
        now = self.clock()
        token = new_token()
        self.db.create_token(hash_token(token), user.id, now, now + self.ttl)
        self._logins += 1
        if self._logins % 100 == 0:  # housekeeping, cheap enough to do inline now and then
            self.db.delete_expired_tokens(now)
        return token

    def authenticate(self, token: str) -> User | None:
        """The user a valid, unexpired token belongs to."""
        if not token or len(token) > 512:
            return None
        return self.db.user_for_token(hash_token(token), self.clock())
