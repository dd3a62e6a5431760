"""Streaming XML reading that refuses hostile input.

Reports can be huge (a JUnit file with captured output easily reaches a gigabyte) and
come from code we do not control, so they are parsed through defusedxml's parser fed in
fixed-size chunks, with a target that receives start/end/text events and keeps only what
it needs. No element tree is ever built, which is what keeps memory bounded: even
`iterparse` holds each element's whole text in memory until the element ends.
"""

from __future__ import annotations

__all__ = ["MAX_DEPTH", "XmlContentError", "XmlTarget", "stream_xml"]

from pathlib import Path
from typing import Any, Protocol
from xml.etree.ElementTree import ParseError

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from gonogo.errors import GonogoError, HostileInputError, InputFileError

MAX_DEPTH = 256  # no report format nests this deep; deeper is an attack or garbage
_CHUNK = 1 << 20


class XmlContentError(GonogoError):
    """Raised by a target: well-formed XML that is not the expected kind of report."""


class XmlTarget(Protocol):
    """Receives the events of one document; tags come without their namespace."""

    def start(self, tag: str, attrib: dict[str, str]) -> None: ...

    def end(self, tag: str) -> None: ...

    def data(self, text: str) -> None: ...


class _Adapter:
    """Strips namespaces and bounds nesting depth before the real target sees an event."""

    def __init__(self, target: XmlTarget) -> None:
        self._target = target
        self._depth = 0
        self.data = target.data  # bound directly: text is the hottest event

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise HostileInputError(f"elements nested more than {MAX_DEPTH} levels deep")
        self._target.start(tag.rpartition("}")[2], attrib)

    def end(self, tag: str) -> None:
        self._depth -= 1
        self._target.end(tag.rpartition("}")[2])


def stream_xml(path: Path, target: XmlTarget, *, allow_external_doctype: bool = False) -> None:
    """Feed the XML file at `path` to `target`, refusing DTDs, entities and bombs.

    `allow_external_doctype` accepts a bare `<!DOCTYPE x SYSTEM "url">` line (Cobertura
    and gcovr write one); it is never fetched, and an internal subset is still refused.
    Raises HostileInputError or InputFileError naming the file (and line when known).
    """
    name = str(path)
    try:
        handle = path.open("rb")
    except OSError as error:
        raise InputFileError(f"{name}: cannot read: {error.strerror or error}") from error
    with handle:
        first = handle.read(_CHUNK)
        if not first.strip() and len(first) < _CHUNK:
            raise InputFileError(f"{name}: the file is empty; expected an XML report")
        parser: Any = DefusedXMLParser(
            target=_Adapter(target),
            forbid_dtd=not allow_external_doctype,
            forbid_entities=True,
            forbid_external=True,
        )
        expat = parser.parser
        if allow_external_doctype:
            expat.StartDoctypeDeclHandler = _refuse_internal_subset

        def line() -> int:
            return int(expat.CurrentLineNumber)

        chunk = first
        closing = False
        try:
            while chunk:
                parser.feed(chunk)
                chunk = handle.read(_CHUNK)
            closing = True
            parser.close()
        except _InternalSubset as error:
            raise HostileInputError(
                f"{name}:{line()}: refused: the <!DOCTYPE> has an internal subset ([...]), "
                "which is where XML bombs and entity attacks live; reports never need one"
            ) from error
        except DTDForbidden as error:
            raise HostileInputError(
                f"{name}:{line()}: refused: the file declares a DTD (<!DOCTYPE ...>); "
                "reports never need one and it is how XML bombs and entity attacks start"
            ) from error
        except EntitiesForbidden as error:
            raise HostileInputError(
                f"{name}:{line()}: refused: the file declares an entity ({error.name!r}); "
                "entity declarations are how XML bombs and external-entity attacks work"
            ) from error
        except ExternalReferenceForbidden as error:
            raise HostileInputError(
                f"{name}:{line()}: refused: the file references an external entity "
                f"({error.sysid!r}); it is never fetched"
            ) from error
        except HostileInputError as error:
            raise HostileInputError(f"{name}:{line()}: refused: {error}") from error
        except XmlContentError as error:
            raise InputFileError(f"{name}:{line()}: {error}") from error
        except ParseError as error:
            where = f"{name}:{error.position[0]}"
            if closing:
                # Everything fed parsed, yet the document is incomplete: a writer that died.
                raise InputFileError(
                    f"{where}: the XML ends before the document is complete (truncated?): {_reason(error)}"
                ) from error
            raise InputFileError(f"{where}: not well-formed XML ({_reason(error)})") from error


class _InternalSubset(GonogoError):
    pass


def _refuse_internal_subset(
    name: str, sysid: str | None, pubid: str | None, has_internal_subset: int
) -> None:
    if has_internal_subset:
        raise _InternalSubset(name)


def _reason(error: ParseError) -> str:
    # expat's message ends with ": line N, column M", already given as file:line.
    reason = str(error).split(": line ")[0]
    if reason.startswith("not well-formed (") and reason.endswith(")"):
        reason = reason[len("not well-formed (") : -1]
    return reason
