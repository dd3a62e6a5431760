"""Fuzzing from the OpenAPI document: Schemathesis, used as a library, generates requests for
every operation, sends them as the first user, and judges each response with its own checks.

What is found, one finding per operation and kind (and status), with the first case that
showed it as a curl line:
- a 5xx (high): the service failed on input it should have refused or handled;
- a response its declared schema rejects (medium), an undeclared status code (low);
- no response within `fuzz.hang` (high): the operation is then left, as every later case
  would wait as long;
- a service process exiting during fuzzing (critical), from gonogo's supervisor (the
  services' history), or, with no supervisor, from the service refusing connections after it
  dropped one. Fuzzing waits for a restart and moves on to the next operation, or stops.

Cases are generated deterministically (the same every run, unless `fuzz.seed` picks others),
nothing is shrunk (a failing case is kept as it came), and Hypothesis' files go under the
check's work directory, never the user's folder. Every request is drawn from the check's budget.
"""

from __future__ import annotations

__all__ = ["run_fuzz"]

import copy
import fnmatch
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Err
from schemathesis.core.transport import Response
from schemathesis.errors import SchemathesisError
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from gonogo.checks.security.findings import Finding, PartResult, Severity
from gonogo.checks.security.settings import FuzzSettings
from gonogo.checks.security.target import ENDS_SESSION, Target
from gonogo.faults.targets import ServiceControl
from gonogo.journey.redact import redact
from gonogo.system.process import describe_exit
from gonogo.system.system import ServiceEvent

_Operation = APIOperation[Any, Any, Any, Any]
_Case = Case[Any]

EXCERPT_CHARS = 600
PROGRESS_INTERVAL = 0.5  # seconds between two progress lines
EXIT_NOTICE_SECONDS = 5.0  # how long the supervisor may take to notice an exit (it polls)
NO_RESTART_SECONDS = 2.0  # an exit with no restart begun by then is final
RECOVERY_SECONDS = 60.0  # at most this long for a restarted service to be ready again
# Headers every request carries whatever the case: not evidence, left out of excerpts.
_ROUTINE_HEADERS = {
    "user-agent",
    "accept",
    "accept-encoding",
    "connection",
    "content-length",
    "x-schemathesis-testcaseid",
}

_SERVER_ERROR_FIX = (
    "Validate this input and answer a 4xx that says what is wrong; the exception behind the 5xx is "
    "in the service's log."
)
_SCHEMA_FIX = "Make the response match the schema the OpenAPI document declares, or correct the document."
_STATUS_FIX = (
    "Declare this status among the operation's responses in the OpenAPI document, or stop answering it."
)
_HANG_FIX = (
    "Bound the work one request can cause (validate ranges, limit loops, time out calls) so that every "
    "request is answered."
)
_CRASH_FIX = (
    "Find in the service's log why the process ended on this input and handle it: no request may end "
    "the process."
)


def run_fuzz(settings: FuzzSettings, target: Target) -> PartResult:
    """Fuzz every operation of `target.openapi` (those `settings` keep) and report what failed."""
    result = PartResult("fuzz")
    if target.openapi is None:
        result.not_measured = "no OpenAPI document to fuzz from: give the check `openapi:` (a file or a URL)"
        return result
    api_url = _api_base_url(target.openapi.document, target.base_url)
    try:
        schema = _load_schema(target.openapi.document, api_url)
        operations = _operations(schema, settings, result)
    except Exception as error:  # Schemathesis refuses documents in many ways; each is one reason
        result.not_measured = (
            f"{target.openapi.source}: Schemathesis cannot use the OpenAPI document: {_first_line(error)}"
        )
        return result
    if not operations:
        why = "; ".join(result.notes) or "its document has no paths"
        result.not_measured = f"{target.openapi.source}: no operation to fuzz ({why})"
        return result
    set_hypothesis_home_dir(_hypothesis_home(target.work_dir))
    _Fuzzer(settings, target, api_url, result).run(operations)
    return result


def _load_schema(document: dict[str, Any], base_url: str) -> BaseSchema:
    # An explicit configuration: a `schemathesis.toml` in the user's folder must not change what
    # gonogo does. Security parameters are not generated (the first user's credentials are sent
    # instead: anonymous tries are the authorization part's); excerpts are redacted by gonogo.
    config = SchemathesisConfig.from_dict(
        {
            "base-url": base_url,
            "generation": {"with-security-parameters": False},
            "output": {"sanitization": {"enabled": False}},
            "cache": {"enabled": False},
        }
    )
    # Schemathesis rewrites the document it is given (keys made strings); the other parts read ours.
    schema = schemathesis.openapi.from_dict(copy.deepcopy(document), config=config)
    return schema


def _api_base_url(document: dict[str, Any], base_url: str) -> str:
    """The plan's base URL with the path of the document's first server (`/api/v1`, from
    `servers: [{url: https://api.example.com/api/v1}]` or Swagger's `basePath`): the
    document's paths are relative to it. Its host is the document's, the plan's is used."""
    servers = document.get("servers")
    server = servers[0] if isinstance(servers, list) and servers and isinstance(servers[0], dict) else {}
    url = str(server.get("url") or document.get("basePath") or "")
    for name, variable in (server.get("variables") or {}).items():
        if isinstance(variable, dict):
            url = url.replace("{" + str(name) + "}", str(variable.get("default", "")))
    prefix = urlsplit(url).path.rstrip("/")
    if not prefix or urlsplit(base_url).path.rstrip("/").endswith(prefix):
        return base_url
    return base_url.rstrip("/") + prefix


def _operations(schema: BaseSchema, settings: FuzzSettings, result: PartResult) -> list[_Operation]:
    """The operations to fuzz, in the document's order; the others are noted with the reason."""
    kept: list[_Operation] = []
    left_out = 0
    for entry in schema.get_all_operations():
        if isinstance(entry, Err):
            error = entry.err()
            result.notes.append(f"{error.label}: not fuzzed: {_first_line(error)}")
            continue
        operation = entry.ok()
        if ENDS_SESSION.search(operation.path) and not settings.operations:
            # fuzzed, it would revoke the session every operation after it is fuzzed with
            result.notes.append(f"{operation.label}: not fuzzed: it ends the session fuzzing uses")
        elif _wanted(operation.label, settings):
            kept.append(operation)
        else:
            left_out += 1
    if left_out:
        result.notes.append(f"{left_out} operation(s) left out by fuzz.operations / fuzz.exclude")
    return kept


def _wanted(label: str, settings: FuzzSettings) -> bool:
    def matches(patterns: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(label, _pattern(pattern)) for pattern in patterns)

    return (not settings.operations or matches(settings.operations)) and not matches(settings.exclude)


def _pattern(pattern: str) -> str:
    method, _, path = pattern.strip().partition(" ")
    return f"{method.upper()} {path.strip()}" if path else pattern.strip()


class _StopOperation(BaseException):
    """Leave the operation now. A BaseException, so that Hypothesis does not take it for a
    failing case (which it would run again) but lets it through at once."""


class _StopFuzzing(BaseException):
    """Leave every remaining operation (budget spent, service down); a BaseException for the
    same reason as `_StopOperation`."""


@dataclass
class _Sent:
    """The last case sent, for a crash noticed after its response."""

    operation: str
    request: str
    reproduction: str


class _Fuzzer:
    def __init__(self, settings: FuzzSettings, target: Target, api_url: str, result: PartResult) -> None:
        self.settings = settings
        self.target = target
        self.api_url = api_url  # where the document's paths start
        self.result = result
        user = target.users[0] if target.users else None
        self.auth_headers = dict(user.auth_headers) if user else {}
        self.headers = {"User-Agent": f"gonogo-security (schemathesis {schemathesis.__version__})"}
        self.headers.update(self.auth_headers)
        self.session = requests.Session()
        self.session.trust_env = False  # a proxy from the environment must not take loopback traffic
        self.timeout = (target.request_timeout, settings.hang)
        self.watch = _ProcessWatch(target.services, target.service_names)
        self.found: dict[tuple[str, str, str], Finding] = {}  # (rule, operation, status or service)
        self.cases = 0
        self.done = 0
        self.total = 0
        self.last: _Sent | None = None
        self.last_progress = 0.0

    def run(self, operations: list[_Operation]) -> None:
        self.total = len(operations)
        try:
            for operation in operations:
                self._operation(operation)
                self.done += 1
                self._progress()
        except _StopFuzzing:
            left = self.total - self.done - 1
            if left > 0:
                self.result.notes.append(f"{left} operation(s) not fuzzed")
        finally:
            self.session.close()
        self.result.findings.extend(self.found.values())
        self._progress(force=True)

    def _operation(self, operation: _Operation) -> None:
        exits = self.watch.exits()
        try:
            self._generate(operation)
        except _StopOperation:
            pass
        except Exception as error:  # generation itself failed: the operation is skipped, the rest goes on
            self._skipped(operation.label, error)
        # An exit that came without a dropped connection (after a response, or in a worker).
        new = self.watch.new_exits(exits)
        if new:
            self._crashed(operation.label, new, "")
            self._await_recovery(operation.label)

    def _generate(self, operation: _Operation) -> None:
        strategy = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @hypothesis.settings(
            max_examples=self.settings.max_examples,
            database=None,
            derandomize=self.settings.seed is None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
            verbosity=Verbosity.quiet,
            print_blob=False,
            report_multiple_bugs=False,
        )
        @hypothesis.given(case=strategy)
        def fuzz(case: _Case) -> None:
            self._send(operation, case)

        if self.settings.seed is not None:
            fuzz = hypothesis.seed(self.settings.seed)(fuzz)
        fuzz()

    def _send(self, operation: _Operation, case: _Case) -> None:
        label = operation.label
        if not self.target.budget.take():
            self.result.notes.append(f"fuzzing stopped at {label}: {self.target.budget.exhausted}")
            raise _StopFuzzing
        self.cases += 1
        self.result.tally.add("cases")
        self._progress()
        exits = self.watch.exits()
        try:
            response = case.call(
                base_url=self.api_url,
                session=self.session,
                headers=self.headers,
                timeout=self.timeout,
            )
        except SchemathesisError as error:  # the case cannot be sent (a body in a media type it cannot write)
            self._skipped(label, error)
            raise _StopOperation from None
        except requests.Timeout as error:
            self._count_request(label)
            self.last = self._sent(label, case, _prepared(error.request))
            self._hang(label, self.last)
            raise _StopOperation from None
        except requests.RequestException as error:
            self._count_request(label)
            self.last = self._sent(label, case, _prepared(error.request))
            if self._connection_lost(label, exits, error):
                raise _StopOperation from None
            return
        finally:
            self.session.cookies.clear()  # a cookie the service set must not ride on the next cases
        self._count_request(label)
        self.last = self._sent(label, case, response.request)
        self._judge(operation, case, response)

    def _skipped(self, label: str, error: Exception) -> None:
        further = " further" if label in self.result.tally.operations else ""
        self.result.notes.append(f"{label}: not fuzzed{further}: {_first_line(error)}")

    def _count_request(self, label: str) -> None:
        self.result.tally.add("requests")
        self.result.tally.operations.add(label)

    def _judge(self, operation: _Operation, case: _Case, response: Response) -> None:
        status = response.status_code
        if status >= 500:
            if self._failures(case, response, not_a_server_error):
                title = f"{operation.label} answered {status} to a generated request"
                self._add("fuzz.server-error", "high", title, status, response, _SERVER_ERROR_FIX)
            return
        for failure in self._failures(case, response, response_schema_conformance)[:1]:
            violation = _first_line(failure.message) or failure.title
            title = (
                f"{operation.label} answered {status} with a body its declared schema rejects: {violation}"
            )
            title = title if len(title) <= 160 else title[:159] + "…"
            self._add("fuzz.response-schema", "medium", title, status, response, _SCHEMA_FIX, violation)
        if self._failures(case, response, status_code_conformance):
            title = f"{operation.label} answered {status}, a status its OpenAPI document does not declare"
            self._add("fuzz.undeclared-status", "low", title, status, response, _STATUS_FIX)

    def _failures(self, case: _Case, response: Response, check: Callable[..., Any]) -> list[Failure]:
        try:
            case.validate_response(response, checks=[check], headers=self.headers)
        except FailureGroup as group:
            return list(group.exceptions)
        except Failure as failure:
            return [failure]
        except Exception as error:  # a check that cannot judge this response judges nothing
            note = f"{case.operation.label}: Schemathesis could not check a response: {_first_line(error)}"
            if note not in self.result.notes:
                self.result.notes.append(note)
        return []

    def _add(
        self,
        rule: str,
        severity: Severity,
        title: str,
        status: int,
        response: Response,
        fix: str,
        violation: str = "",
    ) -> None:
        assert self.last is not None
        key = (rule, self.last.operation, str(status))
        if key in self.found:
            return
        details: dict[str, Any] = {"status": status}
        if violation:
            details["violation"] = self._redact(violation)[:EXCERPT_CHARS]
        self.found[key] = Finding(
            rule=rule,
            title=title,
            severity=severity,
            category="fuzz",
            operation=self.last.operation,
            request=self.last.request,
            response=self._response_excerpt(response),
            reproduction=self.last.reproduction,
            fix=fix,
            details=details,
        )

    def _hang(self, label: str, sent: _Sent) -> None:
        key = ("fuzz.hang", label, "")
        if key not in self.found:
            self.found[key] = Finding(
                rule="fuzz.hang",
                title=f"{label} did not answer a generated request within {self.settings.hang:g} s",
                severity="high",
                category="fuzz",
                operation=label,
                request=sent.request,
                response=f"no response within {self.settings.hang:g} s",
                reproduction=sent.reproduction,
                fix=_HANG_FIX,
                details={"hang_seconds": self.settings.hang},
            )
        self.result.notes.append(f"{label}: left after a request that got no answer (a hang)")

    def _connection_lost(self, label: str, exits: dict[str, int], error: requests.RequestException) -> bool:
        """The connection broke without an answer: a service exited (critical), or stopped
        listening, or only dropped this connection. Whether to leave the operation."""
        new = self.watch.wait_for_exit(exits, EXIT_NOTICE_SECONDS)
        if new:
            self._crashed(label, new, _describe(error))
        elif not _accepts_connections(self.target.base_url, self.target.request_timeout):
            self._inferred_crash(label, error)
        else:
            note = f"{label}: {_describe(error)}"
            if note not in self.result.notes:
                self.result.notes.append(note)
            return False
        self._await_recovery(label)
        return True

    def _await_recovery(self, label: str) -> None:
        if not self.watch.wait_until_back(
            self.target.base_url, min(RECOVERY_SECONDS, self.target.budget.remaining())
        ):
            self.result.notes.append(
                f"fuzzing stopped after {label}: the service did not come back after it exited"
            )
            raise _StopFuzzing

    def _crashed(self, label: str, exits: list[tuple[str, ServiceEvent]], error: str) -> None:
        for service, event in exits:
            key = ("fuzz.crash", label, service)
            if key in self.found:
                continue
            how = (
                describe_exit(event.exit_code) if event.exit_code is not None else f"exited ({event.detail})"
            )
            last = self.last if self.last is not None and self.last.operation == label else None
            self.found[key] = Finding(
                rule="fuzz.crash",
                title=f"service {service} {how} while {label} was fuzzed",
                severity="critical",
                category="fuzz",
                operation=label,
                request=last.request if last else "",
                response=error or "the service's supervisor saw the process exit",
                reproduction=last.reproduction if last else "",
                fix=_CRASH_FIX,
                details={"service": service, "exit_code": event.exit_code, "last_case": bool(last)},
            )

    def _inferred_crash(self, label: str, error: requests.RequestException) -> None:
        key = ("fuzz.crash", label, "")
        if key in self.found or self.last is None:
            return
        self.found[key] = Finding(
            rule="fuzz.crash",
            title=f"the service stopped accepting connections while {label} was fuzzed",
            severity="critical",
            category="fuzz",
            operation=label,
            request=self.last.request,
            response=f"{_describe(error)}; then connections to {self.target.base_url} were refused",
            reproduction=self.last.reproduction,
            fix=_CRASH_FIX,
            details={"inferred": "no supervisor: the process was not seen exiting, its port closed"},
        )

    def _sent(self, label: str, case: _Case, request: requests.PreparedRequest | None) -> _Sent:
        return _Sent(label, self._request_excerpt(case, request), self._reproduction(case))

    def _request_excerpt(self, case: _Case, request: requests.PreparedRequest | None) -> str:
        if request is None:
            return self._redact(f"{case.method} {case.formatted_path}")
        url = urlsplit(request.url or "")
        method = request.method.decode() if isinstance(request.method, bytes) else request.method
        lines = [f"{method} {url.path}" + (f"?{url.query}" if url.query else "")]
        for name, value in request.headers.items():
            if name.lower() in _ROUTINE_HEADERS:
                continue
            if name.lower() in {key.lower() for key in self.auth_headers}:
                value = "<redacted>"
            lines.append(f"{name}: {value.decode('latin-1') if isinstance(value, bytes) else value}")
        body = request.body
        if body:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            lines += ["", _cut(text)]
        return self._redact("\n".join(lines))

    def _response_excerpt(self, response: Response) -> str:
        lines = [f"HTTP {response.status_code} {response.message}".rstrip()]
        for name in ("content-type", "server"):
            values = next((value for key, value in response.headers.items() if key.lower() == name), None)
            if values:
                lines.append(f"{name}: {', '.join(values)}")
        try:
            text = response.content.decode(response.encoding or "utf-8", "replace")
        except LookupError:  # a charset Python does not know
            text = response.content.decode("utf-8", "replace")
        if text:
            lines += ["", _cut(text)]
        return self._redact("\n".join(lines))

    def _reproduction(self, case: _Case) -> str:
        """A curl line with `$TOKEN` for the credentials, double-quoted so the shell fills it in."""
        command = case.as_curl_command(base_url=self.api_url).split("\n\n")[0]
        credentials = [
            _header_argument(name, self._token_form(value)) for name, value in self.auth_headers.items()
        ]
        if credentials and command.startswith("curl "):
            command = "curl " + " ".join(credentials) + command[len("curl") :]
        return redact(command, self.target.secrets)

    def _token_form(self, value: str) -> str:
        scheme, space, credential = value.partition(" ")
        if space and scheme.lower() in {"bearer", "basic", "token"} and credential:
            return f"{scheme} $TOKEN"
        replaced = value
        for secret in sorted(self.target.secrets, key=len, reverse=True):
            if secret:
                replaced = replaced.replace(secret, "$TOKEN")
        return replaced if replaced != value else "$TOKEN"

    def _redact(self, text: str) -> str:
        return redact(text, self.target.secrets)

    def _progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_progress >= PROGRESS_INTERVAL:
            self.last_progress = now
            self.target.progress(f"fuzz: {self.done}/{self.total} operations, {self.cases} cases")


class _ProcessWatch:
    """The services' exits as gonogo's supervisor recorded them (nothing without one)."""

    def __init__(self, services: ServiceControl | None, names: tuple[str, ...]) -> None:
        self.services = services
        self.names = names or (tuple(services.pids()) if services is not None else ())

    def exits(self) -> dict[str, int]:
        return {name: len(self._exits(name)) for name in self.names}

    def new_exits(self, before: Mapping[str, int]) -> list[tuple[str, ServiceEvent]]:
        return [(name, event) for name in self.names for event in self._exits(name)[before.get(name, 0) :]]

    def wait_for_exit(self, before: Mapping[str, int], timeout: float) -> list[tuple[str, ServiceEvent]]:
        """New exits, waiting up to `timeout` for the supervisor to notice one (it polls)."""
        if self.services is None:
            return []
        deadline = time.monotonic() + timeout
        while not (new := self.new_exits(before)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return new

    def wait_until_back(self, base_url: str, timeout: float) -> bool:
        """Whether every service is running again (restarted and ready) and the base URL accepts
        connections, within `timeout` (a little while only, with no supervisor to restart them)."""
        if self.services is None:
            timeout = min(timeout, NO_RESTART_SECONDS)
        deadline = time.monotonic() + timeout
        while True:
            states = {self._state(name) for name in self.names}
            if "down" in states:
                return False
            if states <= {"up"} and _accepts_connections(base_url, 1.0):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def _state(self, name: str) -> str:
        """up, down (exited for good), or coming (restarting, or just exited)."""
        history = self._history(name)
        if not history:
            return "up"
        last = history[-1]
        if last.kind in {"failed", "stopped"}:
            return "down"
        if last.kind == "exited":
            return "down" if time.monotonic() - last.monotonic > NO_RESTART_SECONDS else "coming"
        return "coming" if last.kind in {"restarting", "restarted", "started"} else "up"

    def _exits(self, name: str) -> list[ServiceEvent]:
        return [event for event in self._history(name) if event.kind == "exited"]

    def _history(self, name: str) -> list[ServiceEvent]:
        if self.services is None:
            return []
        try:
            return list(self.services.history(name))
        except KeyError:  # not started (yet)
            return []


def _prepared(request: requests.Request | requests.PreparedRequest | None) -> requests.PreparedRequest | None:
    return request if isinstance(request, requests.PreparedRequest) else None


def _accepts_connections(base_url: str, timeout: float) -> bool:
    url = urlsplit(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def _header_argument(name: str, value: str) -> str:
    """`-H "Name: value"`, escaped for double quotes except `$TOKEN`, which the shell fills in."""
    escaped = re.sub(r'([\\"`$])', r"\\\1", f"{name}: {value}").replace("\\$TOKEN", "$TOKEN")
    return f'-H "{escaped}"'


def _hypothesis_home(work_dir: Path) -> Path:
    """Where Hypothesis keeps its Unicode tables (no examples: the database is off): a cache
    shared by runs, since building them costs about 5 s; the check's own folder if the user's
    cache folder cannot be written."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gonogo" / "hypothesis"
    for home in (cache, work_dir / "hypothesis"):
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(home, os.W_OK):
            return home
    return work_dir


def _describe(error: requests.RequestException) -> str:
    """What happened to a request that got no response, in words (requests nests the cause)."""
    text = str(error)
    if "refused" in text.lower():
        return "the connection was refused"
    if any(word in text for word in ("RemoteDisconnected", "aborted", "reset", "ChunkedEncodingError")):
        return "the connection was closed before a complete response"
    cut = re.search(r"IncompleteRead\((\d+) bytes read, (\d+) more expected\)", text)
    if cut:
        got, more = int(cut.group(1)), int(cut.group(2))
        return f"the response was cut short ({got:,} of {got + more:,} bytes)"
    return _first_line(error)


def _cut(text: str) -> str:
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + f"… ({len(text)} characters)"


def _first_line(error: BaseException | str) -> str:
    text = str(error).strip() or (type(error).__name__ if isinstance(error, BaseException) else "")
    return text.splitlines()[0] if text else ""
