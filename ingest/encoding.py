"""Decoding statement bytes into text, with the fallbacks each format needs.

UTF-8 is tried first because it almost never decodes text written in
another encoding. The fallbacks differ by format: Chinese exports are
GB18030 (a superset of GBK and GB2312), SWIFT files from Central Europe are
CP852, OFX 1.x declares its character set in the header.
"""

from __future__ import annotations

import codecs
import logging
from dataclasses import dataclass, field

from charset_normalizer import from_bytes

from models.errors import ImportFormatError

log = logging.getLogger("cashmatch.ingest")

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Legacy names that a superset decodes identically.
_SUPERSETS = {
    "gbk": "gb18030",
    "gb2312": "gb18030",
    "cp936": "gb18030",
    "ascii": "utf-8",
    "us-ascii": "utf-8",
    "usascii": "utf-8",
}


@dataclass
class Decoded:
    """Text decoded from a file, the encoding used, and any fallback notes."""

    text: str
    encoding: str
    notes: list[str] = field(default_factory=list)


def normalise_encoding(name: str) -> str:
    """Return the Python codec name for an encoding label from a file."""
    label = name.strip().lower().replace("_", "-")
    if label in _SUPERSETS:
        return _SUPERSETS[label]
    if label.isdigit():
        return f"cp{label}"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return label


def decode_bytes(
    data: bytes,
    *,
    file_name: str,
    fallbacks: tuple[str, ...] = (),
    declared: str | None = None,
    detect: bool = True,
) -> Decoded:
    """Decode `data`: byte-order mark, UTF-8, the fallbacks, then detection.

    `declared` is the encoding the file itself names. When the bytes do not
    fit it, the text is decoded another way and a note records it. Raises
    ImportFormatError with the encoding tried and the byte offset when no
    encoding fits.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _strict(data, codec, file_name)

    notes: list[str] = []
    order = _candidates(declared, fallbacks)
    first_error: UnicodeDecodeError | None = None
    for codec in order:
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError) as exc:
            if first_error is None and isinstance(exc, UnicodeDecodeError):
                first_error = exc
            continue
        if not data.isascii():
            _note_fallback(notes, declared, codec, file_name)
        return Decoded(text, codec, notes)

    if detect:
        guess = from_bytes(data).best()
        if guess is not None and guess.encoding:
            codec = normalise_encoding(guess.encoding)
            _note_fallback(notes, declared, codec, file_name)
            return Decoded(str(guess), codec, notes)

    raise _decode_error(file_name, order[0] if order else "utf-8", first_error)


def _candidates(declared: str | None, fallbacks: tuple[str, ...]) -> list[str]:
    order = ["utf-8"]
    if declared:
        order.append(normalise_encoding(declared))
    order += [normalise_encoding(name) for name in fallbacks]
    unique: list[str] = []
    for codec in order:
        if codec not in unique:
            unique.append(codec)
    return unique


def _note_fallback(
    notes: list[str], declared: str | None, codec: str, file_name: str
) -> None:
    if not declared or normalise_encoding(declared) == codec:
        return
    note = (
        f"the file declares encoding {declared} but its bytes are {codec}; "
        f"read as {codec}"
    )
    notes.append(note)
    log.warning("%s: %s", file_name, note)


def _strict(data: bytes, codec: str, file_name: str) -> Decoded:
    try:
        return Decoded(data.decode(codec), codec.replace("-sig", ""))
    except UnicodeDecodeError as exc:
        raise _decode_error(file_name, codec, exc) from exc


def _decode_error(
    file_name: str, codec: str, exc: UnicodeDecodeError | None
) -> ImportFormatError:
    offset = exc.start if exc is not None else 0
    value = exc.object[exc.start : exc.start + 8].hex(" ") if exc else None
    return ImportFormatError.at(
        file_name,
        field="encoding",
        value=value,
        reason=(
            f"the bytes at offset {offset} are not valid {codec}, and no other "
            "encoding fits the file; save it as UTF-8, or for a CSV or Excel "
            "export pass the bank profile that names its encoding"
        ),
    )
