"""Settings of the `security` check kind (the plan's `checks.<name>` section).

Everything has a default that finds defects: a plan needs no more than `kind: security` and,
for fuzzing and the anonymous tries of protected operations, `openapi:`. Every part is bounded
by the shared `budget` (requests and time) and can be turned off with `enabled: false`.
"""

from __future__ import annotations

__all__ = [
    "AuthzSettings",
    "BanditSource",
    "BudgetSettings",
    "FuzzSettings",
    "Ignore",
    "PipAuditSource",
    "ProbeSettings",
    "ScannerSource",
    "SecretsSettings",
    "SecuritySettings",
]

from pydantic import Field, field_validator, model_validator

from gonogo.checks.security.findings import Category, Severity
from gonogo.plan.model import ByteSize, Duration, StrictModel, http_url

_OPERATION = "an operation as `METHOD /path` (globs allowed: `GET /documents/*`, `* /admin*`)"


class BudgetSettings(StrictModel):
    requests: int = Field(20_000, ge=1, description="at most this many requests in the whole check")
    duration: Duration = Field(600.0, gt=0, description="and at most this long (e.g. 10m)")


class AuthzSettings(StrictModel):
    """The authorization matrix: every credentialed journey request replayed without
    credentials, with malformed ones, and as a second user; protected operations tried
    anonymously."""

    enabled: bool = True
    # A second user's headers when the journeys cannot make one (no sign-up step), e.g.
    # {Authorization: "Bearer tok-of-a-second-user"}. By default gonogo runs the journeys again.
    second_user: dict[str, str] | None = None
    # An expired credential of the first user, as the header value to send
    # (`Bearer eyJ…`): tried on every credentialed request when given.
    expired: str | None = None


class FuzzSettings(StrictModel):
    """Schemathesis, as a library, on every operation of the OpenAPI document."""

    enabled: bool = True
    max_examples: int = Field(25, ge=1, le=10_000, description="generated cases per operation")
    operations: list[str] = Field(default_factory=list, description=f"only these: {_OPERATION}")
    exclude: list[str] = Field(default_factory=list, description=f"not these: {_OPERATION}")
    seed: int | None = None  # fixed: the same cases every run
    hang: Duration = Field(10.0, gt=0, description="a response slower than this is a hang")


class ProbeSettings(StrictModel):
    """Crafted requests sent byte for byte by the raw client."""

    enabled: bool = True
    traversal: bool = True
    injection: bool = True
    oversized: bool = True
    slow_body: bool = True
    headers: bool = True  # security headers, cookie flags, CORS, TRACE, versions, stack traces
    body_size: ByteSize = Field(50 * 1000 * 1000, description="the oversized body (default 50MB)")
    header_size: ByteSize = Field(64 * 1024, description="the oversized header (default 64KiB)")
    # A response this much slower than the same request with a harmless value is a timing
    # anomaly (time-based blind injection); confirmed on a second try before it is reported.
    timing: Duration = Field(2.0, gt=0)
    # how long the slow body trickles (at 128 bytes/s) before "never timed out" is concluded
    slow_body_window: Duration = Field(30.0, gt=0, le=600)
    file_routes: list[str] = Field(
        default_factory=list, description="more paths that serve files, with `{}` for the name: `/static/{}`"
    )


class SecretsSettings(StrictModel):
    """The passwords and tokens gonogo used must not appear in the services' logs, nor in
    responses other than the one that issued them."""

    enabled: bool = True
    services: list[str] | None = None  # whose logs to read; default: every service of the plan


class BanditSource(StrictModel):
    """A Bandit JSON report (`report:`), or Bandit run by gonogo on `run:` paths."""

    report: str | None = None
    run: list[str] | None = None

    @model_validator(mode="after")
    def _one(self) -> BanditSource:
        if (self.report is None) == (self.run is None):
            raise ValueError("give either `report` (a Bandit JSON file) or `run` (paths for gonogo to scan)")
        return self


class PipAuditSource(StrictModel):
    """A pip-audit JSON report (`report:`), or pip-audit run by gonogo on a requirements file."""

    report: str | None = None
    requirements: str | None = None

    @model_validator(mode="after")
    def _one(self) -> PipAuditSource:
        if (self.report is None) == (self.requirements is None):
            raise ValueError(
                "give either `report` (a pip-audit JSON file) or `requirements` (a file for gonogo to audit)"
            )
        return self


class ScannerSource(StrictModel):
    """One scanner's findings: `sarif:` (files or globs, SARIF 2.1.0 from any tool),
    `bandit:` or `pip_audit:`."""

    sarif: list[str] | None = None
    bandit: BanditSource | None = None
    pip_audit: PipAuditSource | None = None

    @model_validator(mode="after")
    def _one(self) -> ScannerSource:
        given = [name for name in ("sarif", "bandit", "pip_audit") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("each scanner entry is one of `sarif`, `bandit` or `pip_audit`")
        return self


class Ignore(StrictModel):
    """An accepted risk: findings of `rule` (glob) on `operation` (glob) are reported as
    ignored, with the reason, and not counted."""

    rule: str = "*"
    operation: str = "*"
    reason: str = Field(min_length=1)


class SecuritySettings(StrictModel):
    base_url: str | None = None
    openapi: str | None = Field(
        None, description="the OpenAPI document: a file, a URL, or a path on the service (`/openapi.json`)"
    )
    # The `journeys` checks whose journeys are replayed (as two users) for the authorization
    # matrix and whose requests give parameters to probe; default: every journeys check.
    journeys: list[str] | None = None
    services: list[str] | None = None  # whose processes are watched (crash, RSS); default: all
    authz: AuthzSettings = AuthzSettings()
    fuzz: FuzzSettings = FuzzSettings()
    probes: ProbeSettings = ProbeSettings()
    secrets: SecretsSettings = SecretsSettings()
    scanners: list[ScannerSource] = Field(default_factory=list)
    budget: BudgetSettings = BudgetSettings()
    request_timeout: Duration = Field(10.0, gt=0)
    ignore: list[Ignore] = Field(default_factory=list)
    # the lowest severity that makes a finding count against `findings.total`; lower ones are listed
    report_below: Severity = "low"
    categories: list[Category] | None = None  # only these categories; default all

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @model_validator(mode="after")
    def _something_to_do(self) -> SecuritySettings:
        enabled = [self.authz.enabled, self.fuzz.enabled, self.probes.enabled, self.secrets.enabled]
        if not any(enabled) and not self.scanners:
            raise ValueError(
                "every part is turned off: enable one of authz, fuzz, probes, secrets, or add scanners"
            )
        return self
