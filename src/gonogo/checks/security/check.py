"""The `security` check kind: what an attacker would try first, tried from what gonogo knows.

1. The plan's journeys are run once as a first user, then once more as a second user (the
   journeys' own sign-up and login make it), every request recorded as sent.
2. The parts run in turn against one `Target`, sharing one budget of requests and time:
   the authorization matrix (per journey: its requests replayed without credentials, with
   malformed ones and as the second user), the raw probes (traversal, injection, oversized and
   slow requests, headers), fuzzing from the OpenAPI document (Schemathesis), the secrets (in the
   services' logs and in responses), and the scanners' reports.
3. Findings are merged (one per rule and operation), accepted risks (`ignore`) set aside, and
   everything is stored: the `security-findings.json` artifact (each finding with severity,
   category, operation, evidence, reproduction and fix hint) and the metrics of docs/security.md.

Each part's findings are stored the moment it ends, so a crash of a later part loses nothing
measured; a part that crashes is *not measured* (its reason shown), never silently empty.
"""

from __future__ import annotations

__all__ = ["SecurityCheck"]

import asyncio
import json
import re
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from gonogo.checks.base import CheckContext, CheckKind, CheckOutcome, MetricPatterns, PlanNames, Reference
from gonogo.checks.security.authz import run_authz
from gonogo.checks.security.findings import CATEGORIES, SEVERITIES, Finding, PartResult, Tally
from gonogo.checks.security.openapi import OpenApi, OpenApiError, load_openapi
from gonogo.checks.security.probes import run_probes
from gonogo.checks.security.scanners import collect_scanners
from gonogo.checks.security.secrets import check_secrets
from gonogo.checks.security.settings import FuzzSettings, SecuritySettings
from gonogo.checks.security.target import ENDS_SESSION, Budget, Exchange, Target, UserSession
from gonogo.evidence.findings import FINDINGS_MEDIA_TYPE
from gonogo.journey.engine import Engine, Sent
from gonogo.journey.once import resolve_base_url, upload_files
from gonogo.journey.redact import redact, secrets_of
from gonogo.journey.settings import JourneysSettings
from gonogo.units import Unit

DIMENSION = "security"
COUNTED = ("critical", "high", "medium", "low")  # `info` findings are listed, never counted
SHOWN_FINDINGS = 10  # in the check's details; all of them are in the artifact and the reports
_SECRET_FIELD = re.compile(r"pass(word)?|passwd|pwd|secret|token|api[-_]?key|credential", re.IGNORECASE)


class SecurityCheck(CheckKind[SecuritySettings]):
    kind = "security"
    Settings = SecuritySettings
    series_metrics = frozenset[str]()
    live_metrics = frozenset[str]()  # nothing followed while it runs

    @classmethod
    def metric_names(cls, settings: SecuritySettings, plan: PlanNames) -> MetricPatterns:
        """Only what these settings can measure: a gate on `fuzz.findings` without `openapi:`,
        or on `findings.code` without a scanner, is refused by `gonogo validate`."""
        names = ["findings.total", "findings.ignored", "tried.requests", "tried.operations"]
        names += [f"findings.{severity}" for severity in SEVERITIES]
        parts = [name for name in ("authz", "probes", "secrets") if getattr(settings, name).enabled]
        if settings.fuzz.enabled and settings.openapi is not None:
            parts.append("fuzz")
            names.append("tried.cases")
        if settings.scanners:
            parts.append("scanners")
        if settings.probes.enabled:
            names.append("tried.payloads")
        if settings.openapi is not None:
            names += ["operations.covered", "operations.total"]
        wanted = set(settings.categories or CATEGORIES)
        names += [f"{part}.findings" for part in parts]
        scanners = [
            "scanners:" + ("pip-audit" if source.pip_audit else "bandit" if source.bandit else "sarif")
            for source in settings.scanners
        ]
        looked_at = {
            category
            for part in [*parts, *scanners]
            for category in _categories_of(part, settings)
            if category in wanted
        }
        names += [f"findings.{category}" for category in sorted(looked_at)]
        return names

    @classmethod
    def default_gates(cls, settings: SecuritySettings) -> Mapping[str, str | Mapping[str, object]]:
        return {
            "findings.critical": "== 0",
            "findings.high": "== 0",
            "findings.medium": {"expr": "== 0", "severity": "should"},
        }

    @classmethod
    def references(cls, settings: SecuritySettings) -> list[Reference]:
        found = [
            Reference("check", name, ("journeys", index), purpose="journeys to replay")
            for index, name in enumerate(settings.journeys or [])
        ]
        found += [
            Reference("service", name, ("services", index), purpose="whose processes are watched")
            for index, name in enumerate(settings.services or [])
        ]
        found += [
            Reference("service", name, ("secrets", "services", index), purpose="whose logs are read")
            for index, name in enumerate(settings.secrets.services or [])
        ]
        return found

    def run(self, settings: SecuritySettings, ctx: CheckContext) -> CheckOutcome:
        base_url, problem = resolve_base_url(settings.base_url, ctx)
        if problem and _talks_to_the_service(settings):
            return CheckOutcome("error", problem)
        base_url = base_url or ""  # only scanners: nothing is sent anywhere
        openapi: OpenApi | None = None
        if settings.openapi is not None:
            try:
                openapi = load_openapi(
                    ctx.expand(settings.openapi), plan_dir=ctx.plan_dir, base_url=base_url,
                    timeout=settings.request_timeout,
                )  # fmt: skip
            except OpenApiError as error:
                return CheckOutcome("error", str(error))
            ctx.store_artifact(
                json.dumps(openapi.document).encode(), name="openapi.json", media_type="application/json"
            )
        journeys = ctx.plan_checks(JourneysSettings)
        unknown = [name for name in settings.journeys or [] if name not in journeys]
        if unknown:
            return CheckOutcome("error", f"no journeys check named {', '.join(unknown)} in the plan")
        if settings.journeys is not None:
            journeys = {name: journeys[name] for name in settings.journeys}
        return _Run(settings, ctx, base_url, openapi, journeys).run()


@dataclass
class _Recorded:
    """One journey run as one user."""

    journey: str
    sent: list[Sent] = field(default_factory=list)
    failure: str | None = None


class _Run:
    def __init__(
        self,
        settings: SecuritySettings,
        ctx: CheckContext,
        base_url: str,
        openapi: OpenApi | None,
        journeys: Mapping[str, JourneysSettings],
    ) -> None:
        self.settings = settings
        self.ctx = ctx
        self.base_url = base_url
        self.openapi = openapi
        self.journeys = journeys
        self.budget = Budget(settings.budget.requests, settings.budget.duration)
        self.parts: list[PartResult] = []
        self.notes: list[str] = []
        self.secrets: frozenset[str] = frozenset()  # the run's passwords and tokens, never stored

    def run(self) -> CheckOutcome:
        first, second = self._record_users()
        target = self._target(first, second)
        self.secrets = target.secrets
        by_journey = self._journey_targets(target, first, second)
        self._part("authz", self.settings.authz.enabled, lambda: self._authz(target, by_journey))
        self._part(
            "probes",
            self.settings.probes.enabled,
            lambda: asyncio.run(
                run_probes(self.settings.probes, target, slow_window=self.settings.probes.slow_body_window)
            ),
        )
        if self.openapi is None:
            if self.settings.fuzz.enabled:
                self.notes.append(
                    "fuzzing needs the OpenAPI document: set `openapi:` (a file or /openapi.json)"
                )
        else:
            self._part("fuzz", self.settings.fuzz.enabled, lambda: _fuzz(self.settings.fuzz, target))
        # last of the service's own parts: the logs then hold everything the other parts sent
        self._part(
            "secrets",
            self.settings.secrets.enabled,
            lambda: check_secrets(self.settings.secrets, target, sent_credentials=self._sent_credentials()),
        )
        if self.settings.scanners:
            try:
                for result in collect_scanners(self.settings.scanners, self.ctx):
                    self._keep(result)
            except Exception as error:
                self._keep(_crashed("scanners", error))
        return self._conclude(target)

    # -- the two users ---------------------------------------------------------------------

    def _record_users(self) -> tuple[list[_Recorded], list[_Recorded]]:
        if not _talks_to_the_service(self.settings):
            return [], []
        if not self.journeys:
            self.notes.append(
                "the plan has no journeys check: the authorization matrix and the secrets check have "
                "no requests to work from (add a journeys check that signs up and logs in)"
            )
            return [], []
        first = self._run_journeys("first user")
        second = self._run_journeys("second user") if self.settings.authz.enabled else []
        return first, second

    def _run_journeys(
        self, label: str, *, only: str | None = None, keep_session: bool = False
    ) -> list[_Recorded]:
        """Each journey once, recorded; `only` that journey; `keep_session`: without the steps
        that end the session (a logout), so its credentials stay good for what follows."""
        recorded: list[_Recorded] = []
        for check_name, settings in self.journeys.items():
            if only is not None and only not in settings.journeys:
                continue
            once = settings.model_copy(
                update={
                    "journeys": {
                        name: journey.model_copy(
                            update={
                                "iterations": 1,
                                "concurrency": 1,
                                "steps": [
                                    step
                                    for step in journey.steps
                                    if not (keep_session and ENDS_SESSION.search(step.request.path))
                                ],
                            }
                        )
                        for name, journey in settings.journeys.items()
                        if only is None or name == only
                    }
                }
            )
            files, missing = upload_files(once, self.ctx)
            if missing:
                self.notes.append(f"journeys of {check_name} not replayed: " + "; ".join(missing))
                continue
            by_journey = {name: _Recorded(name) for name in once.journeys}

            def record(sent: Sent, by_journey: dict[str, _Recorded] = by_journey) -> None:
                by_journey[sent.journey].sent.append(sent)

            self.ctx.progress(f"running the journeys of {check_name} as the {label}")
            engine = Engine(
                once, self.base_url, files=files, expand=self.ctx.expand, progress=lambda _: None,
                record=record,
            )  # fmt: skip
            for result in asyncio.run(engine.run(on_journey_done=lambda _: None)):
                failure = result.iterations[0].failure if result.iterations else None
                if failure is not None:
                    by_journey[result.name].failure = failure.summary()
                    self.notes.append(f"journey {result.name} failed as the {label}: {failure.summary()}")
            recorded.extend(by_journey.values())
        return recorded

    def _session(self, recorded: _Recorded, label: str) -> UserSession | None:
        credentialed = [sent for sent in recorded.sent if _auth_headers(sent.headers)]
        if not recorded.sent:
            return None
        headers = _auth_headers(credentialed[-1].headers) if credentialed else {}
        secrets = set(secrets_of(recorded.sent[-1].variables, headers))
        for sent in recorded.sent:
            secrets |= _body_secrets(sent)
        return UserSession(
            f"{label} of {recorded.journey}", headers, dict(recorded.sent[-1].variables), frozenset(secrets)
        )

    def _exchange(self, sent: Sent) -> Exchange:
        path = urlsplit(sent.url).path or "/"
        operation = self.openapi.operation_for(sent.method, path) if self.openapi else None
        return Exchange(
            journey=sent.journey,
            step=sent.step,
            method=sent.method,
            url=sent.url,
            headers=sent.headers,
            body=sent.body,
            body_complete=sent.body_complete,
            status=sent.reply.status,
            response_headers=tuple(
                (key.decode("latin-1"), value.decode("latin-1")) for key, value in sent.reply.headers.raw
            ),
            response_body=sent.reply.body,
            response_size=sent.reply.size,
            response_sha256=sent.reply.sha256 or "",
            variables=sent.variables,
            operation=operation.label if operation else None,
        )

    def _target(self, first: list[_Recorded], second: list[_Recorded]) -> Target:
        services = self.ctx.fault_targets.services
        names = tuple(self.settings.services or (sorted(services.pids()) if services else []))
        logs = services.log_files() if services else {}
        if self.settings.secrets.services is not None:
            logs = {name: path for name, path in logs.items() if name in self.settings.secrets.services}
        # the user whose journey carried the most credentials first: probes and fuzzing use its headers
        sessions = [
            session
            for recorded in sorted(first, key=lambda r: -sum(1 for s in r.sent if _auth_headers(s.headers)))
            if (session := self._session(recorded, "first user")) is not None
        ]
        if sessions and first:
            sessions[0] = self._live(sessions[0], first)
        sessions += [session for recorded in second if (session := self._session(recorded, "second user"))]
        if self.settings.authz.second_user is not None:
            headers = self._second_user_headers()
            sessions.append(
                UserSession("second user (from the plan)", headers, {}, frozenset(_credentials(headers)))
            )
        return Target(
            base_url=self.base_url,
            openapi=self.openapi,
            exchanges=[self._exchange(sent) for recorded in first for sent in recorded.sent],
            users=sessions,
            budget=self.budget,
            services=services,
            log_files=logs,
            request_timeout=self.settings.request_timeout,
            progress=self.ctx.progress,
            work_dir=self.ctx.work_dir,
            service_names=names,
        )

    def _live(self, session: UserSession, first: list[_Recorded]) -> UserSession:
        """`session`, or, when its journey logged out (its credentials are spent), the session of
        one more run of that journey without its logout, for the probes and fuzzing to use."""
        journey = session.label.removeprefix("first user of ")
        recorded = next((r for r in first if r.journey == journey), None)
        if recorded is None or not any(
            ENDS_SESSION.search(urlsplit(sent.url).path) and _auth_headers(sent.headers)
            for sent in recorded.sent
        ):
            return session
        again = self._run_journeys("first user, without logging out", only=journey, keep_session=True)
        live = self._session(again[0], "first user") if again else None
        if live is None or not live.auth_headers:
            self.notes.append(
                f"journey {journey} logs out, and no live session could be made without its logout"
            )
            return session
        return live

    def _sent_credentials(self) -> set[str]:
        """Credentials the plan gave gonogo to send (an expired token, a second user's): found in
        a log, they are gonogo's own traffic, not the service leaking something."""
        sent = _credentials(self._second_user_headers())
        if self.settings.authz.expired:
            sent |= _credentials({"Authorization": self.settings.authz.expired})
        return sent

    def _second_user_headers(self) -> dict[str, str]:
        second = self.settings.authz.second_user or {}
        return {key: self.ctx.expand(value) for key, value in second.items()}

    def _journey_targets(
        self, target: Target, first: list[_Recorded], second: list[_Recorded]
    ) -> list[Target]:
        """Per journey, the first user's exchanges and the two users of that journey."""
        seconds = {recorded.journey: recorded for recorded in second}
        views = []
        for recorded in first:
            user = self._session(recorded, "first user")
            if user is None:
                continue
            other = seconds.get(recorded.journey)
            other_user = self._session(other, "second user") if other else None
            users = [user]
            if self.settings.authz.second_user is not None:
                headers = self._second_user_headers()
                users.append(
                    UserSession("second user (from the plan)", headers, {}, frozenset(_credentials(headers)))
                )
            elif other_user is not None and user.secrets and other_user.secrets == user.secrets:
                self.notes.append(
                    f"journey {recorded.journey} signs in as the same user every time, so no second user was "
                    "made: give authz.second_user to try one user's requests as another"
                )
            elif other_user is not None:
                users.append(other_user)
            exchanges = [self._exchange(sent) for sent in recorded.sent]
            views.append(replace(target, exchanges=exchanges, users=users))
        return views

    # -- the parts --------------------------------------------------------------------------

    def _authz(self, target: Target, targets: list[Target]) -> PartResult:
        merged = PartResult("authz")
        for view in targets:
            result = asyncio.run(run_authz(self.settings.authz, view))
            merged.findings += result.findings
            merged.tally.merge(result.tally)
            merged.notes += result.notes
        if not targets:
            merged.notes.append("no journey request carried credentials: nothing to replay")
        if self.openapi is not None and not targets:
            # the anonymous tries of protected operations need no journey
            result = asyncio.run(run_authz(self.settings.authz, replace(target, exchanges=[], users=[])))
            merged.findings += result.findings
            merged.tally.merge(result.tally)
            merged.notes += result.notes
        return merged

    def _part(self, name: str, enabled: bool, run: Callable[[], PartResult]) -> None:
        if not enabled:
            return
        self.ctx.progress(f"{name}: running")
        try:
            result = run()
        except Exception as error:
            result = _crashed(name, error)
        self._keep(result)

    def _keep(self, result: PartResult) -> None:
        """Store a part's findings now: what it measured survives a later crash."""
        self.parts.append(result)
        body = {
            "part": result.part,
            "not_measured": result.not_measured,
            "notes": result.notes,
            "tally": dict(result.tally.counts),
            "findings": [_redacted(finding, self.secrets).to_json() for finding in result.findings],
        }
        name = f"security-{result.part.replace(':', '-')}.json"
        self.ctx.store_artifact(_json(body), name=name, media_type="application/json")

    # -- the conclusion ---------------------------------------------------------------------

    def _conclude(self, target: Target) -> CheckOutcome:
        secrets = target.secrets
        kept: dict[tuple[str, ...], Finding] = {}
        ignored: list[dict[str, Any]] = []
        wanted = set(self.settings.categories or CATEGORIES)
        for part in self.parts:
            for finding in part.findings:
                if finding.category not in wanted:
                    continue
                finding = _redacted(finding, secrets)
                rule = next(
                    (
                        ignore
                        for ignore in self.settings.ignore
                        if fnmatchcase(finding.rule, ignore.rule)
                        and fnmatchcase(finding.operation, ignore.operation)
                    ),
                    None,
                )
                if rule is not None:
                    ignored.append({**finding.to_json(), "ignored_because": rule.reason})
                    continue
                kept.setdefault(finding.key(), finding)
        findings = sorted(
            kept.values(), key=lambda f: (SEVERITIES.index(f.severity), f.category, f.operation)
        )
        tally = Tally()
        for part in self.parts:
            tally.merge(part.tally)
        measured = [part for part in self.parts if part.not_measured is None]
        not_measured = [part for part in self.parts if part.not_measured is not None]
        artifact = self.ctx.store_artifact(
            _json(
                {
                    "findings": [finding.to_json() for finding in findings],
                    "ignored": ignored,
                    "tried": {
                        **dict(tally.counts),
                        "requests": self.budget.used,
                        "operations": sorted(tally.operations),
                    },
                    "parts": {
                        part.part: {
                            "not_measured": part.not_measured,
                            "notes": part.notes,
                            "findings": len(part.findings),
                        }
                        for part in self.parts
                    },
                    "notes": self.notes + ([self.budget.exhausted] if self.budget.exhausted else []),
                }
            ),
            name="security-findings.json",
            media_type=FINDINGS_MEDIA_TYPE,
        )
        source = "security-findings.json"

        def record(name: str, value: float, unit: Unit = "count") -> None:
            self.ctx.record_metric(name, value, unit, dimension=DIMENSION, source=source, artifact=artifact)

        by_severity: Counter[str] = Counter(finding.severity for finding in findings)
        by_category = Counter(finding.category for finding in findings if finding.severity in COUNTED)
        for severity in SEVERITIES:
            record(f"findings.{severity}", by_severity[severity])
        record("findings.total", sum(by_severity[severity] for severity in COUNTED))
        record("findings.ignored", len(ignored))
        # a category is measured when a part that looks for it ran
        for category in CATEGORIES:
            looking = [part for part in self.parts if category in _categories_of(part.part, self.settings)]
            # measured only when every part that looks for it could: a scanner not installed leaves it open
            if category in wanted and looking and all(part.not_measured is None for part in looking):
                record(f"findings.{category}", by_category[category])
        for part in measured:
            name = "scanners" if part.part.startswith("scanners") else part.part
            if name in ("authz", "fuzz", "probes", "secrets"):
                record(f"{name}.findings", len(part.findings))
        scanner_parts = [part for part in self.parts if part.part.startswith("scanners")]
        if scanner_parts and all(part.not_measured is None for part in scanner_parts):
            record("scanners.findings", sum(len(part.findings) for part in scanner_parts))
        record("tried.requests", self.budget.used)
        record("tried.operations", len(tally.operations))
        if tally.counts.get("cases"):
            record("tried.cases", tally.counts["cases"])
        if tally.counts.get("payloads"):
            record("tried.payloads", tally.counts["payloads"])
        if self.openapi is not None and self.openapi.operations:
            labels = {operation.label for operation in self.openapi.operations}
            record("operations.total", len(labels))
            record("operations.covered", len(labels & tally.operations) / len(labels), "ratio")
        return _outcome(findings, ignored, measured, not_measured, self.budget, self.notes)


def _outcome(
    findings: list[Finding],
    ignored: list[dict[str, Any]],
    measured: list[PartResult],
    not_measured: list[PartResult],
    budget: Budget,
    notes: list[str],
) -> CheckOutcome:
    counts = Counter(finding.severity for finding in findings)
    shown = ", ".join(f"{counts[severity]} {severity}" for severity in SEVERITIES if counts[severity])
    message = f"{len(findings)} finding(s)" + (f" ({shown})" if shown else "")
    message += f" in {budget.used} requests; parts: {', '.join(part.part for part in measured) or 'none'}"
    if not_measured:  # said up front: a configured scanner that did not run must not go unnoticed
        message = f"not measured: {', '.join(part.part for part in not_measured)}; " + message
    if ignored:
        message += f"; {len(ignored)} ignored as accepted risks"
    details = [
        f"{finding.severity} {finding.category} {finding.operation}: {finding.title}"
        for finding in findings[:SHOWN_FINDINGS]
    ]
    if len(findings) > SHOWN_FINDINGS:
        details.append(
            f"… and {len(findings) - SHOWN_FINDINGS} more (see the security-findings.json artifact)"
        )
    details += [f"not measured: {part.part}: {part.not_measured}" for part in not_measured]
    details += notes
    if budget.exhausted:
        details.append(f"stopped early: {budget.exhausted}")
    if not measured:
        return CheckOutcome("error", "no part of the security check could run", details)
    return CheckOutcome("completed", message, details)


def _talks_to_the_service(settings: SecuritySettings) -> bool:
    """Whether a part that sends requests is on (only scanners need no base URL)."""
    return any(part.enabled for part in (settings.authz, settings.probes, settings.fuzz, settings.secrets))


def _fuzz(settings: FuzzSettings, target: Target) -> PartResult:
    # Schemathesis and Hypothesis take half a second to import: only a run that fuzzes pays it
    from gonogo.checks.security.fuzz import run_fuzz

    return run_fuzz(settings, target)


def _categories_of(part: str, settings: SecuritySettings) -> tuple[str, ...]:
    """The categories a part looks for, with these settings (`scanners:bandit` looks at code,
    `scanners:pip-audit` at dependencies, a probe family turned off at nothing)."""
    if part.startswith("scanners"):
        kind = part.partition(":")[2].rstrip("_0123456789")
        return {"bandit": ("code",), "pip-audit": ("dependencies",)}.get(kind, ("code", "dependencies"))
    if part == "probes":
        probes = settings.probes
        families = {
            "injection": probes.injection,
            "traversal": probes.traversal,
            "input": probes.injection or probes.traversal,
            "headers": probes.headers,
            "dos": probes.oversized or probes.slow_body,
        }
        return tuple(category for category, enabled in families.items() if enabled)
    return {"authz": ("authn", "authz"), "fuzz": ("fuzz",), "secrets": ("secrets",)}.get(part, ())


def _crashed(part: str, error: Exception) -> PartResult:
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    at = f" at {where.filename.rsplit('/', 1)[-1]}:{where.lineno}" if where else ""
    return PartResult(part, not_measured=f"crashed: {type(error).__name__}: {error}{at}")


def _auth_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {key: value for key, value in headers if key.lower() in ("authorization", "cookie")}


def _credentials(headers: Mapping[str, str]) -> set[str]:
    """The credential parts of authentication headers (the token of `Bearer <token>`)."""
    return {value.split(" ", 1)[-1] for value in headers.values() if value.strip()}


def _body_secrets(sent: Sent) -> set[str]:
    """Passwords and tokens a request body carried (`{"password": …}`, `password=…`)."""
    found: set[str] = set()
    content_type = next((value for key, value in sent.headers if key.lower() == "content-type"), "")
    if "json" in content_type:
        try:
            document = json.loads(sent.body)
        except ValueError:
            return found

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if isinstance(value, str) and _SECRET_FIELD.search(str(key)):
                        found.add(value)
                    else:
                        walk(value)
            elif isinstance(node, list):
                for item in node:
                    walk(item)

        walk(document)
    elif "form-urlencoded" in content_type:
        from urllib.parse import parse_qsl

        found |= {value for key, value in parse_qsl(sent.body.decode("latin-1")) if _SECRET_FIELD.search(key)}
    return {value for value in found if value}


def _redacted(finding: Finding, secrets: frozenset[str]) -> Finding:
    if not secrets:
        return finding
    return replace(
        finding,
        title=redact(finding.title, secrets),
        request=redact(finding.request, secrets),
        response=redact(finding.response, secrets),
        reproduction=redact(finding.reproduction, secrets),
    )


def _json(document: Any) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False, default=str).encode()
