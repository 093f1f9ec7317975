"""Memos and names as payers write them: references in many spellings."""

from __future__ import annotations

import random
import re

from training.vocabulary import GIVEN_CHARS, SURNAMES, Vocabulary

_PARTS = re.compile(r"^([A-Z]*)[-_ ]?(.*)$")


def full_width(text: str) -> str:
    """Return the text with ASCII letters, digits and signs in full width."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def spell_reference(rng: random.Random, number: str) -> str:
    """Write an order number in one of the spellings payers use.

    The spellings are: as written, lower case, other separators, spaces
    inside, prefix dropped, leading zeros dropped and full width.
    """
    prefix, rest = _PARTS.match(number).groups()
    groups = re.findall(r"\d+", rest)
    choices = ["as_written", "as_written", "separator", "spaces", "full_width"]
    if prefix:
        choices += ["lower", "no_prefix", "no_prefix"]
    if len(groups) >= 2 and any(g.startswith("0") for g in groups[1:]):
        choices.append("no_zeros")
    style = rng.choice(choices)

    if style == "lower":
        return number.lower()
    if style == "separator":
        joint = rng.choice(("", " ", "_", "/", "-"))
        # A number without prefix gets no separator before its digits.
        after_prefix = rng.choice(("", " ", "-")) if prefix else ""
        return prefix + after_prefix + joint.join(groups)
    if style == "spaces":
        head = f"{prefix} " if prefix else ""
        digits = "".join(groups)
        cut = rng.randint(2, len(digits) - 2) if len(digits) >= 4 else len(digits)
        return f"{head}{digits[:cut]} {digits[cut:]}".strip()
    if style == "no_prefix":
        return rng.choice(("", "-")).join(groups)
    if style == "no_zeros":
        return prefix + groups[0] + "-" + "-".join(g.lstrip("0") for g in groups[1:])
    if style == "full_width":
        return full_width(number)
    return number


def typo_reference(rng: random.Random, number: str) -> str:
    """Write an order number with one digit wrong, missing or doubled."""
    positions = [i for i, ch in enumerate(number) if ch.isdigit()]
    i = rng.choice(positions)
    roll = rng.random()
    if roll < 0.6:
        wrong = rng.choice([d for d in "0123456789" if d != number[i]])
        return number[:i] + wrong + number[i + 1 :]
    if roll < 0.8 and len(positions) > 4:
        return number[:i] + number[i + 1 :]
    return number[:i] + number[i] + number[i:]


def reference_memo(rng: random.Random, spelled: str, words: Vocabulary) -> str:
    """Put a spelled reference into a memo with a payment word around it."""
    word = rng.choice(words.goods_words)
    templates = (
        "{ref}",
        "{ref}",
        "{word}{ref}",
        "{word} {ref}",
        "付{ref}{word}",
        "{ref} {word}",
        "订单{ref}",
        "合同号{ref}",
    )
    return rng.choice(templates).format(ref=spelled, word=word)


def invoice_memo(rng: random.Random, invoice_id: str) -> str:
    """Write a memo that names an invoice."""
    template = rng.choice(("发票号{inv}", "{inv}", "付发票{inv}款", "票号 {inv}"))
    return template.format(inv=invoice_id)


def person_name(rng: random.Random) -> str:
    """Draw a Chinese person's name of two or three characters."""
    given = "".join(rng.choice(GIVEN_CHARS) for _ in range(rng.choice((1, 2, 2))))
    return rng.choice(SURNAMES) + given
