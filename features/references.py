"""Finding order and invoice numbers in memos, in any common spelling.

Every known number is indexed under several keys: its letters and digits
(XS24100031), its digits alone (24100031, for a dropped prefix), its digit
groups without leading zeros (2410-31) and, for one wrong, missing or extra
character, the digit key with one character deleted. A memo is cut into runs
of letters and digits; up to three neighbouring runs are joined, because
payers put spaces inside numbers, and every join is looked up under the same
keys.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from features.text import fold_width

_RUN = re.compile(r"[A-Z0-9]+")
_MIN_DIGITS = 4

EXACT = 3  # the number as written, letters and digits
LOOSE = 2  # prefix dropped, separators or leading zeros changed
TYPO = 1  # one character wrong, missing or extra


@dataclass(frozen=True)
class ReferenceHit:
    """An order or invoice number found in a memo."""

    target_id: str
    strength: int
    text: str


def _groups(text: str) -> list[str]:
    return re.findall(r"\d+", text)


def _zero_free(groups: list[str]) -> str:
    return "-".join(group.lstrip("0") or "0" for group in groups)


def _deletions(key: str) -> set[str]:
    return {key[:i] + key[i + 1 :] for i in range(len(key))}


def reference_keys(number: str) -> dict[str, int]:
    """Return the index keys of one order or invoice number with strengths."""
    folded = fold_width(number).upper()
    alnum = re.sub(r"[^A-Z0-9]", "", folded)
    digits = re.sub(r"\D", "", folded)
    keys: dict[str, int] = {}
    if len(digits) < _MIN_DIGITS:
        if alnum:
            keys["A:" + alnum] = EXACT
        return keys

    keys["A:" + alnum] = EXACT
    keys["D:" + digits] = LOOSE
    keys["D:" + digits.lstrip("0")] = LOOSE
    keys["Z:" + _zero_free(_groups(folded))] = LOOSE
    for deleted in _deletions(digits):
        keys.setdefault("T:" + deleted, TYPO)
    return keys


class ReferenceIndex:
    """Maps every key of every known number to the ids it stands for."""

    def __init__(self) -> None:
        self._keys: dict[str, dict[str, int]] = defaultdict(dict)

    def add(self, number: str, target_id: str | None = None) -> None:
        """Index a number; `target_id` defaults to the number itself."""
        target = target_id or number
        for key, strength in reference_keys(number).items():
            known = self._keys[key].get(target, 0)
            self._keys[key][target] = max(known, strength)

    def find(self, memo: str) -> list[ReferenceHit]:
        """Return the numbers a memo names, strongest first, one hit each."""
        best: dict[str, ReferenceHit] = {}
        for text in _memo_phrases(memo):
            found = self._lookup(text)
            if not found:
                continue
            # A phrase that spells one number exactly is that number, not a
            # typo of its neighbours (XS2410-0031 is one deletion from -0032).
            top = max(found.values())
            for target, strength in found.items():
                if strength < top:
                    continue
                known = best.get(target)
                if known is None or strength > known.strength:
                    best[target] = ReferenceHit(target, strength, text)
        return sorted(best.values(), key=lambda hit: (-hit.strength, hit.target_id))

    def _lookup(self, text: str) -> dict[str, int]:
        found: dict[str, int] = {}
        alnum = re.sub(r"[^A-Z0-9]", "", text)
        digits = re.sub(r"\D", "", text)
        probes = [("A:" + alnum, EXACT)]
        if len(digits) >= _MIN_DIGITS:
            probes += [
                ("D:" + digits, LOOSE),
                ("D:" + digits.lstrip("0"), LOOSE),
                ("Z:" + _zero_free(_groups(text)), LOOSE),
                ("T:" + digits, TYPO),
            ]
            # One deletion from the memo's digits meets one deletion from the
            # number's (a wrong digit) or the number itself (an extra digit).
            for deleted in _deletions(digits):
                probes += [("T:" + deleted, TYPO), ("D:" + deleted, TYPO)]
        for key, cap in probes:
            for target, strength in self._keys.get(key, {}).items():
                # A typo probe can only prove a typo, whatever the key's rank.
                value = min(strength, cap)
                if value > found.get(target, 0):
                    found[target] = value
        return found


def _memo_phrases(memo: str) -> list[str]:
    """Cut a memo into runs and joins of up to three neighbouring runs."""
    folded = fold_width(memo).upper()
    runs = [(m.start(), m.end(), m.group()) for m in _RUN.finditer(folded)]
    phrases: list[str] = []
    for i in range(len(runs)):
        end = runs[i][1]
        text = runs[i][2]
        phrases.append(text)
        for j in range(i + 1, min(i + 3, len(runs))):
            gap = folded[end : runs[j][0]]
            if len(gap) > 2 or not re.fullmatch(r"[\s\-_/.#:]*", gap):
                break
            text = text + gap + runs[j][2]
            end = runs[j][1]
            phrases.append(text)
    return [phrase for phrase in phrases if any(ch.isdigit() for ch in phrase)]
