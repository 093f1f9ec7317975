"""Chinese renderings of the matcher's reasons and codes."""

from __future__ import annotations

import pandas as pd
import pytest

from ingest.records import CHANNELS as CHANNEL_CODES
from matcher.anomaly import ALERT_TEXTS, REASONS
from matcher.candidates import KINDS as CANDIDATE_KINDS
from matcher.decision import AUTO, REVIEW, UNMATCHED
from review_ui import views
from review_ui.reasons import (
    ANOMALIES,
    CHANNELS,
    DECISIONS,
    ENTRY_KINDS,
    KINDS,
    LINE_STATUSES,
    REQUEST_KINDS,
    REQUEST_STATUSES,
    anomalies_text,
    chinese_reason,
    code_text,
    duplicate_state_text,
    localize_decided,
    localize_queue,
    localize_task_view,
    reason_text,
    reasons_text,
    split_reasons,
    status_text,
)
from review_ui.texts import text
from service.controls import REQUEST_KINDS as REQUEST_KIND_CODES
from service.ledger import KINDS as ENTRY_KIND_CODES
from training.case import run_case
from training.synthetic import generate_case

REASON_CASES = [
    ("no match", "无匹配"),
    ("order XS2410-0031 in memo", "备注含订单号 XS2410-0031"),
    ("order XS2407-0002, SO-4101 in memo", "备注含订单号 XS2407-0002, SO-4101"),
    ("to the prepayment balance", "转入预付款余额"),
    ("5,308.01 to the prepayment balance", "5,308.01 转入预付款余额"),
    ("24100003 stays open by 25,100.00", "24100003 仍有 25,100.00 未结"),
    (
        "short by 15.00: bank fee on SO-4167",
        "少付 15.00，记为 SO-4167 的银行手续费",
    ),
    ("amount = open amount of SO-4167", "金额等于 SO-4167 的未结金额"),
    (
        "2 open orders of this amount; the oldest is settled first",
        "有 2 张未结订单金额相同，先核销最早的一张",
    ),
    (
        "amount = open amount of SO-4167 less 12.50 fee",
        "金额等于 SO-4167 的未结金额减去 12.50 手续费",
    ),
    ("amount = deposit of SO-25040", "金额等于 SO-25040 的定金"),
    ("amount = 30 % deposit of XS2410-0031", "金额等于 XS2410-0031 的 30% 定金"),
    (
        "amount = sum of 3 open orders: SO-4157, XS2408-0018, SO-4155",
        "金额等于 3 张未结订单之和：SO-4157, XS2408-0018, SO-4155",
    ),
    ("pays XS2406-0002 in full", "全额支付 XS2406-0002"),
    ("part payment of SO-4108", "SO-4108 的部分付款"),
    (
        "only the amount links this payer to SO-4185",
        "仅凭金额将此付款人关联到 SO-4185",
    ),
    ("payer account seen in 4 earlier payments", "付款账号在此前 4 笔付款中出现"),
    ("payer name exact (100/100)", "付款人名称完全一致（100/100）"),
    ("payer name alias (97/100)", "付款人名称与别名一致（97/100）"),
    ("payer name similar (88/100)", "付款人名称相近（88/100）"),
    ("memo names the customer", "备注含客户名称"),
    ("customer named by the memo's reference", "备注中的参考号指向该客户"),
    (
        "review: looks like a repeat of an earlier payment",
        "需人工审核：疑似重复付款",
    ),
    (
        "review: memo names XS2410-0031, SO-4167, not the choice",
        "需人工审核：备注所列订单 XS2410-0031, SO-4167 与所选不符",
    ),
    (
        "review: memo names an order that is not open",
        "需人工审核：备注所列订单已不是未结订单",
    ),
    (
        "review: memo names 2 orders; short by 1,200.00",
        "需人工审核：备注列出 2 张订单，尚差 1,200.00",
    ),
    (
        "review: only the amount links an unknown payer",
        "需人工审核：付款人未识别，仅凭金额关联",
    ),
    (
        "review: the memo names no order for a part or extra",
        "需人工审核：部分付款或多付，但备注未注明订单",
    ),
    (
        "review: no open order fits and the memo names no prepayment",
        "需人工审核：没有相符的未结订单，备注也未注明预付款",
    ),
    (
        "review: the payer account belongs to another customer",
        "需人工审核：付款账号属于其他客户",
    ),
    (
        "review: another candidate books the money differently",
        "需人工审核：另有候选的分配方式不同",
    ),
    ("review: unknown transaction type", "需人工审核：未知交易类型"),
    (
        "review: line in CNY, order in USD",
        "需人工审核：流水币种 CNY，订单币种 USD",
    ),
    (
        "review: line in USD, not the account's currency",
        "需人工审核：流水币种 USD 与账户币种不符",
    ),
    (
        "review: order SO-4167 has 300.00 open (partly_paid); it cannot take 500.00",
        "需人工审核：订单 SO-4167 未结金额 300.00（部分付款），不能再核销 500.00",
    ),
    (
        "review: line B-7 is already allocated; booking 500.00 more would "
        "over-allocate it by 500.00. Reverse the earlier allocation first",
        "需人工审核：流水 B-7 当前状态为已分配，再分配 500.00 将超额 500.00，"
        "请先冲销之前的分配",
    ),
    (
        "bank reversal of line B-7; its allocations reversed",
        "银行冲正流水 B-7，其分配已冲销",
    ),
    (
        "bank reversal; no earlier credit of this amount is allocated",
        "银行冲正：此前没有已分配的同额入账",
    ),
    (
        "audit: automatic decision sampled for a quality check",
        "抽检：自动判定被抽中做质量检查",
    ),
    (
        "audit: automatic decision wrong: 应为 SO-4168",
        "抽检：自动判定错误：应为 SO-4168",
    ),
]


@pytest.mark.parametrize(("english", "chinese"), REASON_CASES)
def test_reason_in_chinese(english, chinese):
    assert reason_text(english, "zh") == chinese


@pytest.mark.parametrize(("english", "chinese"), REASON_CASES)
def test_reason_in_english_unchanged(english, chinese):
    assert reason_text(english, "en") == english


@pytest.mark.parametrize(
    "reason",
    [
        "a reason the matcher does not write yet",
        "review: a booking error nobody has seen",
        "order <b>SO-1</b> missing",
        "",
    ],
)
def test_unknown_reason_passes_through(reason):
    assert chinese_reason(reason) is None
    assert reason_text(reason, "zh") == reason


def test_joined_reasons_split_known_semicolons():
    joined = (
        "amount = open amount of SO-1; "
        "2 open orders of this amount; the oldest is settled first; "
        "payer name exact (100/100)"
    )

    assert split_reasons(joined) == [
        "amount = open amount of SO-1",
        "2 open orders of this amount; the oldest is settled first",
        "payer name exact (100/100)",
    ]
    assert reasons_text(joined, "zh") == (
        "金额等于 SO-1 的未结金额；有 2 张未结订单金额相同，先核销最早的一张；"
        "付款人名称完全一致（100/100）"
    )
    assert reasons_text(joined, "en") == joined


def test_joined_unknown_reasons_kept_whole():
    joined = "pays SO-1 in full; first new reason; second new reason"

    assert reasons_text(joined, "zh") == (
        "全额支付 SO-1；first new reason; second new reason"
    )


def test_anomaly_codes_in_chinese():
    assert anomalies_text("duplicate|new_account", "zh") == "疑似重复付款、新付款账号"
    assert anomalies_text("duplicate|something_new", "zh") == "疑似重复付款、something_new"
    assert anomalies_text("duplicate|new_account", "en") == "duplicate|new_account"


def test_every_code_has_chinese():
    assert set(REASONS) <= set(ANOMALIES)
    assert set(CANDIDATE_KINDS) == set(KINDS)
    assert {AUTO, REVIEW, UNMATCHED} == set(DECISIONS)
    assert set(CHANNEL_CODES) == set(CHANNELS)
    assert set(ENTRY_KIND_CODES) == set(ENTRY_KINDS)
    assert set(REQUEST_KIND_CODES) == set(REQUEST_KINDS)


@pytest.mark.parametrize(
    ("codes", "code", "language", "shown"),
    [
        pytest.param(REQUEST_STATUSES, "pending", "zh", "待审批", id="zh"),
        pytest.param(REQUEST_STATUSES, "pending", "en", "pending", id="en"),
        pytest.param(REQUEST_STATUSES, "on_hold", "zh", "on_hold", id="unknown"),
        pytest.param(REQUEST_KINDS, "write_off", "zh", "核销", id="request-kind"),
    ],
)
def test_code_text_in_language(codes, code, language, shown):
    assert code_text(codes, code, language) == shown


@pytest.mark.parametrize(
    ("code", "language", "shown"),
    [
        pytest.param("allocated", "zh", "已分配（allocated）", id="zh"),
        pytest.param("allocated", "en", "allocated", id="en"),
        pytest.param("on_hold", "zh", "on_hold", id="unknown"),
    ],
)
def test_status_text_keeps_code(code, language, shown):
    assert status_text(LINE_STATUSES, code, language) == shown


@pytest.mark.parametrize(
    ("state", "language", "shown"),
    [
        pytest.param("on balance", "zh", "在预付款余额中", id="on-balance"),
        pytest.param(
            "marked for refund, request approved",
            "zh",
            "已标记待退款，申请已批准",
            id="with-request",
        ),
        pytest.param(
            "marked for refund, request on_hold",
            "zh",
            "已标记待退款，申请on_hold",
            id="unknown-status",
        ),
        pytest.param("held by the bank", "zh", "held by the bank", id="unknown"),
        pytest.param(
            "marked for refund, request pending",
            "en",
            "marked for refund, request pending",
            id="en",
        ),
    ],
)
def test_duplicate_state_in_language(state, language, shown):
    assert duplicate_state_text(state, language) == shown


@pytest.mark.parametrize("code", sorted(ALERT_TEXTS))
def test_alert_texts_in_chinese(code):
    assert chinese_reason(f"review: {ALERT_TEXTS[code]}") is not None


@pytest.fixture(scope="module")
def matched_case():
    case = generate_case(
        seed=0, customers=30, open_orders=300, lines=300, history_lines=300
    )
    return run_case(case.data)


def test_matcher_reasons_all_translated(matched_case):
    reasons = set()
    for result in matched_case:
        reasons.update(result.reasons)
        for scored in result.ranked:
            reasons.update(scored.candidate.reasons)

    untranslated = sorted(r for r in reasons if chinese_reason(r) is None)
    assert len(reasons) > 100
    assert untranslated == []


def test_matcher_codes_all_translated(matched_case):
    anomalies = {code for result in matched_case for code in result.anomaly_reasons}
    kinds = {
        scored.candidate.kind for result in matched_case for scored in result.ranked
    }
    decisions = {result.decision for result in matched_case}

    assert anomalies <= set(ANOMALIES)
    assert kinds <= set(KINDS)
    assert decisions <= set(DECISIONS)


def _frame(rows, keys, language):
    return pd.DataFrame(rows, columns=[text(key, language) for key in keys])


def _task_view(language):
    line = _frame(
        [
            [text("field_memo", language), "<b>6月货款</b> =cmd|' /C calc'!A0"],
            [text("field_status", language), "review"],
            [text("field_decision", language), "review"],
            [text("field_anomalies", language), "duplicate|unused_balance"],
            [
                text("field_reasons", language),
                "amount = open amount of SO-1; review: looks like a repeat "
                "of an earlier payment",
            ],
        ],
        ("col_field", "col_value"),
        language,
    )
    candidates = _frame(
        [["0", "exact", "C1", "SO-1 300.00", "", "", "0.900", "pays SO-1 in full"]],
        (
            "col_number",
            "col_kind",
            "col_customer",
            "col_orders",
            "col_balance",
            "col_fees",
            "col_score",
            "col_reasons",
        ),
        language,
    )
    orders = _frame(
        [["SO-1", "2025-06-01", "300.00", "300.00", "partly_paid"]],
        ("col_order", "col_order_date", "col_amount", "col_open", "col_status"),
        language,
    )
    earlier = _frame(
        [["B-1", "2025-05-01", "300.00", "<i>memo</i>", "allocated", "C1"]],
        (
            "col_line_ref",
            "col_date",
            "col_amount",
            "col_memo",
            "col_status",
            "col_customer",
        ),
        language,
    )
    return views.TaskView(1, 2, 3, line, candidates, orders, "C1: 0.00", earlier, "C1")


def test_task_view_in_chinese():
    view = localize_task_view(_task_view("zh"), "zh")

    values = dict(zip(view.line.iloc[:, 0], view.line.iloc[:, 1]))
    assert values["附言"] == "<b>6月货款</b> =cmd|' /C calc'!A0"
    assert values["状态"] == "待审核"
    assert values["判定"] == "人工审核"
    assert values["异常"] == "疑似重复付款、余额长期未用"
    assert values["理由"] == "金额等于 SO-1 的未结金额；需人工审核：疑似重复付款"
    assert view.candidates.iloc[0, 1] == "金额一致"
    assert view.candidates.iloc[0, 3] == "SO-1 300.00"
    assert view.candidates.iloc[0, 7] == "全额支付 SO-1"
    assert view.open_orders.iloc[0, 4] == "部分付款"
    assert view.earlier.iloc[0, 3] == "<i>memo</i>"
    assert view.earlier.iloc[0, 4] == "已分配"


def test_task_view_in_english_unchanged():
    original = _task_view("en")

    view = localize_task_view(original, "en")

    assert view.line.equals(original.line)
    assert view.candidates.equals(original.candidates)
    assert view.earlier.equals(original.earlier)


def test_queue_in_chinese():
    keys = ("col_task", "col_memo", "col_decision", "col_anomalies")
    queue = _frame([["1", "=1+1", "unmatched", "unidentified"]], keys, "zh")
    counts = "待审核任务: 3 | 判定: review 2, unmatched 1 | 账户: A1 3 | 有预警: 0"

    queue, counts = localize_queue(queue, counts, "zh")

    assert list(queue.iloc[0]) == ["1", "=1+1", "未匹配", "付款人未识别"]
    assert counts == "待审核任务: 3 | 判定: 人工审核 2, 未匹配 1 | 账户: A1 3 | 有预警: 0"


def test_decided_message_status_in_chinese():
    message = text("decided", "zh", task=5, action="接受建议 (A)", status="allocated")

    assert localize_decided(message, "zh") == (
        "任务 5：接受建议 (A) 已完成，流水状态 已分配（allocated）"
    )
    assert localize_decided("失败：x", "zh") == "失败：x"
