"""Normalisation of payer names, accounts and memos."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache

# Longest first, so 股份有限公司 is removed whole before 有限公司 is tried.
COMPANY_SUFFIXES = (
    "股份有限公司",
    "有限责任公司",
    "集团有限公司",
    "有限公司",
    "分公司",
    "集团",
    "公司",
    "商行",
    "厂",
    "CO LTD",
    "CO., LTD.",
    "CO.,LTD.",
    "CO., LTD",
    "CO.,LTD",
    "COMPANY LIMITED",
    "LIMITED",
    "LTD",
    "INC",
    "CORP",
    "GMBH",
    "B.V.",
    "BV",
)

# Prefecture-level cities and provinces that often lead a company name.
CITY_NAMES = (
    "北京", "上海", "天津", "重庆", "广州", "深圳", "杭州", "苏州", "南京",
    "宁波", "无锡", "常州", "温州", "嘉兴", "绍兴", "金华", "台州", "合肥",
    "厦门", "福州", "泉州", "青岛", "济南", "烟台", "郑州", "武汉", "长沙",
    "成都", "西安", "昆明", "南昌", "东莞", "佛山", "中山", "珠海", "惠州",
    "沈阳", "大连", "长春", "哈尔滨", "石家庄", "太原", "南宁", "贵阳", "兰州",
    "海口", "义乌", "昆山", "江阴", "张家港", "慈溪", "余姚", "常熟", "扬州",
    "南通", "徐州", "镇江", "泰州", "盐城", "湖州", "舟山", "丽水", "衢州",
    "广东", "浙江", "江苏", "山东", "福建", "河北", "河南", "湖北", "湖南",
    "四川", "安徽", "江西", "辽宁", "陕西", "云南", "广西",
)

_BRACKETS = re.compile(r"[(\[（【][^)\]）】]*[)\]）】]")
_NON_WORD = re.compile(r"[^0-9A-Z\u4e00-\u9fff]+")
_CITY_PREFIX = re.compile(
    "^(" + "|".join(sorted(CITY_NAMES, key=len, reverse=True)) + ")(市|省)?"
)
_DIGITS = re.compile(r"\D+")
_HAN_RUN = re.compile(r"[\u4e00-\u9fff]+")


def fold_width(text: str) -> str:
    """Fold full-width letters, digits and brackets to their ASCII forms."""
    return unicodedata.normalize("NFKC", text or "")


@lru_cache(maxsize=200_000)
def normalize_name(name: str) -> str:
    """Return a payer or customer name folded for exact comparison.

    Width is folded, letters are upper-cased and punctuation and spaces are
    removed, so 恒达机械（苏州）有限公司 and 恒达机械(苏州)有限公司 are equal.
    """
    folded = fold_width(name).upper()
    return _NON_WORD.sub("", folded)


@lru_cache(maxsize=200_000)
def core_name(name: str) -> str:
    """Return the distinctive part of a company name.

    Drops bracketed text (usually a city), a leading city or province and the
    legal-form suffix: 苏州恒达机械设备有限公司 becomes 恒达机械设备.
    """
    folded = fold_width(name).upper().strip()
    folded = _BRACKETS.sub("", folded)
    for suffix in COMPANY_SUFFIXES:
        if folded.endswith(suffix) and len(folded) > len(suffix) + 1:
            folded = folded[: -len(suffix)].rstrip(" ,.")
            break
    squeezed = _NON_WORD.sub("", folded)
    without_city = _CITY_PREFIX.sub("", squeezed)
    return without_city if len(without_city) >= 2 else squeezed


@lru_cache(maxsize=200_000)
def normalize_account(account: str) -> str:
    """Return an account number reduced to its digits and letters."""
    folded = fold_width(account).upper()
    return _NON_WORD.sub("", folded)


def is_person_name(name: str) -> bool:
    """Tell whether a payer name looks like a Chinese person's name."""
    squeezed = normalize_name(name)
    has_han = all("\u4e00" <= ch <= "\u9fff" for ch in squeezed)
    return has_han and 2 <= len(squeezed) <= 4


@lru_cache(maxsize=200_000)
def pinyin_key(name: str) -> str:
    """Return the toneless pinyin of a name's core, in upper case.

    Romanised payer names of cross-border transfers compare against this.
    """
    from pypinyin import lazy_pinyin

    core = core_name(name)
    syllables = lazy_pinyin(core, errors="default")
    return _NON_WORD.sub("", "".join(syllables).upper())


def latin_key(name: str) -> str:
    """Return the letters of a romanised name without legal-form words."""
    folded = fold_width(name).upper()
    folded = _BRACKETS.sub(" ", folded)
    for word in ("CO", "LTD", "LIMITED", "COMPANY", "CORP", "INC", "GROUP"):
        folded = re.sub(rf"\b{word}\b\.?", " ", folded)
    return re.sub(r"[^A-Z]", "", folded)


def has_latin(name: str) -> bool:
    """Tell whether a name is written in Latin letters."""
    letters = [ch for ch in fold_width(name) if ch.isalpha()]
    return bool(letters) and all(ch.isascii() for ch in letters)


Tokenizer = Callable[[str], Iterable[str]]


@lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def jieba_tokens(text: str) -> list[str]:
    """Split a memo into words with jieba."""
    return [tok for tok in _jieba().lcut(text) if tok.strip()]


def digits_only(text: str) -> str:
    """Return only the digits of a text."""
    return _DIGITS.sub("", text or "")


@lru_cache(maxsize=100_000)
def han_text(text: str) -> str:
    """Return the Chinese characters of a text, in order, without the rest.

    Order numbers, spaces and punctuation drop out, so 付XS2410-0031货款 and
    付 2410 0031 货款 both become 付货款.
    """
    return "".join(_HAN_RUN.findall(fold_width(text)))


@lru_cache(maxsize=100_000)
def memo_tokens(text: str, tokenizer: Tokenizer = jieba_tokens) -> tuple[str, ...]:
    """Return the words of a memo's Chinese text, and that text itself.

    The whole text counts as one more token, because payers reuse whole
    phrases (预付货款, 结清尾款) whose meaning is more than their words.
    """
    han = han_text(text)
    if not han:
        return ()
    words = {word for word in tokenizer(han) if word.strip()}
    words.add(han)
    return tuple(sorted(words))
