import pytest

from features.references import (
    EXACT,
    LOOSE,
    TYPO,
    ReferenceIndex,
    one_typo_apart,
    typo_variants,
)


@pytest.fixture
def index():
    index = ReferenceIndex()
    for number in ("XS2410-0031", "SO-4101", "SO-4102", "INV-88017"):
        index.add(number)
    return index


@pytest.mark.parametrize(
    ("memo", "target", "strength"),
    [
        pytest.param("货款 XS2410-0031", "XS2410-0031", EXACT, id="as-written"),
        pytest.param("xs2410-0031", "XS2410-0031", EXACT, id="lower-case"),
        pytest.param("XS 2410 0031", "XS2410-0031", EXACT, id="spaces-inside"),
        pytest.param("付24100031", "XS2410-0031", LOOSE, id="prefix-dropped"),
        pytest.param("XS2410-31", "XS2410-0031", LOOSE, id="zeros-lost"),
        pytest.param("ＸＳ２４１０－００３１", "XS2410-0031", EXACT, id="full-width"),
        pytest.param("XS2410-0081", "XS2410-0031", TYPO, id="one-wrong"),
        pytest.param("XS2410-00311", "XS2410-0031", TYPO, id="one-extra"),
        pytest.param("XS241-0031", "XS2410-0031", TYPO, id="one-missing"),
    ],
)
def test_find_reference_spellings(index, memo, target, strength):
    hits = {hit.target_id: hit.strength for hit in index.find(memo)}

    assert hits.get(target) == strength


def test_find_several_orders_in_one_memo(index):
    hits = index.find("SO-4101 SO-4102 货款")

    assert {hit.target_id for hit in hits} >= {"SO-4101", "SO-4102"}


def test_find_nothing_in_plain_memo(index):
    assert index.find("货款") == []


def test_find_exact_number_not_its_neighbours():
    index = ReferenceIndex()
    for number in ("XS2410-0031", "XS2410-0032", "XS2410-0033"):
        index.add(number)

    hits = index.find("付XS2410-0032货款")

    assert [(hit.target_id, hit.strength) for hit in hits] == [("XS2410-0032", EXACT)]


def test_find_typo_without_exact_number():
    index = ReferenceIndex()
    for number in ("XS2410-0031", "XS2410-0052"):
        index.add(number)

    hits = index.find("XS2410-0081")

    assert [(hit.target_id, hit.strength) for hit in hits] == [("XS2410-0031", TYPO)]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        pytest.param("24100031", "24100081", True, id="changed"),
        pytest.param("24100031", "2410031", True, id="missing"),
        pytest.param("24100031", "241000311", True, id="extra"),
        pytest.param("24100031", "24100013", True, id="swapped"),
        pytest.param("24100031", "24100031", False, id="same"),
        pytest.param("24100031", "24100099", False, id="two-changes"),
        pytest.param("24100031", "241000", False, id="two-missing"),
    ],
)
def test_one_typo_apart(first, second, expected):
    assert one_typo_apart(first, second) is expected
    assert one_typo_apart(second, first) is expected


def test_typo_variants_are_one_typo_apart():
    variants = typo_variants("240901")

    assert "240901" not in variants
    assert all(one_typo_apart("240901", variant) for variant in variants)
    assert {"24091", "2409011", "240911", "249001"} <= variants


def test_scan_keeps_exact_digits_for_later_checks(index):
    scan = index.scan("付XS2410-0031货款")

    assert [hit.target_id for hit in scan.hits] == ["XS2410-0031"]
    assert scan.exact_digits == ("24100031",)


def test_scan_support_holds_typo_neighbours():
    index = ReferenceIndex()
    for number in ("XS2406-0039", "XS2406-0393"):
        index.add(number)

    scan = index.scan("结算款XS2406-039")

    assert [hit.target_id for hit in scan.hits] == ["XS2406-0039"]
    assert scan.support == {"XS2406-0039": LOOSE, "XS2406-0393": TYPO}


def test_index_stores_few_keys_per_number():
    index = ReferenceIndex()
    for n in range(1000):
        index.add(f"XS2410-{n:04d}")

    assert len(index) <= 4 * 1000
