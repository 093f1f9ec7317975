import pytest

from features.references import EXACT, LOOSE, TYPO, ReferenceIndex


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
