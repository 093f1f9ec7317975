"""Chinese renderings of the matcher's reasons and codes for the review page.

The matcher and the booking service write a line's reasons as English text
(matcher/candidates.py, matcher/pipeline.py, matcher/decision.py,
matcher/anomaly.py, service/matching.py, service/auditing.py and the
booking errors that service/matching.py quotes). Each entry of
REASON_PATTERNS restates one of those templates. Its placeholders become
named regular-expression groups, and their values (order ids, customer ids,
amounts, counts, percents, scores) reach the Chinese text unchanged. The
English UI shows every reason as written. The Chinese UI falls back to the
English text for a reason that no pattern matches.

Every function returns plain text, because the page shows reasons, memos
and names in plain-text cells only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import pandas as pd

from review_ui.texts import TEXTS, text

# Separators that review_ui.views puts between the reasons and between the
# anomaly codes of one cell.
REASON_SEPARATOR = "; "
ANOMALY_SEPARATOR = "|"
REVIEW_PREFIX = "review: "

DECISIONS = {"auto": "自动", "review": "人工审核", "unmatched": "未匹配"}

KINDS = {
    "reference": "备注订单号",
    "exact": "金额一致",
    "fee_short": "扣手续费",
    "deposit": "定金",
    "combination": "多单合计",
    "overpay": "多付",
    "partial": "部分付款",
    "balance": "预付款余额",
    "amount_only": "仅金额相符",
    "none": "无匹配",
}

ANOMALIES = {
    "duplicate": "疑似重复付款",
    "reference_conflict": "备注订单冲突",
    "over_advance": "超额付款",
    "unusual_amount": "金额异常偏大",
    "amount_mismatch": "金额不符",
    "unidentified": "付款人未识别",
    "new_account": "新付款账号",
    "unused_balance": "余额长期未用",
    "reversal": "银行冲正",
    "unknown_type": "未知交易类型",
    "foreign_currency": "外币流水",
}

LINE_STATUSES = {
    "new": "新导入",
    "review": "待审核",
    "unmatched": "未匹配",
    "allocated": "已分配",
    "reversal": "银行冲正",
    "reversed": "已冲销",
    "voided": "已作废",
    "dismissed": "已忽略",
    "not_customer": "非客户付款",
    "refund": "待退款",
    "fee": "银行手续费",
}

# The ageing buckets of the balances report.
AGE_BUCKETS = {
    "days_0_30": "0–30 天",
    "days_31_60": "31–60 天",
    "days_61_90": "61–90 天",
    "days_over_90": "90 天以上",
}

ORDER_STATUSES = {
    "open": "未结",
    "partly_paid": "部分付款",
    "paid": "已付清",
    "closed": "已关闭",
    "cancelled": "已取消",
}

# Actions of the audit log that the review page and the booking service
# write. Other actions keep their code.
ACTIONS = {
    "accept": "接受建议",
    "choose": "选择候选",
    "split": "拆分",
    "balance": "计入预付款",
    "not_customer": "非客户付款",
    "refund": "退回付款人",
    "undo": "撤销",
    "claim": "领取任务",
    "release": "释放任务",
    "confirm": "确认分配",
    "reverse": "冲销分配",
    "accept_unbalanced": "接受不平衡分配",
    "void": "作废",
    "audit_right": "抽检：自动判定正确",
    "audit_wrong": "抽检：自动判定错误",
}

# Payment channels of a statement line (ingest.records.CHANNELS).
CHANNELS = {
    "transfer": "银行转账",
    "alipay": "支付宝",
    "wechat": "微信支付",
    "cash": "现金",
}

# Kinds of prepayment ledger entries (service.ledger.KINDS).
ENTRY_KINDS = {
    "receipt": "收款入余额",
    "application": "余额支付",
    "refund": "退款",
    "fee": "银行手续费",
    "write_off": "核销",
    "reversal": "冲销",
}

# Refund, write-off and fee requests (service.controls.REQUEST_KINDS) and
# the statuses that service.controls sets on them.
REQUEST_KINDS = {
    "refund": "退款",
    "write_off": "核销",
    "fee": "银行手续费",
}
REQUEST_STATUSES = {
    "pending": "待审批",
    "approved": "已批准",
    "rejected": "已驳回",
    "cancelled": "已取消",
}

# Customer-level anomalies of service.reports.customer_anomalies. They
# share codes with line anomalies, but a customer's `duplicate` counts the
# repeat payments still awaiting refund.
CUSTOMER_ANOMALIES = {
    "unused_balance": "余额长期未用",
    "duplicate": "重复付款待退款",
    "over_advance": "超额付款转入余额",
}
ANOMALY_LEVELS = {"line": "流水", "customer": "客户"}

# States of a repeat payment awaiting refund, as service.reports writes
# them, optionally followed by ", request <status>".
DUPLICATE_STATES = {
    "marked for refund": "已标记待退款",
    "on balance": "在预付款余额中",
}
DUPLICATE_REQUEST = ", request "

# Group patterns by placeholder name. An order id must be one word, so
# "amount = open amount of {order}" cannot take in the longer
# "... less 12.50 fee" template. A placeholder not named here matches any
# text without a semicolon, because views join reasons with "; ".
_ID = r"[^\s;,]+"
_GROUPS = {
    "order": _ID,
    "orders": rf"{_ID}(?:, {_ID})*",
    "customer": _ID,
    "other_customer": _ID,
    "currency": _ID,
    "order_currency": _ID,
    "amount": r"-?\d[\d,]*(?:\.\d+)?",
    "count": r"\d+",
    "percent": r"\d+(?:\.\d+)?",
    "score": r"\d+",
    "version": r"\d+",
}
_ANY_TEXT = r"[^;]+?"

# Placeholders whose value is a code with a Chinese name of its own.
_CONVERTERS: dict[str, Callable[[str], str]] = {
    "status": lambda code: LINE_STATUSES.get(code, code),
    "order_status": lambda code: ORDER_STATUSES.get(code, code),
}

# (English template as the code writes it, Chinese template). A "{name}"
# placeholder may appear once per English template.
_TEMPLATES = (
    # matcher/candidates.py
    ("no match", "无匹配"),
    ("order {orders} in memo", "备注含订单号 {orders}"),
    ("to the prepayment balance", "转入预付款余额"),
    ("{amount} to the prepayment balance", "{amount} 转入预付款余额"),
    ("{order} stays open by {amount}", "{order} 仍有 {amount} 未结"),
    ("short by {amount}: bank fee on {order}", "少付 {amount}，记为 {order} 的银行手续费"),
    ("amount = open amount of {order}", "金额等于 {order} 的未结金额"),
    (
        "{count} open orders of this amount; the oldest is settled first",
        "有 {count} 张未结订单金额相同，先核销最早的一张",
    ),
    (
        "amount = open amount of {order} less {amount} fee",
        "金额等于 {order} 的未结金额减去 {amount} 手续费",
    ),
    ("amount = deposit of {order}", "金额等于 {order} 的定金"),
    ("amount = {percent} % deposit of {order}", "金额等于 {order} 的 {percent}% 定金"),
    (
        "amount = sum of {count} open orders: {orders}",
        "金额等于 {count} 张未结订单之和：{orders}",
    ),
    ("pays {order} in full", "全额支付 {order}"),
    ("part payment of {order}", "{order} 的部分付款"),
    ("only the amount links this payer to {order}", "仅凭金额将此付款人关联到 {order}"),
    # matcher/pipeline.py
    ("payer account in the customer master", "付款账号在客户主数据中"),
    (
        "payer account seen in {count} earlier payment",
        "付款账号在此前 {count} 笔付款中出现",
    ),
    (
        "payer account seen in {count} earlier payments",
        "付款账号在此前 {count} 笔付款中出现",
    ),
    ("payer name exact ({score}/100)", "付款人名称完全一致（{score}/100）"),
    ("payer name alias ({score}/100)", "付款人名称与别名一致（{score}/100）"),
    ("payer name similar ({score}/100)", "付款人名称相近（{score}/100）"),
    ("memo names the customer", "备注含客户名称"),
    ("customer named by the memo's reference", "备注中的参考号指向该客户"),
    ("line in {currency}, order in {order_currency}", "流水币种 {currency}，订单币种 {order_currency}"),
    # matcher/decision.py, the guards behind "review: ..."
    ("memo names {orders}, not the choice", "备注所列订单 {orders} 与所选不符"),
    ("memo names an order that is not open", "备注所列订单已不是未结订单"),
    ("memo names {count} orders; short by {amount}", "备注列出 {count} 张订单，尚差 {amount}"),
    ("only the amount links an unknown payer", "付款人未识别，仅凭金额关联"),
    ("the memo names no order for a part or extra", "部分付款或多付，但备注未注明订单"),
    (
        "no open order fits and the memo names no prepayment",
        "没有相符的未结订单，备注也未注明预付款",
    ),
    ("the payer account belongs to another customer", "付款账号属于其他客户"),
    ("another candidate books the money differently", "另有候选的分配方式不同"),
    ("unknown transaction type", "未知交易类型"),
    # matcher/anomaly.py, ALERT_TEXTS
    ("looks like a repeat of an earlier payment", "疑似重复付款"),
    ("the memo names another order", "备注所列为其他订单"),
    ("paid beyond the total of the orders it settles", "付款超过所核销订单的合计金额"),
    ("amount far above this customer's usual payments", "金额远高于该客户的常规付款"),
    # service/matching.py
    ("line in {currency}, not the account's currency", "流水币种 {currency} 与账户币种不符"),
    (
        "bank reversal; no earlier credit of this amount found",
        "银行冲正：未找到此前的同额入账",
    ),
    # Earlier wording, kept for the reasons of lines matched before.
    (
        "bank reversal; no earlier credit of this amount is allocated",
        "银行冲正：此前没有已分配的同额入账",
    ),
    (
        "bank reversal of line {line_ref}; its allocations reversed",
        "银行冲正流水 {line_ref}，其分配已冲销",
    ),
    (
        "bank reversal of line {line_ref}; it had no allocations",
        "银行冲正流水 {line_ref}，该流水未曾分配",
    ),
    ("cancelled by a bank reversal", "已被银行冲正撤销"),
    # service/booking.py errors, quoted by service/matching.py as "review: ..."
    ("line {line_ref}: no allocation given", "流水 {line_ref}：未给出分配"),
    (
        "line {line_ref} is money out ({amount}); it cannot pay "
        "an order or a prepayment balance",
        "流水 {line_ref} 为支出（{amount}），不能支付订单或计入预付款余额",
    ),
    (
        "line {line_ref}: allocations name {count} customers ({customers}); "
        "split one line per customer",
        "流水 {line_ref}：分配涉及 {count} 个客户（{customers}），请按客户分别拆分",
    ),
    (
        "line {line_ref}: allocations add up to {amount}, the line is {line_amount}; "
        "book the difference to the prepayment balance",
        "流水 {line_ref}：分配合计 {amount}，流水金额 {line_amount}，差额请计入预付款余额",
    ),
    (
        "line {line_ref}: allocation amount {amount} must be positive",
        "流水 {line_ref}：分配金额 {amount} 必须为正数",
    ),
    ("line {line_ref}: allocation without customer", "流水 {line_ref}：分配缺少客户"),
    (
        "line {line_ref}: a {target} allocation needs an order_id",
        "流水 {line_ref}：{target} 分配需要订单号",
    ),
    (
        "line {line_ref} is already {status}; booking {amount} more would "
        "over-allocate it by {over}. Reverse the earlier allocation first",
        "流水 {line_ref} 当前状态为{status}，再分配 {amount} 将超额 {over}，请先冲销之前的分配",
    ),
    (
        "line {line_ref} changed (version {version}, you saw {seen}); "
        "reload it and decide again",
        "流水 {line_ref} 已变更（版本 {version}，您看到的是 {seen}），请重新加载后再处理",
    ),
    ("order {order} does not exist", "订单 {order} 不存在"),
    (
        "order {order} belongs to customer {customer}, not {other_customer}",
        "订单 {order} 属于客户 {customer}，而非 {other_customer}",
    ),
    (
        "order {order} is in {order_currency} and line {line_ref} in {currency}; "
        "book it to the balance instead",
        "订单 {order} 币种为 {order_currency}，流水 {line_ref} 币种为 {currency}，请改为计入预付款余额",
    ),
    (
        "order {order} has {amount} open ({order_status}); it cannot take {taken}",
        "订单 {order} 未结金额 {amount}（{order_status}），不能再核销 {taken}",
    ),
    # service/auditing.py
    (
        "audit: automatic decision sampled for a quality check",
        "抽检：自动判定被抽中做质量检查",
    ),
    ("audit: automatic decision wrong", "抽检：自动判定错误"),
    ("audit: automatic decision wrong: {note}", "抽检：自动判定错误：{note}"),
)


def template_pattern(template: str, default: str = _ANY_TEXT) -> re.Pattern:
    """Compile a "{name}" template into a regular expression with named groups."""
    pieces = re.split(r"\{(\w+)\}", template)
    parts = []
    for position, piece in enumerate(pieces):
        if position % 2 == 0:
            parts.append(re.escape(piece))
        else:
            parts.append(f"(?P<{piece}>{_GROUPS.get(piece, default)})")
    return re.compile("".join(parts))


REASON_PATTERNS: tuple[tuple[re.Pattern, str], ...] = tuple(
    (template_pattern(english), chinese) for english, chinese in _TEMPLATES
)


def chinese_reason(reason: str) -> str | None:
    """Return the Chinese text of one reason, or None if no pattern matches it."""
    for pattern, chinese in REASON_PATTERNS:
        found = pattern.fullmatch(reason)
        if found:
            return chinese.format(**_converted(found.groupdict()))
    if reason.startswith(REVIEW_PREFIX):
        inner = chinese_reason(reason[len(REVIEW_PREFIX) :])
        if inner is not None:
            return f"需人工审核：{inner}"
    return None


def _converted(values: dict[str, str]) -> dict[str, str]:
    return {
        name: _CONVERTERS[name](value) if name in _CONVERTERS else value
        for name, value in values.items()
    }


def reason_text(reason: str, language: str) -> str:
    """Return one reason in `language`, or as stored if no pattern matches it."""
    if language != "zh":
        return reason
    translated = chinese_reason(reason)
    return reason if translated is None else translated


def split_reasons(joined: str) -> list[str]:
    """Split a "; "-joined cell into reasons.

    Some reasons contain "; " themselves, so each reason is the longest run
    of pieces that a pattern matches, else a single piece.
    """
    pieces = joined.split(REASON_SEPARATOR)
    reasons = []
    start = 0
    while start < len(pieces):
        end = len(pieces)
        while end > start + 1:
            if chinese_reason(REASON_SEPARATOR.join(pieces[start:end])) is not None:
                break
            end -= 1
        reasons.append(REASON_SEPARATOR.join(pieces[start:end]))
        start = end
    return reasons


def reasons_text(joined: str, language: str) -> str:
    """Return a "; "-joined cell of reasons in `language`.

    Adjacent unknown pieces stay joined as they came, so an unknown reason
    that contains "; " reads exactly as stored.
    """
    if language != "zh" or not joined:
        return joined
    rendered: list[str] = []
    previous_unknown = False
    for reason in split_reasons(joined):
        translated = chinese_reason(reason)
        if translated is None and previous_unknown:
            rendered[-1] += REASON_SEPARATOR + reason
        else:
            rendered.append(reason if translated is None else translated)
        previous_unknown = translated is None
    return "；".join(rendered)


def code_text(codes: dict[str, str], code: str, language: str) -> str:
    """Return the Chinese name of a code from `codes`, else the code itself."""
    if language != "zh":
        return code
    return codes.get(code, code)


def status_text(codes: dict[str, str], code: str, language: str) -> str:
    """Return a status code for a message, after its Chinese name in zh.

    The code stays in brackets, so a clerk can match the message to the
    status that exports and the API report. An unknown code shows alone.
    """
    if language != "zh" or code not in codes:
        return code
    return f"{codes[code]}（{code}）"


def duplicate_state_text(state: str, language: str) -> str:
    """Return the state of a repeat payment awaiting refund in `language`.

    An unknown state, or an unknown request status after it, keeps its
    English text.
    """
    if language != "zh":
        return state
    state, found, status = state.partition(DUPLICATE_REQUEST)
    named = code_text(DUPLICATE_STATES, state, language)
    if not found:
        return named
    return f"{named}，申请{code_text(REQUEST_STATUSES, status, language)}"


def anomalies_text(joined: str, language: str) -> str:
    """Return a "|"-joined cell of anomaly codes in `language`."""
    if language != "zh" or not joined:
        return joined
    codes = joined.split(ANOMALY_SEPARATOR)
    return "、".join(code_text(ANOMALIES, code, language) for code in codes)


# Tables of the review page ---------------------------------------------------
# review_ui.views builds the tables with the codes and English reasons as
# stored. These functions rename those cells by column header, so the
# English page keeps the stored text.


def localize_task_view(view, language: str):
    """Return a views.TaskView with its codes and reasons in `language`."""
    if language != "zh":
        return view
    return replace(
        view,
        line=_localize_fields(view.line, language),
        candidates=_localize_columns(
            view.candidates,
            language,
            col_kind=lambda code: code_text(KINDS, code, language),
            col_reasons=lambda joined: reasons_text(joined, language),
        ),
        open_orders=_localize_columns(
            view.open_orders,
            language,
            col_status=lambda code: code_text(ORDER_STATUSES, code, language),
        ),
        earlier=_localize_columns(
            view.earlier,
            language,
            col_status=lambda code: code_text(LINE_STATUSES, code, language),
        ),
    )


def localize_queue(
    queue: pd.DataFrame, counts: str, language: str
) -> tuple[pd.DataFrame, str]:
    """Return the queue table and its counts line in `language`."""
    if language != "zh":
        return queue, counts
    queue = _localize_columns(
        queue,
        language,
        col_decision=lambda code: code_text(DECISIONS, code, language),
        col_anomalies=lambda joined: anomalies_text(joined, language),
    )
    return queue, _localize_counts(counts, language)


def localize_audit(frame: pd.DataFrame, language: str) -> pd.DataFrame:
    """Return the audit log table with its actions in `language`."""
    if language != "zh":
        return frame
    return _localize_columns(
        frame, language, col_action=lambda code: code_text(ACTIONS, code, language)
    )


def localize_decided(message: str, language: str) -> str:
    """Return a "decided" message with the line status named in `language`.

    The stored status code stays in brackets (see `status_text`).
    """
    if language != "zh":
        return message
    found = template_pattern(TEXTS["decided"][language], ".+?").fullmatch(message)
    if found is None:
        return message
    values = found.groupdict()
    values["status"] = status_text(LINE_STATUSES, values["status"], language)
    return text("decided", language, **values)


def _localize_columns(frame: pd.DataFrame, language: str, **converters) -> pd.DataFrame:
    frame = frame.copy()
    for key, convert in converters.items():
        column = text(key, language)
        if column in frame.columns:
            frame[column] = frame[column].map(convert)
    return frame


def _localize_fields(frame: pd.DataFrame, language: str) -> pd.DataFrame:
    """Rename the values of a field/value table row by row."""
    converters = {
        text("field_status", language): lambda v: code_text(LINE_STATUSES, v, language),
        text("field_decision", language): lambda v: code_text(DECISIONS, v, language),
        text("field_anomalies", language): lambda v: anomalies_text(v, language),
        text("field_reasons", language): lambda v: reasons_text(v, language),
    }
    frame = frame.copy()
    for row in range(len(frame)):
        convert = converters.get(frame.iat[row, 0])
        if convert is not None:
            frame.iat[row, 1] = convert(frame.iat[row, 1])
    return frame


def _localize_counts(counts: str, language: str) -> str:
    """Rename the decision codes in the "判定: review 3, unmatched 1" part."""
    prefix = f"{text('col_decision', language)}: "
    parts = counts.split(" | ")
    for position, part in enumerate(parts):
        if part.startswith(prefix) and part != f"{prefix}-":
            items = part[len(prefix) :].split(", ")
            renamed = [_localize_count_item(item, language) for item in items]
            parts[position] = prefix + ", ".join(renamed)
    return " | ".join(parts)


def _localize_count_item(item: str, language: str) -> str:
    code, _, count = item.rpartition(" ")
    return f"{code_text(DECISIONS, code, language)} {count}" if code else item
