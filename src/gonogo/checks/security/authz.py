"""The authorization matrix: every credentialed request of the journeys replayed without
credentials, with malformed ones and as a second user, and every protected operation of the
OpenAPI document that the journeys did not cover tried anonymously.

What makes a finding:

- *missing authentication* (category authn): a 2xx to a replay with no credentials, with
  malformed ones (empty, `Bearer ` alone, another scheme, a truncated token, a token whose
  signature is altered, the plan's expired one), or to an anonymous try of an operation the
  OpenAPI document secures. Critical when the response carries the first user's data, or
  when the method changes data on an operation the document secures or on a path holding the
  first user's id; high for a secured read; low otherwise, when nothing says the operation is
  protected (no OpenAPI document covers it, or the document declares no security) and nothing
  of the first user's is in the response or the path, since a public route the journeys
  happened to call with a token (httpbin's POST /anything) answers exactly so. An operation
  counts as public (not replayed without credentials) only when the document speaks about
  security (a requirement somewhere) and leaves this operation without one: a document that
  declares no security at all (httpbin's) says nothing, and every replay is made.
- *a token still valid after logout* (category authn, high): when the journey logs out (a 2xx
  to a credentialed request whose path says log-out, sign-out or revoke), one of the reads it
  made before, with the same credentials, is sent again after the matrix; a 2xx means the
  logout revoked nothing.
- *broken object-level authorization* (category authz, critical): the second user's 2xx on
  the first user's resource that returns the first user's data (the same body, or the first
  user's values: ids under the same field, email, what the first user created), or that
  changes it (PUT, PATCH, POST, DELETE on a path holding an id of the first user). A POST to a
  collection is not replayed as the second user: it would create the second user's own.

"The first user's values" are the first user's journey variables that differ from the second
user's (ids, email; not the built-in `iteration`), and the id fields of the original response
that hold them. An id is a path segment equal to one of those values. A value the replayed
request itself carries (in its query or body, or anywhere in it for an email-like string) is
no evidence when the response holds it: an echo (httpbin's /anything) gives it back to anyone.

Order: every read is replayed before any state-changing request, and DELETEs come last. A
resource the journey (or a replay) deleted is created again, when a request of the journey
created it (a POST or PUT whose response held its id), before the requests that need it; its
new id takes the old one's place in their paths. A second user's 2xx DELETE is proved by the
owner's GET of the same path answering 404 or 410 afterwards.

Every request is drawn from the shared budget and counted; secrets never reach a finding:
excerpts are redacted, reproductions use `$TOKEN` (the first user's credential, without its
scheme), `$SECOND_TOKEN`, `$COOKIE` and `$SECOND_COOKIE`.
"""

from __future__ import annotations

__all__ = ["run_authz"]

import hashlib
import json
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from gonogo.checks.security.findings import Finding, PartResult, Severity
from gonogo.checks.security.openapi import OpenApi, Operation, example_value, normal_name
from gonogo.checks.security.settings import AuthzSettings
from gonogo.checks.security.target import ENDS_SESSION, NOT_REPLAYED_HEADERS, Exchange, Target
from gonogo.journey.raw import RawClient, RawResponse
from gonogo.journey.redact import is_secret_name, redact

READS = frozenset({"GET", "HEAD"})
KEEP_BODY = 1024 * 1024  # enough to hash the responses the journeys compare
EXCERPT = 1024
_BUILTIN_VARIABLES = frozenset({"iteration", "journey"})
_BASE64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_TEMPLATE = re.compile(r"\{([^{}/]+)\}")
_LOGOUT = ENDS_SESSION

FIX_AUTHN = (
    "require authentication on this operation: check the credentials before doing anything else, "
    "and answer 401 when they are missing or invalid"
)
FIX_MALFORMED = (
    "verify the credential completely before trusting it: its scheme, its signature and its expiry; "
    "answer 401 to anything else (do not accept a token for its prefix or its payload alone)"
)
FIX_BOLA_READ = (
    "check that the resource's owner is the caller before serving it (compare the owner with the "
    "authenticated user, and answer 404 or 403 otherwise)"
)
FIX_LOGOUT = (
    "revoke the session/token on logout (a deny-list or short-lived tokens with server-side sessions)"
)
FIX_BOLA_WRITE = (
    "check that the caller owns the resource before changing or deleting it (compare the owner with "
    "the authenticated user, and answer 404 or 403 otherwise)"
)


@dataclass(frozen=True)
class _Variant:
    """One way of (not) authenticating a replay."""

    rule: str
    phrase: str  # "without credentials", "as the second user"
    headers: tuple[tuple[str, str], ...]  # the credential headers sent
    shown: tuple[tuple[str, str], ...]  # the same, as the reproduction writes them
    prelude: str = ""  # shell assignments the reproduction needs (`ALTERED="${TOKEN%?}x" && `)
    hidden: frozenset[str] = frozenset()  # derived credentials to redact too (a truncated token)
    second_user: bool = False


@dataclass(frozen=True)
class _Markers:
    """What of the first user's a response may hold: (field, id) pairs of the original response,
    and strings (an email, a uuid) found anywhere."""

    ids: frozenset[tuple[str, str]]
    strings: frozenset[str]

    def found_in(self, body: bytes, target: str = "", sent: bytes = b"") -> list[str]:
        """The markers in a response to a request for `target` with body `sent`; those the
        request carried itself are left out (an echo gives them back to anyone)."""
        text = body.decode("utf-8", errors="replace")
        request = unquote(target) + "\n" + sent.decode("utf-8", errors="replace")
        found = [f"{value!r}" for value in sorted(self.strings) if value in text and value not in request]
        if self.ids:
            leaves = set(_leaves(_json(body)))
            echoed = _values_sent(target, sent)
            found += [
                f"{key}={value}"
                for key, value in sorted(self.ids)
                if (key, value) in leaves and value not in echoed
            ]
        return found


_Key = tuple[str, str]  # one resource of the first user: (the variable holding its id, the id)


@dataclass
class _Resources:
    """The first user's resources the replays touch: which are gone, how to create them again,
    and the ids of the ones created again (old id → new id)."""

    creators: dict[_Key, tuple[Exchange, tuple[str, ...]]] = field(default_factory=dict)
    gone: set[_Key] = field(default_factory=set)
    current: dict[_Key, str] = field(default_factory=dict)
    lost: set[_Key] = field(default_factory=set)  # gone and could not be created again

    def now(self, key: _Key) -> str:
        return self.current.get(key, key[1])

    def now_value(self, value: str) -> str | None:
        """The id now in use for an old id, whatever variable held it; None: gone for good."""
        for key in self.gone | self.lost:
            if key[1] == value:
                return None
        return next((new for (_, old), new in self.current.items() if old == value), value)


class _Matrix:
    def __init__(self, settings: AuthzSettings, target: Target) -> None:
        self.settings = settings
        self.target = target
        self.client = RawClient(target.base_url, timeout=target.request_timeout, keep=KEEP_BODY)
        self.result = PartResult("authz")
        self.findings: dict[tuple[str, str], Finding] = {}
        self.first = target.users[0] if target.users else None
        second = target.users[1] if len(target.users) > 1 else None
        self.second_headers: dict[str, str] | None = (
            dict(second.auth_headers) if second is not None else self.settings.second_user
        )
        self.second_variables: Mapping[str, Any] | None = second.variables if second is not None else None
        self.secrets = target.secrets
        self.resources = _Resources()
        self.stopped = False
        self.base_path = urlsplit(target.base_url).path.rstrip("/")
        # Whether "no security requirement" on an operation means public: only when the document
        # says something about security somewhere (httpbin's says nothing at all).
        self.declares_security = target.openapi is not None and _declares_security(target.openapi)
        self.second_user_statuses: list[int | None] = []  # of the replays as the second user

    # -- sending ----------------------------------------------------------------------------

    async def send(
        self, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes | None
    ) -> RawResponse | None:
        if self.stopped or not self.target.budget.take():
            if not self.stopped:
                self.stopped = True
                self.result.notes.append(f"stopped early: {self.target.budget.exhausted}")
            return None
        self.result.tally.add("requests")
        return await self.client.request(method, path, headers=headers, body=body)

    # -- what the first user's values are ----------------------------------------------------

    def own_values(self, exchange: Exchange) -> dict[str, str]:
        """The first user's variables (at this exchange) that are the first user's own: not a
        secret, not a built-in, and different from the second user's."""
        own = {}
        for name, value in exchange.variables.items():
            if name in _BUILTIN_VARIABLES or is_secret_name(name):
                continue
            if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
                continue
            other = self.second_variables
            if other is not None and name in other and other[name] == value:
                continue
            own[name] = str(value)
        return own

    def ids_in(self, exchange: Exchange) -> dict[int, _Key]:
        """Path segment index → the resource it names (a segment equal to a first user's value)."""
        names: dict[str, list[str]] = {}
        for name, value in self.own_values(exchange).items():
            names.setdefault(value, []).append(name)
        segments = urlsplit(exchange.url).path.split("/")
        return {
            index: (_closest(names[segment], segments[index - 1]), segment)
            for index, segment in enumerate(segments)
            if index and segment in names
        }

    def markers(self, exchange: Exchange) -> _Markers:
        own = self.own_values(exchange).items()
        renamed = {value: self.resources.now((name, value)) for name, value in own}
        values = {*renamed, *renamed.values()}
        ids = {(key, value) for key, value in _leaves(_json(exchange.response_body)) if value in values}
        ids |= {(key, renamed.get(value, value)) for key, value in ids}
        strings = {value for value in values if len(value) >= 6 and not value.isdigit()}
        return _Markers(frozenset(ids), frozenset(strings))

    # -- the requests ---------------------------------------------------------------------------

    def target_of(self, exchange: Exchange) -> str:
        """The exchange's request-target with the ids of resources created again replaced."""
        parts = urlsplit(exchange.url)
        segments = parts.path.split("/")
        for index, key in self.ids_in(exchange).items():
            segments[index] = self.resources.now(key)
        return "/".join(segments) + (f"?{parts.query}" if parts.query else "")

    def operation_of(self, exchange: Exchange) -> tuple[str, Operation | None]:
        spec = self.target.openapi
        path = urlsplit(exchange.url).path
        operation = None
        if spec is not None:
            operation = spec.operation_for(exchange.method, path) or spec.operation_for(
                exchange.method, path.removeprefix(self.base_path) or "/"
            )
        if exchange.operation:
            return exchange.operation, operation
        if operation is not None:
            return operation.label, operation
        segments = path.split("/")
        for index, (name, _) in self.ids_in(exchange).items():
            segments[index] = "{" + name + "}"
        return f"{exchange.method} {'/'.join(segments)}", None

    def is_credential(self, name: str, value: str) -> bool:
        """Authorization, Cookie, or a header holding a secret of the run (`X-Api-Key`)."""
        return name.lower() in ("authorization", "cookie") or any(
            len(secret) >= 6 and secret in value for secret in self.secrets
        )

    def copied_headers(self, exchange: Exchange) -> list[tuple[str, str]]:
        """The exchange's headers a replay keeps: all but its credentials and the framing."""
        return [
            (name, value)
            for name, value in exchange.headers
            if name.lower() not in NOT_REPLAYED_HEADERS and not self.is_credential(name, value)
        ]

    def own_credentials(self, exchange: Exchange) -> list[tuple[str, str]]:
        return [(name, value) for name, value in exchange.headers if self.is_credential(name, value)]

    # -- resources gone and created again -------------------------------------------------------

    def learn_resources(self) -> None:
        seen: dict[str, Any] = {}
        for exchange in self.target.exchanges:
            created = exchange.method in ("POST", "PUT") and _ok(exchange.status) and exchange.body_complete
            for name, value in exchange.variables.items():
                if name in seen and seen[name] == value:
                    continue
                seen[name] = value
                key = (name, str(value))
                if not created or key in self.resources.creators or isinstance(value, bool):
                    continue
                locator = _locate(exchange, key[1])
                if locator is not None:
                    self.resources.creators[key] = (exchange, locator)
            if exchange.method == "DELETE" and _ok(exchange.status):
                self.forget(exchange)

    async def ensure(self, exchange: Exchange, depth: int = 0) -> bool:
        """Whether the resources in the exchange's path exist (created again when needed)."""
        for _, key in sorted(self.ids_in(exchange).items()):
            if key in self.resources.lost:
                return False
            if key in self.resources.gone and not await self.recreate(key, depth):
                if self.stopped:  # the budget, not the service
                    return False
                self.resources.lost.add(key)
                self.result.notes.append(
                    f"{self.operation_of(exchange)[0]}: its resource was deleted and gonogo could not "
                    "create it again (no request of the journey that created it answers now); "
                    "the requests that need it were not replayed"
                )
                return False
        return True

    async def recreate(self, key: _Key, depth: int) -> bool:
        """Replay, as the first user, the request that created the resource; its new id replaces
        the old one in the paths of the requests still to replay."""
        creator = self.resources.creators.get(key)
        if creator is None or depth > 3:
            return False
        exchange, locator = creator
        if not await self.ensure(exchange, depth + 1):
            return False
        headers = self.copied_headers(exchange) + self.own_credentials(exchange)
        response = await self.send(exchange.method, self.target_of(exchange), headers, _body(exchange))
        if response is None or not _ok(response.status):
            return False
        new = _extract(response, locator)
        if new is None:
            return False
        self.resources.current[key] = new
        self.resources.gone.discard(key)
        self.result.tally.add("recreated")
        return True

    async def still_there(self, exchange: Exchange) -> bool | None:
        """The owner's GET of the exchange's path: True (2xx), False (404 or 410), None (unknown)."""
        headers = [
            (name, value) for name, value in self.copied_headers(exchange) if name.lower() != "content-type"
        ]
        response = await self.send(
            "GET", self.target_of(exchange), headers + self.own_credentials(exchange), None
        )
        if response is None or response.status is None:
            return None
        if _ok(response.status):
            return True
        return False if response.status in (404, 410) else None

    def forget(self, exchange: Exchange) -> None:
        """A replay deleted the exchange's resource: create it again before it is needed."""
        ids = self.ids_in(exchange)
        if ids:
            self.resources.gone.add(ids[max(ids)])

    # -- variants -----------------------------------------------------------------------------

    def variants(self, exchange: Exchange) -> list[_Variant]:
        variants = [_Variant("authn.no-credentials", "without credentials", (), ())]
        authorization = exchange.header("authorization")
        cookie = exchange.header("cookie")
        if authorization is not None:
            variants += _malformed_authorization(authorization, self.settings.expired)
        elif cookie is not None:
            variants += _malformed_cookie(cookie)
        if self.second_headers is not None:
            shown = tuple(
                (name, _placeholder(name, value, "SECOND_")) for name, value in self.second_headers.items()
            )
            variants.append(
                _Variant(
                    "authz.bola",
                    "as the second user",
                    tuple(self.second_headers.items()),
                    shown,
                    hidden=frozenset(_credential(value) for value in self.second_headers.values()),
                    second_user=True,
                )
            )
        return variants

    # -- the matrix ---------------------------------------------------------------------------

    async def run(self) -> PartResult:
        tally = self.result.tally
        if self.second_headers is None:
            self.result.notes.append(
                "no second user (the journeys made none and authz.second_user is not set): "
                "broken object-level authorization was not tried"
            )
        self.learn_resources()
        replayed: list[Exchange] = []
        for exchange in self.target.exchanges:
            if not exchange.authenticated or exchange.method == "OPTIONS":
                continue
            if not exchange.body_complete:
                tally.add("skipped")
                self.result.notes.append(
                    f"{self.operation_of(exchange)[0]}: its body was too large to keep; not replayed"
                )
                continue
            if not _ok(exchange.status):
                tally.add("skipped")
                continue
            replayed.append(exchange)
        spec = self.target.openapi
        if not replayed and not (
            spec is not None and any(operation.secured for operation in spec.operations)
        ):
            self.result.not_measured = (
                "no request of the journeys carried credentials, and no OpenAPI document declares a "
                "protected operation: nothing to try"
            )
            return self.result
        reads = [exchange for exchange in replayed if exchange.method in READS]
        writes = [
            exchange for exchange in replayed if exchange.method not in READS and exchange.method != "DELETE"
        ]
        deletes = [exchange for exchange in replayed if exchange.method == "DELETE"]
        self.target.progress(
            f"authz: replaying {len(replayed)} credentialed request(s) without credentials, with malformed "
            "ones and as a second user"
        )
        for exchange in [*reads, *writes, *deletes]:
            if self.stopped:
                break
            await self.replay(exchange)
        if not self.stopped:
            await self.uncovered({self.operation_of(exchange)[0] for exchange in replayed})
        logouts = [exchange for exchange in self.target.exchanges if _is_logout(exchange)]
        for logout in logouts:
            if self.stopped or await self.after_logout(logout):
                break
        statuses = self.second_user_statuses
        if logouts and statuses and all(status == 401 for status in statuses):
            self.result.notes.append(
                f"every replay as the second user was refused with 401, and the journey logs out "
                f"({self.operation_of(logouts[0])[0]}): the second user's own logout probably revoked its "
                "credentials, so broken object-level authorization was not really tried; give "
                "authz.second_user credentials that stay valid"
            )
        self.result.findings = list(self.findings.values())
        return self.result

    async def replay(self, exchange: Exchange) -> None:
        label, operation = self.operation_of(exchange)
        public = operation is not None and not operation.secured and self.declares_security
        self.result.tally.operations.add(label)
        accepted_anonymously = False
        for variant in self.variants(exchange):
            if self.stopped:
                return
            if variant.second_user:
                # (a logout replayed as the second user would end its session for the rest)
                if not self.bola_applies(exchange) or _is_logout(exchange):
                    continue
            elif public or (accepted_anonymously and variant.rule != "authn.no-credentials"):
                # An operation the document leaves open, or one that answered without credentials
                # already: malformed credentials would tell nothing more.
                continue
            if not await self.ensure(exchange):
                return
            copied = self.copied_headers(exchange)
            target = self.target_of(exchange)
            response = await self.send(exchange.method, target, [*copied, *variant.headers], _body(exchange))
            if response is None:
                return
            self.result.tally.add("replays")
            if variant.second_user:
                self.second_user_statuses.append(response.status)
            if not _ok(response.status):
                continue
            if exchange.method == "DELETE":
                self.forget(exchange)
            if variant.second_user:
                await self.judge_bola(exchange, label, variant, target, copied, response)
            else:
                accepted_anonymously |= variant.rule == "authn.no-credentials"
                self.judge_authn(exchange, label, operation, variant, target, copied, response)

    async def after_logout(self, logout: Exchange) -> bool:
        """One read the user made before logging out, sent again with the same credentials: a 2xx
        means the logout left them valid. The journey already logged out, before the matrix.
        False when no such read was there to send."""
        credentials = self.own_credentials(logout)
        before = self.target.exchanges[: self.target.exchanges.index(logout)]
        reads = [
            exchange
            for exchange in before
            if exchange.method == "GET"
            and _ok(exchange.status)
            and exchange.authenticated
            and not _is_logout(exchange)
            and self.own_credentials(exchange) == credentials
            and not any(
                key in self.resources.gone | self.resources.lost for key in self.ids_in(exchange).values()
            )
        ]
        # Reads on no resource of the first user's first (a profile outlives a deleted document),
        # the nearest to the logout first; a 404 tells nothing, and the next one is tried.
        reads = sorted(reversed(reads), key=lambda exchange: bool(self.ids_in(exchange)))
        logout_label = self.operation_of(logout)[0]
        for read in reads[:3]:
            label = self.operation_of(read)[0]
            target = self.target_of(read)
            copied = self.copied_headers(read)
            response = await self.send("GET", target, [*copied, *credentials], None)
            if response is None:
                return True
            self.result.tally.add("after_logout")
            if response.status in (404, 410):
                continue
            if _ok(response.status):
                self.add_after_logout(logout, logout_label, label, target, copied, credentials, response)
            return True
        return bool(reads)

    def add_after_logout(
        self,
        logout: Exchange,
        logout_label: str,
        label: str,
        target: str,
        copied: list[tuple[str, str]],
        credentials: list[tuple[str, str]],
        response: RawResponse,
    ) -> None:
        hidden = self.secrets | {_credential(value) for _, value in credentials}
        shown = [(name, _placeholder(name, value)) for name, value in credentials]
        # The reproduction logs out first, then reads: the second answer should be a 401.
        logout_headers = [
            (name, redact(value, hidden))
            for name, value in self.copied_headers(logout)
            if name.lower() != "host"
        ]
        body = _body(logout)
        logout_curl = self.client.curl(
            logout.method,
            redact(self.target_of(logout), hidden),
            [*logout_headers, *shown],
            redact(body.decode("utf-8", errors="replace"), hidden).encode() if body is not None else None,
            expand=("TOKEN", "COOKIE"),
        )
        variant = _Variant(
            "authn.token-after-logout",
            "after logout",
            tuple(credentials),
            tuple(shown),
            prelude=f"{logout_curl} && ",
            hidden=frozenset(hidden),
        )
        self.add(
            Finding(
                rule="authn.token-after-logout",
                title=f"{logout_label} leaves the credentials valid: {label} still answers "
                f"{response.status} with those it logged out",
                severity="high",
                category="authn",
                operation=logout_label,
                fix=FIX_LOGOUT,
                details={"variant": "after logout", "read": label, "logout_status": logout.status},
            ),
            "GET",
            target,
            copied,
            b"",
            variant,
            response,
        )

    def bola_applies(self, exchange: Exchange) -> bool:
        """Reads are always tried; a change only on a path holding the first user's id."""
        return exchange.method in READS or bool(self.ids_in(exchange))

    def returns_data(self, exchange: Exchange, response: RawResponse) -> list[str]:
        """What of the first user's the response holds: the same body (on a path with the first
        user's id, or when the original held the first user's values), or the first user's values."""
        markers = self.markers(exchange)
        found = markers.found_in(response.body, self.target_of(exchange), exchange.body)
        same = (
            response.complete
            and response.size > 0
            and hashlib.sha256(response.body).hexdigest() == exchange.response_sha256
        )
        if same and (found or self.ids_in(exchange)):
            found.insert(0, "the same body as the first user's response")
        return found

    def judge_authn(
        self,
        exchange: Exchange,
        label: str,
        operation: Operation | None,
        variant: _Variant,
        target: str,
        headers: list[tuple[str, str]],
        response: RawResponse,
    ) -> None:
        data = self.returns_data(exchange, response)
        changes = exchange.method not in READS
        secured = operation is not None and operation.secured
        severity: Severity
        if data or (changes and (secured or self.ids_in(exchange))):
            severity = "critical"
        elif secured:
            severity = "high"
        else:
            # Nothing says the operation is protected and nothing of the first user's is in it:
            # a public route (an echo, a health page) the journey called with its token does this.
            severity = "low"
        if data:
            what = "changes data" if changes else "returns the first user's data"
        else:
            what = "changes data" if changes and severity != "low" else "answers"
        title = f"{label} {what} {variant.phrase} ({response.status})"
        if severity == "low":
            says = (
                "no OpenAPI document says"
                if operation is None
                else "the OpenAPI document declares no security"
            )
            title += f": a public route, or missing authentication ({says})"
        self.add(
            Finding(
                rule=variant.rule,
                title=title,
                severity=severity,
                category="authn",
                operation=label,
                fix=FIX_AUTHN if variant.rule == "authn.no-credentials" else FIX_MALFORMED,
                details={"variant": variant.phrase, "evidence": data, "original_status": exchange.status},
            ),
            exchange.method,
            target,
            headers,
            exchange.body,
            variant,
            response,
        )

    async def judge_bola(
        self,
        exchange: Exchange,
        label: str,
        variant: _Variant,
        target: str,
        headers: list[tuple[str, str]],
        response: RawResponse,
    ) -> None:
        details: dict[str, Any] = {"variant": variant.phrase, "original_status": exchange.status}
        if exchange.method in READS:
            data = self.returns_data(exchange, response)
            if not data:
                return
            title = f"the second user reads the first user's data through {label} ({response.status})"
            details["evidence"] = data
            fix = FIX_BOLA_READ
        else:
            verb = "deletes" if exchange.method == "DELETE" else "changes"
            title = f"the second user {verb} the first user's resource through {label} ({response.status})"
            fix = FIX_BOLA_WRITE
            if exchange.method == "DELETE":
                there = await self.still_there(exchange)
                if there:
                    # Answered 2xx but deleted nothing: an idempotent DELETE that hides existence.
                    self.result.tally.add("delete_without_effect")
                    return
                details["proof"] = (
                    "the first user's GET of the same path answers 404/410 afterwards"
                    if there is False
                    else "not confirmed: the first user's GET of the same path did not say"
                )
        self.add(
            Finding(
                rule="authz.bola",
                title=title,
                severity="critical",
                category="authz",
                operation=label,
                fix=fix,
                details=details,
            ),
            exchange.method,
            target,
            headers,
            exchange.body,
            variant,
            response,
        )

    def add(
        self,
        finding: Finding,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        variant: _Variant | None,
        response: RawResponse,
    ) -> None:
        """Keep the finding (the first of its rule and operation) with its evidence: what was sent
        (`headers` without the variant's credentials, which are added as the variant shows them)."""
        key = (finding.rule, finding.operation)
        if key in self.findings:
            return
        hidden = self.secrets | (variant.hidden if variant else frozenset())
        # curl sends its own Host (the URL's), the same one
        shown = [(name, value) for name, value in headers if name.lower() != "host"]
        shown += variant.shown if variant else ()
        expand = ("TOKEN", "SECOND_TOKEN", "COOKIE", "SECOND_COOKIE", "ALTERED", "TRUNCATED")
        curl = self.client.curl(
            method,
            redact(target, hidden),
            [(name, redact(value, hidden)) for name, value in shown],
            redact(body.decode("utf-8", errors="replace"), hidden).encode() if body else None,
            expand=expand,
        )
        self.findings[key] = Finding(
            rule=finding.rule,
            title=finding.title,
            severity=finding.severity,
            category=finding.category,
            operation=finding.operation,
            request=redact(_request_excerpt(response, body), hidden),
            response=redact(_response_excerpt(response), hidden),
            reproduction=(variant.prelude if variant else "") + curl,
            fix=finding.fix,
            details=finding.details,
        )

    # -- protected operations the journeys did not cover ----------------------------------------

    async def uncovered(self, covered: set[str]) -> None:
        spec = self.target.openapi
        if spec is None:
            return
        todo = [
            operation
            for operation in spec.operations
            if operation.secured and operation.label not in covered and operation.method != "OPTIONS"
        ]
        todo.sort(key=lambda operation: (operation.method == "DELETE", operation.method not in READS))
        known = self.known_parameters()
        for operation in todo:
            if self.stopped:
                return
            await self.try_anonymously(operation, known)

    def known_parameters(self) -> dict[str, str]:
        """Parameter values the journeys used: path parameters of the operations they called,
        their query parameters, and the first user's variables (by name)."""
        found: list[tuple[str, str]] = []
        spec = self.target.openapi
        for exchange in self.target.exchanges:  # what the requests used first, then the variables
            parts = urlsplit(exchange.url)
            operation = spec.operation_for(exchange.method, parts.path) if spec else None
            if spec is not None and operation is not None:
                found += _path_values(spec.request_path(operation), parts.path).items()
            found += [pair.partition("=")[::2] for pair in parts.query.split("&") if "=" in pair]
        for exchange in self.target.exchanges:
            found += [
                (name, str(value))
                for name, value in exchange.variables.items()
                if isinstance(value, str | int) and not isinstance(value, bool)
            ]
        known: dict[str, str] = {}
        for name, value in found:
            now = self.resources.now_value(value) if value else None
            # (None: a resource deleted and not created again, which would only give a 404)
            if now is not None and not is_secret_name(name):
                known.setdefault(normal_name(name), now)
        return known

    async def try_anonymously(self, operation: Operation, known: Mapping[str, str]) -> None:
        path = _TEMPLATE.sub(
            lambda match: quote(_parameter_value(operation, match.group(1), known), safe=""), operation.path
        )
        query = "&".join(
            quote(parameter.name, safe="")
            + "="
            + quote(_parameter_value(operation, parameter.name, known), safe="")
            for parameter in operation.parameters
            if parameter.location == "query" and parameter.required
        )
        spec = self.target.openapi
        under = spec.request_path(operation, path) if spec is not None else path
        target = self.base_path + under + (f"?{query}" if query else "")
        headers: list[tuple[str, str]] = [("Accept", "*/*")]
        body = b""
        if operation.body_schema is not None and any("json" in media for media in operation.body_media):
            assert spec is not None
            instance = _required_example(spec.resolve(operation.body_schema), known)
            body = json.dumps(instance).encode()
            headers.append(("Content-Type", "application/json"))
        response = await self.send(operation.method, target, headers, body or None)
        if response is None:
            return
        tally = self.result.tally
        tally.add("anonymous_tries")
        tally.operations.add(operation.label)
        if response.status in (404, 422, 400):
            tally.add("inconclusive")
            return
        if not _ok(response.status):
            return
        found = self._first_user_values_in(response.body, target, body)
        changes = operation.method not in READS
        severity: Severity = "critical" if changes or found else "high"
        what = "changes data" if changes else ("returns the first user's data" if found else "answers")
        self.add(
            Finding(
                rule="authn.no-credentials",
                title=f"{operation.label} (secured in the OpenAPI document) {what} without credentials "
                f"({response.status})",
                severity=severity,
                category="authn",
                operation=operation.label,
                fix=FIX_AUTHN,
                details={"variant": "without credentials", "evidence": found, "source": "openapi"},
            ),
            operation.method,
            target,
            headers,
            body,
            None,
            response,
        )

    def _first_user_values_in(self, body: bytes, target: str, sent: bytes) -> list[str]:
        """The first user's values (email, uuids) in a response, but those the request carried."""
        if self.first is None:
            return []
        values = [
            str(value)
            for name, value in self.first.variables.items()
            if isinstance(value, str)
            and len(value) >= 6
            and not is_secret_name(name)
            and name not in _BUILTIN_VARIABLES
            and (self.second_variables is None or self.second_variables.get(name) != value)
        ]
        text = body.decode("utf-8", errors="replace")
        request = unquote(target) + "\n" + sent.decode("utf-8", errors="replace")
        return [repr(value) for value in sorted(values) if value in text and value not in request]


async def run_authz(settings: AuthzSettings, target: Target) -> PartResult:
    """The authorization matrix on the target's exchanges (see the module's docstring)."""
    return await _Matrix(settings, target).run()


def _declares_security(spec: OpenApi) -> bool:
    """Whether the document speaks about security: a non-empty requirement at its top
    (`security`) or on some operation (naming a scheme of `components.securitySchemes` or
    Swagger's `securityDefinitions`). Only then does an operation without one say "public"."""
    top = spec.document.get("security")
    declared = isinstance(top, list) and any(
        isinstance(requirement, dict) and requirement for requirement in top
    )
    return declared or any(operation.secured for operation in spec.operations)


# -- credentials, malformed ---------------------------------------------------------------------


def _is_logout(exchange: Exchange) -> bool:
    """A credentialed request to a log-out, sign-out or revoke path that answered 2xx."""
    return (
        exchange.authenticated
        and _ok(exchange.status)
        and _LOGOUT.search(urlsplit(exchange.url).path) is not None
    )


def _closest(names: list[str], previous: str) -> str:
    """Which of the variables holding a path segment's value it stands for: the one whose name
    starts most like the segment before it (`/documents/1`: `doc_id`, not `user_id`), else the
    last defined."""

    def shared(name: str) -> int:
        pairs = zip(name.lower(), previous.lower(), strict=False)
        return next((index for index, (a, b) in enumerate(pairs) if a != b), min(len(name), len(previous)))

    return max(reversed(names), key=shared)


def _credential(value: str) -> str:
    """The credential of a header value: the token after the scheme, or the whole value."""
    _, space, rest = value.strip().partition(" ")
    return rest.strip() if space and rest.strip() else value.strip()


def _placeholder(name: str, value: str, prefix: str = "") -> str:
    """How a reproduction writes a credential header: `Bearer $TOKEN`, `$COOKIE`."""
    if name.lower() == "cookie":
        return f"${prefix}COOKIE"
    if name.lower() == "authorization":
        scheme, space, rest = value.strip().partition(" ")
        return f"{scheme} ${prefix}TOKEN" if space and rest.strip() else f"${prefix}TOKEN"
    return value


def _altered(token: str) -> str:
    """The token with its last character changed so that the bytes it stands for change: for a
    JWT (or any base64url text), the top bit of the last character's 6 (a low bit may be padding
    a lenient decoder ignores); for an opaque token, another character of the same kind."""
    last = token[-1]
    if _JWT.match(token) and last in _BASE64URL:
        return token[:-1] + _BASE64URL[_BASE64URL.index(last) ^ 32]
    for alphabet in (string.digits, "abcdef", string.ascii_lowercase, string.ascii_uppercase):
        if last in alphabet:
            return token[:-1] + alphabet[(alphabet.index(last) + 1) % len(alphabet)]
    return token[:-1] + "x"


def _malformed_authorization(value: str, expired: str | None) -> list[_Variant]:
    scheme, space, token = value.strip().partition(" ")
    token = token.strip()
    if not space or not token:
        scheme, token = "", value.strip()
    variants = [
        _Variant(
            "authn.empty-credentials",
            "with an empty Authorization header",
            (("Authorization", ""),),
            (("Authorization", ""),),
        ),
    ]
    if not token:
        return variants
    variants.append(
        _Variant(
            "authn.scheme-without-token",
            "with `Bearer ` and no token",
            (("Authorization", "Bearer "),),
            (("Authorization", "Bearer "),),
        )
    )
    others = ["Bearer"] if scheme.lower() == "basic" else ["Basic", "Token"]
    for other in others:
        variants.append(
            _Variant(
                "authn.wrong-scheme",
                f"with the token under another scheme ({other})",
                (("Authorization", f"{other} {token}"),),
                (("Authorization", f"{other} $TOKEN"),),
            )
        )
    lead = f"{scheme} " if scheme else ""
    if len(token) >= 2:
        half = token[: len(token) // 2]
        variants.append(
            _Variant(
                "authn.truncated-token",
                "with a truncated token",
                (("Authorization", lead + half),),
                (("Authorization", lead + "$TRUNCATED"),),
                prelude=f'TRUNCATED="$(printf %.{len(half)}s "$TOKEN")" && ',
                hidden=frozenset({half}),
            )
        )
    altered = _altered(token)
    variants.append(
        _Variant(
            "authn.altered-signature",
            "with a token whose signature is altered" if _JWT.match(token) else "with an altered token",
            (("Authorization", lead + altered),),
            (("Authorization", lead + "$ALTERED"),),
            prelude=f'ALTERED="${{TOKEN%?}}{altered[-1]}" && ',
            hidden=frozenset({altered, token[:-1]}),
        )
    )
    if expired:
        variants.append(
            _Variant(
                "authn.expired-token",
                "with an expired token",
                (("Authorization", expired),),
                (("Authorization", expired),),
            )
        )
    return variants


def _malformed_cookie(cookie: str) -> list[_Variant]:
    pairs = [part.strip().partition("=") for part in cookie.split(";") if part.strip()]
    altered = "; ".join(f"{name}={_altered(value) if value else value}" for name, _, value in pairs)
    hidden = frozenset(value[:-1] for _, _, value in pairs if len(value) > 1)
    return [
        _Variant(
            "authn.empty-credentials", "with an empty Cookie header", (("Cookie", ""),), (("Cookie", ""),)
        ),
        _Variant(
            "authn.altered-signature",
            "with altered session cookies",
            (("Cookie", altered),),
            (("Cookie", altered),),
            hidden=hidden | {altered},
        ),
    ]


# -- responses and bodies ------------------------------------------------------------------------


def _body(exchange: Exchange) -> bytes | None:
    """The body to send again: none for a request that had none (no `Content-Length: 0` added)."""
    framed = exchange.header("content-length") is not None or exchange.header("transfer-encoding") is not None
    return exchange.body if exchange.body or framed else None


def _ok(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _values_sent(target: str, body: bytes) -> set[str]:
    """The values a request carries as parameters: its query's, and its JSON or form body's."""
    values = {value for _, value in parse_qsl(urlsplit(target).query)}
    parsed = _json(body)
    if parsed is not None:
        values |= {value for _, value in _leaves(parsed)}
    elif body:
        values |= {value for _, value in parse_qsl(body.decode("utf-8", errors="replace"))}
    return values


def _leaves(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(field name, scalar as text) for every scalar of a JSON document."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _leaves(value, str(name))
    elif isinstance(node, list):
        for item in node:
            yield from _leaves(item, key)
    elif isinstance(node, str | int | float) and not isinstance(node, bool):
        yield key, str(node)


def _locate(exchange: Exchange, value: str) -> tuple[str, ...] | None:
    """Where in the exchange's response `value` is: a JSON path (field names and list indexes),
    or ("header", name) for a header ending with it (`Location: /documents/12`)."""

    def walk(node: Any, path: tuple[str, ...]) -> tuple[str, ...] | None:
        if isinstance(node, dict):
            items: Iterator[tuple[str, Any]] = ((str(key), item) for key, item in node.items())
        elif isinstance(node, list):
            items = ((str(index), item) for index, item in enumerate(node))
        else:
            return path if not isinstance(node, bool) and str(node) == value else None
        for key, item in items:
            found = walk(item, (*path, key))
            if found is not None:
                return found
        return None

    found = walk(_json(exchange.response_body), ("json",))
    if found is not None:
        return found
    for name, header in exchange.response_headers:
        if header.rstrip("/").split("/")[-1] == value:
            return ("header", name.lower())
    return None


def _extract(response: RawResponse, locator: tuple[str, ...]) -> str | None:
    if locator[0] == "header":
        header = response.header(locator[1])
        return header.rstrip("/").split("/")[-1] if header else None
    node = _json(response.body)
    for key in locator[1:]:
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return None if node is None or isinstance(node, dict | list | bool) else str(node)


def _request_excerpt(response: RawResponse, body: bytes) -> str:
    head = response.sent_head.decode("latin-1").rstrip("\r\n").replace("\r\n", "\n")
    if not body:
        return head
    text = body[:EXCERPT].decode("utf-8", errors="replace")
    more = f"\n… ({len(body):,} bytes in all)" if len(body) > EXCERPT else ""
    return f"{head}\n\n{text}{more}"


def _response_excerpt(response: RawResponse) -> str:
    lines = [f"HTTP/1.1 {response.status} {response.reason}".rstrip()]
    lines += [f"{name}: {value}" for name, value in response.headers]
    text = response.body[:EXCERPT].decode("utf-8", errors="replace")
    more = f"\n… ({response.size:,} bytes in all)" if response.size > EXCERPT else ""
    return "\n".join(lines) + (f"\n\n{text}{more}" if text else "")


# -- parameters for operations the journeys did not call ----------------------------------------


def _path_values(template: str, path: str) -> dict[str, str]:
    names = _TEMPLATE.findall(template)
    pattern = re.escape(template)
    for name in names:
        pattern = pattern.replace(re.escape("{" + name + "}"), "([^/]+)", 1)
    match = re.fullmatch(pattern, path)
    return dict(zip(names, match.groups(), strict=True)) if match else {}


def _parameter_value(operation: Operation, name: str, known: Mapping[str, str]) -> str:
    value = known.get(normal_name(name))
    if value is not None:
        return value
    parameter = next((item for item in operation.parameters if item.name == name), None)
    example = _required_example(parameter.schema if parameter else {}, known)
    return example if isinstance(example, str) else json.dumps(example)


def _required_example(schema: Any, known: Mapping[str, str]) -> Any:
    """An instance the operation should accept: required properties only."""
    return example_value(schema, known, every_property=False)
