"""Secrets: the passwords and tokens gonogo used must not show up where they do not belong.

- In the services' logs (each read whole, up to `MAX_LOG_BYTES`): a password or a token there
  is high (category secrets, `secrets.in-log`). The finding names the file and the first line,
  shows that line redacted and counts the lines that hold it.
- Also in the logs, credentials whatever their origin (`secrets.credential-in-log`, high): a
  JWT, a `Bearer` token, a `password=…` or `"password": "…"` pair with a value, such as the
  reset token a forgot-password route prints. One finding per log and kind, naming the first
  line and showing it with the value redacted. What gonogo sent itself is left to
  `secrets.in-log` and not reported twice: the run's tokens, those of the journeys' requests,
  and what the other parts made of them (a truncated token, one whose signature is altered);
  and no password pair is reported in a log where a password of the run was found already.
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
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from gonogo.checks.security.findings import Finding, PartResult, Severity
from gonogo.checks.security.settings import SecretsSettings
from gonogo.checks.security.target import Exchange, Target, UserSession
from gonogo.journey.raw import RawClient
from gonogo.journey.redact import MIN_SECRET_LENGTH, REDACTED, is_secret_name, redact, secret_forms

MAX_LOG_BYTES = 256 * 1024 * 1024  # per log file
MAX_LINE = 1024 * 1024  # a longer line is read in pieces
LINE_EXCERPT = 400
BODY_EXCERPT = 1024
_PASSWORD_NAME = re.compile(r"pass|pwd", re.IGNORECASE)

# Credentials in a log line, whatever their origin; the named group is the value to redact.
_JWT = re.compile(r"(?P<value>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})")
_BEARER = re.compile(r"\bBearer[ \t]+(?P<value>[A-Za-z0-9._~+/-]{20,}=*)", re.IGNORECASE)
_PASSWORD_PAIR = re.compile(
    r"""
    (?<![\w-])(?P<key>[\w-]*(?:password|passwd))=       # password=… (new_password=…)
    (?:"(?P<dq>[^"]*)" | '(?P<sq>[^']*)'
      | (?P<value>[^\s"'&,;(){}\[\]<>]++)(?!\())       # (not `SecretStr(…)`, a masked repr)
    | (?P<q>["'])(?P<qkey>[\w-]*(?:password|passwd))(?P=q)[ \t]*:[ \t]*   # "password": "…"
      (?:"(?P<jdq>[^"]*)" | '(?P<jsq>[^']*)')
    """,
    re.IGNORECASE | re.VERBOSE,
)
# A value that only stands for a password: masked, a placeholder, empty-like.
_MASKED = re.compile(
    r"^(?:[*x•.…]+|<[^>]*>|\[[^\]]*\]|\{[^}]*\}|\$\w+|\$\{[^}]*\}|%s|null|none|nil|undefined"
    r"|redacted|hidden|masked|filtered|secret|true|false)$",
    re.IGNORECASE,
)
_KINDS = {
    "jwt": ("a JWT", "eyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]{8,}", ""),
    "bearer": ("a bearer token", "Bearer[[:space:]]+[A-Za-z0-9._~+/-]{20,}", "-i "),
    "password": ("a password", "(password|passwd)[\"']?[[:space:]]*[=:]", "-i "),
}

FIX_LOG = (
    "never log credentials: log who logged in, not the password; mask Authorization headers, "
    "tokens and session ids in access and debug logs"
)
FIX_CREDENTIAL = (
    "never log credentials: a token (reset, verification, access) or a password in a log lets "
    "whoever reads the log act as the user; log that one was issued or checked, not its value"
)
FIX_PASSWORD = "never send a password back: leave it out of every response (store only its hash)"
FIX_TOKEN = (
    "send a token only in the response that issues it; leave it out of other responses (profiles, "
    "echoes, error messages)"
)


@dataclass(frozen=True)
class _Secret:
    value: str
    label: str  # "a password of the first user (of journey login)"
    password: bool
    shell: str  # the variable a reproduction uses for it: PASSWORD, SECOND_TOKEN
    source: str = ""  # the variable that held it (`password`), else where it was sent


def _whose(label: str) -> str:
    """A user's label as a title says it: `first user of login` → `the first user (of journey login)`."""
    role, of, journey = label.partition(" of ")
    return f"the {role} (of journey {journey})" if of else f"the {label}"


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
            sent_in = sorted(header for header, text in user.auth_headers.items() if value in text)
            source = f"`{name}`" if name else f"its {sent_in[0]} header" if sent_in else "a request body"
            found.setdefault(
                value,
                _Secret(value, f"a {kind} of {_whose(user.label)}", password, prefix + kind.upper(), source),
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
    settings: SecretsSettings,
    target: Target,
    responses: Iterable[tuple[str, bytes]] = (),
    *,
    sent_credentials: Iterable[str] = (),
) -> PartResult:
    """Look for the run's secrets in the services' logs and in responses, and for any credential
    in the logs (see the module's docstring). `sent_credentials`: other credentials gonogo sent
    (the plan's expired token, its second user's), not to be reported as found in a log."""
    result = PartResult("secrets")
    secrets = _secrets_of(target.users)
    short = [secret for secret in secrets if len(secret.value) < MIN_SECRET_LENGTH]
    secrets = [secret for secret in secrets if len(secret.value) >= MIN_SECRET_LENGTH]
    if short:
        result.notes.append(
            f"{len(short)} secret(s) shorter than {MIN_SECRET_LENGTH} characters not looked for "
            f"({', '.join(secret.label for secret in short)}): they would be found in unrelated text"
        )
    logs = _logs(settings, target, result)
    if not secrets and not logs:
        result.not_measured = "the journeys used no password or token to look for, and no service log to read"
        return result
    if not secrets:
        result.notes.append(
            "the journeys used no password or token: the logs were read for any credential only"
        )
    result.tally.add("secrets", len(secrets))
    finder = _Finder(secrets)
    hidden = target.secrets
    sent = _Sent(target, sent_credentials)
    findings: dict[tuple[str, ...], Finding] = {}

    def keep(finding: Finding) -> None:
        findings.setdefault(finding.key(), finding)

    for service, path in logs:
        for finding in _log_findings(service, path, finder, sent, hidden, result):
            keep(finding)
    if not secrets:
        result.findings = list(findings.values())
        return result
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


class _Sent:
    """The credentials gonogo itself sent, and whether a token found in a log is one of them or
    what a part made of one: cut short (a truncated token), its last character changed (an
    altered one), or a JWT with the same header and claims (its signature altered)."""

    def __init__(self, target: Target, others: Iterable[str]) -> None:
        known = set(target.secrets) | set(others)
        headers = [pair for exchange in target.exchanges for pair in exchange.headers]
        headers += [pair for user in target.users for pair in user.auth_headers.items()]
        for name, value in headers:
            if name.lower() == "authorization":
                scheme, _, credential = value.strip().partition(" ")
                known.add(credential.strip() or scheme)
            elif name.lower() == "cookie":
                known |= {part.partition("=")[2].strip() for part in value.split(";")}
        self.tokens = {token for token in known if len(token) >= MIN_SECRET_LENGTH}
        self.signed = {token.rpartition(".")[0] for token in self.tokens if token.count(".") == 2}

    def made(self, token: str) -> bool:
        if token.count(".") == 2 and token.rpartition(".")[0] in self.signed:
            return True
        return any(token in own or (len(token) == len(own) and token[:-1] == own[:-1]) for own in self.tokens)


@dataclass
class _Seen:
    """The lines of one log where a kind of credential was found."""

    number: int
    text: str
    what: str  # `password` for a password pair: the key it was under
    lines: int = 1
    spans: list[tuple[int, int]] = field(default_factory=list)  # of the first line's credentials


def _credentials_in(line: str, sent: _Sent) -> dict[str, tuple[str, list[tuple[int, int]]]]:
    """Kind → (what, spans of the values) of the credentials in a log line gonogo did not send."""
    found: dict[str, tuple[str, list[tuple[int, int]]]] = {}
    for match in _JWT.finditer(line):
        if not sent.made(match.group("value")):
            found.setdefault("jwt", ("JWT", []))[1].append(match.span("value"))
    for match in _BEARER.finditer(line):
        token = match.group("value")
        if not _JWT.fullmatch(token) and not sent.made(token):  # (a JWT is the kind above)
            found.setdefault("bearer", ("Bearer", []))[1].append(match.span("value"))
    for match in _PASSWORD_PAIR.finditer(line):
        key = match.group("key") or match.group("qkey")
        group = next(name for name in ("dq", "sq", "value", "jdq", "jsq") if match.group(name) is not None)
        value = match.group(group)
        if "hash" in key.lower() or not value.strip() or _MASKED.match(value.strip()) or value in sent.tokens:
            continue
        found.setdefault("password", (key, []))[1].append(match.span(group))
    return found


def _log_findings(
    service: str, path: Path, finder: _Finder, sent: _Sent, hidden: frozenset[str], result: PartResult
) -> list[Finding]:
    result.tally.add("logs")
    first: dict[str, tuple[_Secret, int, str]] = {}
    lines: dict[str, int] = {}
    credentials: dict[str, _Seen] = {}
    for number, text in _lines(path, result):
        for secret in finder.find(text):
            first.setdefault(secret.value, (secret, number, text))
            lines[secret.value] = lines.get(secret.value, 0) + 1
        found = _credentials_in(text, sent)
        every = [span for _, spans in found.values() for span in spans]  # all masked when shown
        for kind, (what, _) in found.items():
            if kind in credentials:
                credentials[kind].lines += 1
            else:
                credentials[kind] = _Seen(number, text, what, spans=every)
    findings = []
    for value, (secret, number, text) in first.items():
        count = lines[value]
        findings.append(
            Finding(
                rule="secrets.in-log",
                title=f"{secret.label} is in the log of {service} ({path.name} line {number}{_more(count)})",
                severity="high",
                category="secrets",
                operation=f"log of {service}",
                request=f"{path}:{number}",
                response=_excerpt(text, hidden),
                reproduction=f'grep -n -F -- "${secret.shell}" {_shell_path(path)}',
                fix=FIX_LOG,
                details={
                    "parameter": secret.label,
                    "instance": secret.source,
                    "file": str(path),
                    "line": number,
                    "lines": count,
                },
            )
        )
    if any(secret.password for secret, _, _ in first.values()):
        credentials.pop("password", None)  # the same defect, reported above with the run's own
    for kind, seen in credentials.items():
        name, pattern, flags = _KINDS[kind]
        what = f"{name} (`{seen.what}`)" if kind == "password" else name
        origin = "" if kind == "password" else " gonogo did not send"
        findings.append(
            Finding(
                rule="secrets.credential-in-log",
                title=f"{what}{origin} is in the log of {service} "
                f"({path.name} line {seen.number}{_more(seen.lines)})",
                severity="high",
                category="secrets",
                operation=f"log of {service}",
                request=f"{path}:{seen.number}",
                response=_excerpt(_masked(seen.text, seen.spans), hidden),
                reproduction=f"grep -n {flags}-E -- {shlex.quote(pattern)} {_shell_path(path)}",
                fix=FIX_CREDENTIAL,
                details={"parameter": kind, "file": str(path), "line": seen.number, "lines": seen.lines},
            )
        )
    return findings


def _more(lines: int) -> str:
    return f" and {lines - 1} more" if lines > 1 else ""


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    """The line with the values at `spans` (which may overlap) replaced by `<redacted>`."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    for start, end in reversed(merged):
        text = text[:start] + REDACTED + text[end:]
    return text


def _excerpt(text: str, hidden: frozenset[str]) -> str:
    shown = redact(text, hidden)
    return shown[:LINE_EXCERPT] + " …" if len(shown) > LINE_EXCERPT else shown


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
        details={"parameter": secret.label, "instance": secret.source},
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
