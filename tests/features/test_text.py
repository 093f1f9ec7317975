import pytest

from features.text import core_name, is_person_name, normalize_name, pinyin_key


def test_normalize_name_folds_full_width_brackets():
    assert normalize_name("恒达机械（苏州）有限公司") == normalize_name(
        "恒达机械(苏州)有限公司"
    )


@pytest.mark.parametrize(
    ("name", "core"),
    [
        pytest.param("苏州恒达机械设备有限公司", "恒达机械设备", id="city-and-suffix"),
        pytest.param("恒达机械设备（苏州）有限公司", "恒达机械设备", id="city-in-brackets"),
        pytest.param("上海市浦江贸易股份有限公司", "浦江贸易", id="long-suffix"),
    ],
)
def test_core_name_keeps_distinctive_part(name, core):
    assert core_name(name) == core


def test_pinyin_key_of_company_core():
    assert pinyin_key("杭州恒达机械有限公司") == "HENGDAJIXIE"


def test_person_name_detection():
    assert is_person_name("王小明")
    assert not is_person_name("恒达机械有限公司")
