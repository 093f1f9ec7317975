"""Safe XML parsing (defusedxml) that remembers each element's line."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser


class _LineBuilder(ET.TreeBuilder):
    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[int, int] = {}
        self.parser: DefusedXMLParser | None = None

    def start(self, tag, attrs):
        element = super().start(tag.rsplit("}", 1)[-1], attrs)
        self.lines[id(element)] = self.parser.parser.CurrentLineNumber
        return element


class XmlDocument:
    """A parsed document with namespaces removed from the tag names."""

    def __init__(self, root: ET.Element, lines: dict[int, int]):
        self.root = root
        self._lines = lines

    def line(self, element: ET.Element | None) -> int | None:
        """Return the line where `element` starts, counted from 1."""
        return None if element is None else self._lines.get(id(element))


class XmlError(ValueError):
    """XML that is not well formed, or that uses forbidden constructs."""

    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


def parse_xml(data: bytes) -> XmlDocument:
    """Parse XML bytes; DTDs, entities and external references are refused."""
    builder = _LineBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=False)
    builder.parser = parser
    try:
        parser.feed(data)
        root = parser.close()
    except ET.ParseError as exc:
        raise XmlError(f"the XML is not well formed: {exc}", exc.position[0]) from exc
    except LookupError as exc:
        raise XmlError(f"the XML declares an unknown encoding: {exc}", 1) from exc
    except DefusedXmlException as exc:
        raise XmlError(f"the XML uses a forbidden construct: {exc}", None) from exc
    return XmlDocument(root, builder.lines)


def text(element: ET.Element | None, path: str = "") -> str:
    """Return the stripped text at `path` under `element`, or ""."""
    if element is None:
        return ""
    found = element.find(path) if path else element
    if found is None or found.text is None:
        return ""
    return " ".join(found.text.split())
