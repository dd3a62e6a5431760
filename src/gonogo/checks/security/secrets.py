"""Secrets: the passwords and tokens gonogo used must not show up where they do not belong.

- In the services' logs (each read whole, up to `MAX_LOG_BYTES`): a password or a token there
  is high (category secrets). The finding names the file and the first line, shows that line
  redacted and counts the lines that hold it.
- In responses: a password in any response is critical; a token in a response other than the
  one that issued it (the first of the journeys' responses to hold it, `POST /login`) is high.
  The journeys' responses are read from the target's exchanges (their bodies as recorded: the
  whole body when a step read it, else its first 2 KiB, and their headers except Set-Cookie,
  whose job is to hand a session out again); the other parts' responses are given as
  (operation, body) pairs, where any token is out of place.

A secret is looked for in every form `gonogo.journey.redact` replaces: as is, URL-encoded,
JSON-escaped, inside base64. Secrets shorter than `MIN_SECRET_LENGTH` characters are not looked
for (they would be found in unrelated text); a note says so.
"""

from __future__ import annotations

__all__ = ["MAX_LOG_BYTES", "check_secrets"]

import base64
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gonogo.checks.security.findings import Finding, PartResult, Severity
from gonogo.checks.security.settings import SecretsSettings
from gonogo.checks.security.target import Exchange, Target, UserSession
from gonogo.journey.raw import RawClient
from gonogo.journey.redact import MIN_SECRET_LENGTH, is_secret_name, redact, secret_forms

MAX_LOG_BYTES = 256 * 1024 * 1024  # per log file
MAX_LINE = 1024 * 1024  # a longer line is read in pieces
LINE_EXCERPT = 400
BODY_EXCERPT = 1024
_PASSWORD_NAME = re.compile(r"pass|pwd", re.IGNORECASE)

FIX_LOG = (
    "never log credentials: log who logged in, not the password; mask Authorization headers, "
    "tokens and session ids in access and debug logs"
)
FIX_PASSWORD = "never send a password back: leave it out of every response (store only its hash)"
FIX_TOKEN = (
    "send a token only in the response that issues it; leave it out of other responses (profiles, "
    "echoes, error messages)"
)


@dataclass(frozen=True)
class _Secret:
    value: str
    label: str  # "the first user's password `password`"
    password: bool
    shell: str  # the variable a reproduction uses for it: PASSWORD, SECOND_TOKEN


def _secrets_of(users: list[UserSession]) -> list[_Secret]:
    found: dict[str, _Secret] = {}
    for index, user in enumerate(users):
        prefix = "" if index == 0 else "SECOND_" if index == 1 else f"USER{index + 1}_"
        names = {str(value): name for name, value in user.variables.items() if is_secret_name(name)}
        basic = _basic_parts(user.auth_headers)
        for value in sorted(user.secrets):
            name = names.get(value)
            password = value in basic or (name is not None and _PASSWORD_NAME.search(name) is not None)
            kind = "password" if password else "token"
            where = f" `{name}`" if name else " (its Authorization header)" if not password else ""
            found.setdefault(
                value,
                _Secret(value, f"the {user.label}'s {kind}{where}", password, prefix + kind.upper()),
            )
    return list(found.values())


def _basic_parts(headers: Mapping[str, str]) -> set[str]:
    """The encoded pair and the password of a Basic Authorization header: both give the password away."""
    parts: set[str] = set()
    for name, value in headers.items():
        scheme, _, credential = value.strip().partition(" ")
        if name.lower() != "authorization" or scheme.lower() != "basic":
            continue
        parts.add(credential.strip())
        try:
            pair = base64.b64decode(credential.strip(), validate=True).decode("utf-8")
        except ValueError:
            continue
        parts.add(pair.partition(":")[2])
    return parts


class _Finder:
    """Finds the secrets, in all their forms, in text."""

    def __init__(self, secrets: list[_Secret]) -> None:
        self.by_form: dict[str, _Secret] = {}
        for secret in sorted(secrets, key=lambda item: -len(item.value)):
            for form in secret_forms(secret.value):
                self.by_form.setdefault(form, secret)
        ordered = sorted(self.by_form, key=lambda form: (-len(form), form))
        self.pattern = re.compile("|".join(re.escape(form) for form in ordered)) if ordered else None

    def find(self, text: str) -> list[_Secret]:
        if self.pattern is None:
            return []
        seen: dict[str, _Secret] = {}
        for match in self.pattern.finditer(text):
            secret = self.by_form[match.group(0)]
            seen.setdefault(secret.value, secret)
        return list(seen.values())


def check_secrets(
    settings: SecretsSettings, target: Target, responses: Iterable[tuple[str, bytes]] = ()
) -> PartResult:
    """Look for the run's secrets in the services' logs and in responses (see the module's docstring)."""
    result = PartResult("secrets")
    secrets = _secrets_of(target.users)
    short = [secret for secret in secrets if len(secret.value) < MIN_SECRET_LENGTH]
    secrets = [secret for secret in secrets if len(secret.value) >= MIN_SECRET_LENGTH]
    if short:
        result.notes.append(
            f"{len(short)} secret(s) shorter than {MIN_SECRET_LENGTH} characters not looked for "
            f"({', '.join(secret.label for secret in short)}): they would be found in unrelated text"
        )
    if not secrets:
        result.not_measured = "the journeys used no password or token to look for"
        return result
    result.tally.add("secrets", len(secrets))
    finder = _Finder(secrets)
    hidden = target.secrets
    findings: dict[tuple[str, ...], Finding] = {}

    def keep(finding: Finding) -> None:
        findings.setdefault(finding.key(), finding)

    for service, path in _logs(settings, target, result):
        for finding in _log_findings(service, path, finder, hidden, result):
            keep(finding)
    client = RawClient(target.base_url)
    issued: dict[str, str] = {}  # token → the operation whose response issued it
    for exchange in target.exchanges:
        result.tally.add("responses")
        label = _operation(target, exchange)
        text = _response_text(exchange)
        for secret in finder.find(text):
            if secret.password:
                keep(_response_finding(secret, label, text, hidden, None, exchange, client))
            elif secret.value in issued:
                keep(_response_finding(secret, label, text, hidden, issued[secret.value], exchange, client))
            else:
                issued[secret.value] = label  # the response that issued it
    for label, body in responses:
        result.tally.add("responses")
        text = body.decode("utf-8", errors="replace")
        for secret in finder.find(text):
            keep(_response_finding(secret, label, text, hidden, issued.get(secret.value)))
    result.findings = list(findings.values())
    return result


# -- logs ---------------------------------------------------------------------------------------


def _logs(settings: SecretsSettings, target: Target, result: PartResult) -> list[tuple[str, Path]]:
    wanted = settings.services if settings.services is not None else list(target.log_files)
    missing = [service for service in wanted if service not in target.log_files]
    if missing:
        result.notes.append(f"no log to read for {', '.join(missing)} (not a service gonogo started)")
    if not target.log_files:
        result.notes.append("no service log to read: the system was not started by gonogo")
    return [(service, target.log_files[service]) for service in wanted if service in target.log_files]


def _lines(path: Path, result: PartResult) -> Iterator[tuple[int, str]]:
    """(line number, text) of the file's first MAX_LOG_BYTES."""
    read = 0
    number = 1
    try:
        with path.open("rb") as log:
            while read < MAX_LOG_BYTES:
                piece = log.readline(min(MAX_LINE, MAX_LOG_BYTES - read))
                if not piece:
                    return
                read += len(piece)
                yield number, piece.decode("utf-8", errors="replace").rstrip("\r\n")
                if piece.endswith(b"\n"):
                    number += 1
            if log.read(1):
                result.notes.append(f"{path}: only its first {MAX_LOG_BYTES // 2**20} MiB were read")
    except OSError as error:
        result.notes.append(f"{path}: cannot read the log: {error.strerror or error}")
    finally:
        result.tally.add("log_bytes", read)


def _log_findings(
    service: str, path: Path, finder: _Finder, hidden: frozenset[str], result: PartResult
) -> list[Finding]:
    result.tally.add("logs")
    first: dict[str, tuple[_Secret, int, str]] = {}
    lines: dict[str, int] = {}
    for number, text in _lines(path, result):
        for secret in finder.find(text):
            first.setdefault(secret.value, (secret, number, text))
            lines[secret.value] = lines.get(secret.value, 0) + 1
    findings = []
    for value, (secret, number, text) in first.items():
        shown = redact(text, hidden)
        if len(shown) > LINE_EXCERPT:
            shown = shown[:LINE_EXCERPT] + " …"
        count = lines[value]
        also = f" and {count - 1} more line(s)" if count > 1 else ""
        findings.append(
            Finding(
                rule="secrets.in-log",
                title=f"{secret.label} is in the log of {service} ({path.name} line {number}{also})",
                severity="high",
                category="secrets",
                operation=f"log of {service}",
                request=f"{path}:{number}",
                response=shown,
                reproduction=f'grep -n -F -- "${secret.shell}" {_shell_path(path)}',
                fix=FIX_LOG,
                details={"parameter": secret.label, "file": str(path), "line": number, "lines": count},
            )
        )
    return findings


def _shell_path(path: Path) -> str:
    text = str(path)
    return text if re.fullmatch(r"[\w./-]+", text) else "'" + text.replace("'", "'\\''") + "'"


# -- responses ------------------------------------------------------------------------------------


def _operation(target: Target, exchange: Exchange) -> str:
    if exchange.operation:
        return exchange.operation
    path = urlsplit(exchange.url).path
    operation = target.openapi.operation_for(exchange.method, path) if target.openapi else None
    return operation.label if operation is not None else f"{exchange.method} {path}"


def _response_text(exchange: Exchange) -> str:
    headers = [
        f"{name}: {value}" for name, value in exchange.response_headers if name.lower() != "set-cookie"
    ]
    status = f"HTTP/1.1 {exchange.status}"
    body = exchange.response_body.decode("utf-8", errors="replace")
    return "\n".join([status, *headers]) + "\n\n" + body


def _response_finding(
    secret: _Secret,
    label: str,
    text: str,
    hidden: frozenset[str],
    issuer: str | None,
    exchange: Exchange | None = None,
    client: RawClient | None = None,
) -> Finding:
    """A password in a response (critical), or a token in one that did not issue it (high)."""
    kind = "password" if secret.password else "token"
    severity: Severity = "critical" if secret.password else "high"
    where = ""
    if not secret.password:
        where = (
            f", which {issuer} issued" if issuer else ", which only the response that issued it should hold"
        )
    shown = redact(text, hidden)
    if len(shown) > BODY_EXCERPT:
        shown = shown[:BODY_EXCERPT] + " …"
    request = reproduction = ""
    if exchange is not None and client is not None:
        parts = urlsplit(exchange.url)
        target_path = parts.path + (f"?{parts.query}" if parts.query else "")
        request = redact(f"{exchange.method} {target_path}", hidden)
        headers = [(name, _placeholder(name, value)) for name, value in exchange.headers if _replayable(name)]
        body = (
            redact(exchange.body.decode("utf-8", errors="replace"), hidden).encode()
            if exchange.body
            else None
        )
        reproduction = client.curl(
            exchange.method, redact(target_path, hidden), headers, body, expand=("TOKEN", "COOKIE")
        )
    return Finding(
        rule=f"secrets.{kind}-in-response",
        title=f"{label} answers with {secret.label}{where}",
        severity=severity,
        category="secrets",
        operation=label,
        request=request,
        response=shown,
        reproduction=reproduction,
        fix=FIX_PASSWORD if secret.password else FIX_TOKEN,
        details={"parameter": secret.label},
    )


def _replayable(name: str) -> bool:
    return name.lower() not in ("host", "content-length", "connection", "accept-encoding")


def _placeholder(name: str, value: str) -> str:
    if name.lower() == "cookie":
        return "$COOKIE"
    if name.lower() == "authorization":
        scheme, space, rest = value.strip().partition(" ")
        return f"{scheme} $TOKEN" if space and rest.strip() else "$TOKEN"
    return value
