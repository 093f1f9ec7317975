"""Word lists the synthetic company generator draws names and memos from.

Two vocabularies exist, so that a second benchmark case has other cities,
brands, industries and memo words than the one the matcher was tuned on.
Some cities of the second vocabulary are missing from the city list that
name normalisation strips, as happens with real customers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Vocabulary:
    """Names, memo words and homophones for one synthetic company."""

    cities: tuple[str, ...]
    # Characters of two-character brands; each has at least one homophone.
    homophones: dict[str, str]
    industries: tuple[str, ...]
    suffixes: tuple[str, ...]
    goods_words: tuple[str, ...]
    advance_words: tuple[str, ...]
    deposit_words: tuple[str, ...]
    instalment_words: tuple[str, ...]
    final_words: tuple[str, ...]
    english_goods: tuple[str, ...]
    banks: tuple[str, ...]
    expense_words: tuple[str, ...]


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN_CHARS = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红文斌辉鹏玲燕飞"

DEFAULT = Vocabulary(
    cities=(
        "苏州",
        "杭州",
        "宁波",
        "温州",
        "无锡",
        "常州",
        "绍兴",
        "嘉兴",
        "义乌",
        "东莞",
        "佛山",
        "深圳",
        "广州",
        "厦门",
        "泉州",
        "上海",
        "南京",
        "台州",
        "金华",
        "中山",
    ),
    homophones={
        "恒": "衡",
        "达": "大",
        "鑫": "新",
        "源": "元",
        "华": "化",
        "瑞": "锐",
        "盛": "胜",
        "泰": "太",
        "宏": "洪",
        "兴": "星",
        "丰": "风",
        "隆": "龙",
        "昌": "长",
        "金": "今",
        "利": "力",
        "永": "勇",
        "德": "得",
        "嘉": "佳",
        "旺": "望",
        "通": "同",
        "宇": "雨",
        "晨": "辰",
        "锦": "进",
        "祥": "翔",
    },
    industries=(
        "机械设备",
        "电子科技",
        "纺织品",
        "五金制品",
        "塑胶制品",
        "包装材料",
        "化工",
        "服饰",
        "家具",
        "建材",
        "电气",
        "汽车配件",
        "食品",
        "印刷",
        "照明电器",
        "不锈钢",
        "精密模具",
        "新材料",
        "贸易",
        "实业",
    ),
    suffixes=(
        "有限公司",
        "有限公司",
        "有限公司",
        "有限公司",
        "有限责任公司",
        "股份有限公司",
        "商行",
        "厂",
    ),
    goods_words=("货款", "付货款", "支付货款", "采购款", "结算款", "合同款"),
    advance_words=("预付款", "预付货款", "预存款"),
    deposit_words=("定金", "订金", "首付款"),
    instalment_words=("分期款", "进度款", "第二期"),
    final_words=("尾款", "余款"),
    english_goods=("PAYMENT", "GOODS PAYMENT", "PAYMENT FOR GOODS", "TT PAYMENT"),
    banks=("中国工商银行", "中国建设银行", "招商银行", "中国银行"),
    expense_words=("付材料款", "工资", "电费", "社保", "房租", "运费"),
)

NORTH = Vocabulary(
    cities=(
        "北京",
        "天津",
        "石家庄",
        "太原",
        "沈阳",
        "大连",
        "长春",
        "哈尔滨",
        "济南",
        "青岛",
        "烟台",
        "郑州",
        "西安",
        "兰州",
        "唐山",
        "保定",
        "洛阳",
        "潍坊",
        "淄博",
        "包头",
    ),
    homophones={
        "凯": "楷",
        "铭": "明",
        "博": "波",
        "远": "元",
        "航": "杭",
        "峰": "丰",
        "川": "穿",
        "瀚": "汉",
        "润": "闰",
        "禾": "和",
        "晟": "盛",
        "康": "抗",
        "捷": "杰",
        "正": "政",
        "腾": "藤",
        "飞": "非",
        "亿": "易",
        "诚": "成",
        "北": "贝",
        "冀": "济",
        "燕": "艳",
        "辰": "晨",
        "坤": "昆",
        "钧": "均",
    },
    industries=(
        "农业机械",
        "钢铁",
        "煤炭",
        "医疗器械",
        "工程机械",
        "物流",
        "环保科技",
        "水泥",
        "玻璃",
        "橡胶",
        "轴承",
        "电缆",
        "仪器仪表",
        "能源",
        "生物科技",
        "油脂",
        "粮油",
        "重工",
        "矿业",
        "光伏",
    ),
    suffixes=(
        "有限公司",
        "有限公司",
        "有限公司",
        "有限责任公司",
        "股份有限公司",
        "集团有限公司",
        "厂",
    ),
    goods_words=("材料款", "设备款", "往来款", "汇款", "转账", "付款"),
    advance_words=("预付", "预交款", "预付款"),
    deposit_words=("订货定金", "首期款", "订金"),
    instalment_words=("分批付款", "部分货款", "阶段款"),
    final_words=("结清尾款", "尾款"),
    english_goods=("REMITTANCE", "PAYMENT", "SETTLEMENT", "TRADE PAYMENT"),
    banks=("中国农业银行", "交通银行", "中信银行", "兴业银行"),
    expense_words=("采购付款", "工资", "水费", "税费", "租金", "运输费"),
)

VOCABULARIES = {"default": DEFAULT, "north": NORTH}
