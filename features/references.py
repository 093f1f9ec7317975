"""Finding order and invoice numbers in memos, in any common spelling.

Every known number is indexed under a few keys: its letters and digits
(XS24100031), its digits alone (24100031, for a dropped prefix) and its digit
groups without leading zeros (2410-31). A memo is cut into runs of letters
and digits. Up to three neighbouring runs are joined, because payers put
spaces inside numbers, and every join is looked up under the same keys. One
wrong, missing, extra or swapped digit in a number of six digits or more is
found by probing the digit key with every such variant of the memo's
digits, so the index itself stays at a few keys per number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from features.text import fold_width

_RUN = re.compile(r"[A-Z0-9]+")
_JOIN_GAP = re.compile(r"[\s\-_/.#:]*")
_MIN_DIGITS = 4
# Shorter numbers are too dense for typo matching: one changed digit of
# SO-4101 is almost always another real order.
_MIN_TYPO_DIGITS = 6
_DIGIT_CHARS = "0123456789"

EXACT = 3  # the number as written, letters and digits
LOOSE = 2  # prefix dropped, separators or leading zeros changed
TYPO = 1  # one digit wrong, missing, extra or swapped


@dataclass(frozen=True)
class ReferenceHit:
    """An order or invoice number found in a memo."""

    target_id: str
    strength: int
    text: str


@dataclass(frozen=True)
class ReferenceScan:
    """What a memo names: the numbers it spells, and every number it touches.

    `hits` follow the rule that a phrase spelling one number exactly names
    that number and not its one-typo neighbours. `support` contains every
    target that any phrase reaches, with its best strength, typos included.
    It shows whether a memo could also be a misspelling of another number.
    """

    hits: list[ReferenceHit]
    support: dict[str, int]
    # Digits of phrases that spell a number exactly. Their one-typo
    # neighbours are not probed, so `one_typo_apart` checks them on demand.
    exact_digits: tuple[str, ...] = ()


def _groups(text: str) -> list[str]:
    return re.findall(r"\d+", text)


def _zero_free(groups: list[str]) -> str:
    return "-".join(group.lstrip("0") or "0" for group in groups)


def reference_keys(number: str) -> dict[str, int]:
    """Return the index keys of one order or invoice number with strengths."""
    folded = fold_width(number).upper()
    alnum = re.sub(r"[^A-Z0-9]", "", folded)
    digits = re.sub(r"\D", "", folded)
    keys: dict[str, int] = {}
    if alnum:
        keys["A:" + alnum] = EXACT
    if len(digits) < _MIN_DIGITS:
        return keys
    keys.setdefault("D:" + digits, LOOSE)
    keys.setdefault("D:" + digits.lstrip("0"), LOOSE)
    keys.setdefault("Z:" + _zero_free(_groups(folded)), LOOSE)
    return keys


def one_typo_apart(first: str, second: str) -> bool:
    """Tell whether two digit strings differ by one deletion, change or swap."""
    if first == second:
        return False
    if len(first) == len(second):
        diffs = [i for i in range(len(first)) if first[i] != second[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and first[diffs[0]] == second[diffs[1]]
            and first[diffs[1]] == second[diffs[0]]
        )
    if abs(len(first) - len(second)) != 1:
        return False
    short, long = (first, second) if len(first) < len(second) else (second, first)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1 :]


def digits_of(number: str) -> str:
    """Return the digits of an order or invoice number, width folded."""
    return re.sub(r"\D", "", fold_width(number))


def typo_variants(digits: str) -> set[str]:
    """Return the digit strings one deletion, insertion, change or swap away."""
    cuts = [(digits[:i], digits[i:]) for i in range(len(digits) + 1)]
    variants = {head + tail[1:] for head, tail in cuts if tail}
    variants.update(
        head + tail[1] + tail[0] + tail[2:] for head, tail in cuts if len(tail) > 1
    )
    variants.update(
        head + digit + tail[1:] for head, tail in cuts if tail for digit in _DIGIT_CHARS
    )
    variants.update(
        head + digit + tail for head, tail in cuts for digit in _DIGIT_CHARS
    )
    variants.discard(digits)
    return variants


class ReferenceIndex:
    """Maps every key of every known number to the ids it is a key of.

    A key usually belongs to one id, stored as a plain string. The few keys
    shared by several numbers map to a tuple of ids.
    """

    def __init__(self) -> None:
        self._keys: dict[str, str | tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, number: str, target_id: str | None = None) -> None:
        """Index a number; `target_id` defaults to the number itself."""
        target = target_id or number
        for key in reference_keys(number):
            known = self._keys.get(key)
            if known is None:
                self._keys[key] = target
            elif isinstance(known, str):
                if known != target:
                    self._keys[key] = (known, target)
            elif target not in known:
                self._keys[key] = known + (target,)

    def find(self, memo: str) -> list[ReferenceHit]:
        """Return the numbers a memo names, strongest first, one hit each."""
        return self.scan(memo).hits

    def scan(self, memo: str) -> ReferenceScan:
        """Return the numbers a memo names and every number it touches."""
        best: dict[str, ReferenceHit] = {}
        support: dict[str, int] = {}
        exact_digits: list[str] = []
        read: list[tuple[int, int]] = []
        # Long phrases first, because a run inside a phrase that already
        # spells a number (07660 in XS2408-07660) is not a number of its own.
        phrases = sorted(_memo_phrases(memo), key=lambda p: (p[0] - p[1], p[0]))
        for start, end, text in phrases:
            if any(start >= low and end <= high for low, high in read):
                continue
            found, skipped = self._lookup(text)
            if skipped:
                exact_digits.append(skipped)
            if not found:
                continue
            read.append((start, end))
            # A phrase that spells one number exactly is that number, not a
            # typo of its neighbours (XS2410-0031 is one change from -0032).
            top = max(found.values())
            for target, strength in found.items():
                if strength > support.get(target, 0):
                    support[target] = strength
                if strength < top:
                    continue
                known = best.get(target)
                if known is None or strength > known.strength:
                    best[target] = ReferenceHit(target, strength, text)
        hits = sorted(best.values(), key=lambda hit: (-hit.strength, hit.target_id))
        return ReferenceScan(hits, support, tuple(exact_digits))

    def _lookup(self, text: str) -> tuple[dict[str, int], str]:
        """Return the targets a phrase reaches, and its digits if typos were skipped."""
        keys = self._keys
        found: dict[str, int] = {}

        def keep(known: str | tuple[str, ...], strength: int) -> None:
            for target in (known,) if isinstance(known, str) else known:
                if strength > found.get(target, 0):
                    found[target] = strength

        alnum = re.sub(r"[^A-Z0-9]", "", text)
        known = keys.get("A:" + alnum)
        if known is not None:
            keep(known, EXACT)
        digits = re.sub(r"\D", "", text)
        if len(digits) < _MIN_DIGITS:
            return found, ""
        for key in (
            "D:" + digits,
            "D:" + digits.lstrip("0"),
            "Z:" + _zero_free(_groups(text)),
        ):
            known = keys.get(key)
            if known is not None:
                keep(known, LOOSE)
        if len(digits) < _MIN_TYPO_DIGITS:
            return found, ""
        # Probing some 200 variants costs more than the rest of the scan, so
        # a number spelt exactly is checked against single orders on demand.
        if EXACT in found.values():
            return found, digits
        for variant in typo_variants(digits):
            known = keys.get("D:" + variant)
            if known is not None:
                keep(known, TYPO)
        return found, ""


def _memo_phrases(memo: str) -> list[tuple[int, int, str]]:
    """Cut a memo into runs and joins of up to three neighbouring runs.

    Returns (start, end, text) of each phrase with a digit, positions in the
    width-folded memo.
    """
    folded = fold_width(memo).upper()
    runs = [(m.start(), m.end(), m.group()) for m in _RUN.finditer(folded)]
    phrases: list[tuple[int, int, str]] = []
    for i in range(len(runs)):
        start, end, text = runs[i]
        if _has_digit(text):
            phrases.append((start, end, text))
        for j in range(i + 1, min(i + 3, len(runs))):
            gap = folded[end : runs[j][0]]
            if len(gap) > 2 or not _JOIN_GAP.fullmatch(gap):
                break
            text = text + gap + runs[j][2]
            end = runs[j][1]
            # A number never ends in a run of letters alone: "SO-7801 SO" is
            # one number and the prefix of the next.
            if _has_digit(runs[j][2]):
                phrases.append((start, end, text))
    return phrases


def _has_digit(text: str) -> bool:
    return any(ch.isdigit() for ch in text)
