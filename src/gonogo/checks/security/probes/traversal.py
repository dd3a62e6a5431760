"""Path traversal: does a route that takes a name serve a file from outside its folder?

Aimed at every path parameter of a GET, the rest of the path after a file-like segment
(`/files/`, `/static/`, `/download/`, …), query parameters named like a file, and the plan's
`file_routes`. Two files are asked for: /etc/passwd, and a file of the service's own code (the
module its command names, wherever its Python imports it from, else a script or a project file
of its working directory: `_source`); a note says which.
Each is asked for through many levels of `../` (more than any storage folder is deep: the
extra ones stop at /), so one payload reaches it from wherever the route reads, written
plain, with `%2f`, all encoded, double-encoded, with backslashes, doubled (`....//`, against
a filter that removes `../` once) and as an absolute path.

A response that holds the file's content (`root:x:0:0:` for /etc/passwd, a distinctive line
of the source file) is critical; a 5xx is kept by the session (an `input.server-error` unless
another finding explains it). Only GETs are tried: a PUT to a traversed name would write.
"""

from __future__ import annotations

__all__ = ["run_traversal", "service_files"]

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from gonogo.checks.security.probes._session import ProbeSession, Sent
from gonogo.checks.security.probes._source import TargetFile, own_files
from gonogo.checks.security.probes.surface import Endpoint
from gonogo.checks.security.target import Target

LEVELS = 12  # `../` repeated: deeper than any storage folder; the extra ones stop at /
FILE_SEGMENTS = re.compile(
    r"(?i)^(files?|static|download|downloads|uploads?|assets|media|images?|attachments?|content|raw|public)$"
)
FILE_NAMES = re.compile(
    r"(?i)(^|_|-)(name|file|filename|filepath|path|fname|key|doc|document|asset|attachment)$"
)
PASSWD = re.compile(r"root:[^:\n]*:0:0:")
FIX = (
    "never join a request's value to a folder as is: take its base name only (or look the file up by "
    "an id), resolve the joined path and refuse it unless it is still inside the served folder"
)


@dataclass(frozen=True)
class _Spot:
    """Where a traversal payload goes: a path segment, a query value, or a plan's file route."""

    label: str  # `path name`, `query file`, `route /static/{}`
    operation: str
    # how to build the target: ("segment", index, "keep" or "drop" the segments after it),
    # ("query", index or "" to add it, name), ("route", route)
    make: tuple[str, ...]
    endpoint: Endpoint | None


def service_files(target: Target) -> tuple[list[TargetFile], str]:
    """One file of each watched service's own code (the stronger evidence), then /etc/passwd
    where it exists; and a note saying which files are asked for, or why none of the service's."""
    files, missing = own_files(target)
    aimed = [f"{file.label} ({file.path})" for file in files]
    if Path("/etc/passwd").is_file():
        files.append(TargetFile("/etc/passwd", PASSWD, "/etc/passwd"))
        aimed.append("/etc/passwd")
    note = "traversal: asked for " + (", ".join(aimed) or "no file (none found to ask for)")
    if missing:
        note += f"; no file of the service's own code for the rest: {'; '.join(missing)}"
    return files, note


def payloads(file: TargetFile) -> list[tuple[str, str]]:
    """(encoding, payload as on the wire) for asking `file` through one value."""
    relative = file.path.lstrip("/")
    return [
        ("plain", "../" * LEVELS + relative),
        ("%2f", "..%2f" * LEVELS + relative.replace("/", "%2f")),
        ("encoded", "%2e%2e%2f" * LEVELS + quote(relative, safe="")),
        ("double-encoded", "%252e%252e%252f" * LEVELS + quote(relative, safe="").replace("%", "%25")),
        ("backslash", "..\\" * LEVELS + relative.replace("/", "\\")),
        ("%5c", "..%5c" * LEVELS + relative.replace("/", "%5c")),
        ("doubled", "....//" * LEVELS + relative),
        ("absolute", "/" + relative),
        ("absolute %2f", quote("/" + relative, safe="")),
    ]


def spots(session: ProbeSession, endpoints: list[Endpoint]) -> list[_Spot]:
    found: list[_Spot] = []
    for endpoint in endpoints:
        if endpoint.method != "GET":
            continue
        segments = endpoint.path.split("/")
        # A parameter's segment is replaced (what follows it stays: the same operation); the
        # rest of the path after a file-like segment (`/static/css/app.css`) is the file's path,
        # replaced whole.
        spots_here = {index: (f"path {name}", "keep") for index, name in endpoint.path_parameters}
        for index, segment in enumerate(segments[:-1]):
            if FILE_SEGMENTS.match(segment) and index + 1 not in spots_here:
                spots_here[index + 1] = (f"path after /{segment}/", "drop")
        for index, (label, rest) in sorted(spots_here.items()):
            found.append(_Spot(label, endpoint.label, ("segment", str(index), rest), endpoint))
        for point in endpoint.points():
            if point.location == "query" and FILE_NAMES.search(point.name):
                where = "" if point.where is None else str(point.where)
                found.append(_Spot(point.label, endpoint.label, ("query", where, point.name), endpoint))
    for route in session.settings.file_routes:
        if "{}" in route:
            found.append(
                _Spot(f"route {route}", f"GET {route.replace('{}', '{name}')}", ("route", route), None)
            )
    return found


def _target(spot: _Spot, payload: str) -> str:
    kind, where, *name = spot.make
    if kind == "route":
        return where.replace("{}", payload)
    assert spot.endpoint is not None
    if kind == "query":
        return spot.endpoint.with_query(int(where) if where else None, payload, *name)
    if name == ["keep"]:
        return spot.endpoint.with_segment(int(where), payload)
    segments = spot.endpoint.path.split("/")[: int(where)]
    return spot.endpoint.target("/".join([*segments, payload]))


async def run_traversal(session: ProbeSession, endpoints: list[Endpoint]) -> None:
    # looking at the processes may run their interpreter (for its `sys.path`): off the event loop
    files, note = await asyncio.to_thread(service_files, session.target)
    session.result.notes.append(note)
    for spot in spots(session, endpoints):
        headers = spot.endpoint.headers if spot.endpoint else (("Accept", "*/*"),)
        if not await _try_spot(session, spot, files, headers):
            return


async def _try_spot(
    session: ProbeSession, spot: _Spot, files: list[TargetFile], headers: tuple[tuple[str, str], ...]
) -> bool:
    """Every payload for every file on one spot, until the first hit; False when the budget is spent."""
    for file in files:
        for encoding, payload in payloads(file):
            sent = Sent("GET", _target(spot, payload), tuple(headers))
            what = f"a traversal payload ({encoding}) asking for {file.label}"
            response = await session.send(sent, spot.operation, payload=True, parameter=spot.label, what=what)
            if response is None:
                return False
            if response.status is None:
                continue
            if file.marker.search(response.text()):
                session.add(
                    "traversal.file-outside",
                    f"{spot.operation} serves {file.label} when {spot.label} is {encoding} `../`s",
                    "critical",
                    "traversal",
                    spot.operation,
                    sent,
                    response,
                    FIX,
                    {"parameter": spot.label, "payload": payload, "encoding": encoding, "file": file.path},
                )
                return True
    return True
