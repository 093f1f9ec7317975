"""The Gradio review page mounted at /review.

Anyone can open the page, but every event that shows the queue, a task, a
report, the dashboard or a customer, and every action, needs a signed-in
user (see `views.requires_sign_in`). Gradio keeps the signed-in user, the
language and the open task per browser session in the worker's memory. With several workers, a clerk's session must therefore
stay on one worker. Claims and decisions live in the database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import gradio as gr
import pandas as pd
from sqlalchemy.engine import Engine

from models.errors import CashmatchError
from review_ui import views
from review_ui.dashboard import DashboardTab
from review_ui.reasons import (
    ANOMALIES,
    code_text,
    localize_audit,
    localize_decided,
    localize_queue,
    localize_task_view,
)
from review_ui.reports import ReportsTab
from review_ui.texts import DEFAULT_LANGUAGE, text
from service.masking import needs_masking
from service.review import ReviewDecision
from service.settings import Settings

log = logging.getLogger("cashmatch.review_ui")

ANOMALY_CHOICES = (
    "all",
    "flagged",
    "none",
    "duplicate",
    "reference_conflict",
    "over_advance",
    "unusual_amount",
    "amount_mismatch",
    "unidentified",
    "new_account",
    "unknown_type",
    "foreign_currency",
)
SORT_KEYS = ("priority", "amount", "age", "uncertainty")
# Anomaly filter values named in review_ui.texts; the rest are anomaly codes.
FILTER_TEXT_KEYS = ("all", "flagged", "none")
SHORTCUTS = {
    "a": "accept-btn",
    "c": "choose-btn",
    "s": "split-btn",
    "b": "balance-btn",
    "n": "not-customer-btn",
    "r": "refund-btn",
    "u": "undo-btn",
    "j": "next-btn",
    "q": "refresh-btn",
}


def page_head() -> str:
    """Return the script that maps single keys to the page's buttons.

    Keys typed into a text field are left alone, so clerks can still type
    order numbers and notes.
    """
    mapping = ",".join(f'"{key}":"{element}"' for key, element in SHORTCUTS.items())
    return (
        "<script>\n"
        f"const cashmatchKeys = {{{mapping}}};\n"
        "document.addEventListener('keydown', (event) => {\n"
        "  const target = event.target;\n"
        "  const tag = target && target.tagName ? target.tagName.toLowerCase() : '';\n"
        "  if (tag === 'input' || tag === 'textarea' || tag === 'select' ||\n"
        "      (target && target.isContentEditable)) { return; }\n"
        "  if (event.ctrlKey || event.metaKey || event.altKey) { return; }\n"
        "  const element = cashmatchKeys[event.key.toLowerCase()];\n"
        "  if (!element) { return; }\n"
        "  const button = document.getElementById(element);\n"
        "  if (button) { event.preventDefault(); button.click(); }\n"
        "});\n"
        "</script>"
    )


def anomaly_choices(language: str) -> list[tuple[str, str]]:
    """Return the anomaly filter's (label, value) pairs in `language`."""
    return [
        (
            text(value, language)
            if value in FILTER_TEXT_KEYS
            else code_text(ANOMALIES, value, language),
            value,
        )
        for value in ANOMALY_CHOICES
    ]


def sort_choices(language: str) -> list[tuple[str, str]]:
    """Return the sort dropdown's (label, value) pairs in `language`."""
    return [(text(f"sort_{key}", language), key) for key in SORT_KEYS]


@dataclass
class Labels:
    """Components whose label or value changes with the language."""

    entries: list[tuple[gr.components.Component, str, str, object]] = field(
        default_factory=list
    )

    def add(self, component, key: str, attribute: str = "label", choices=None):
        """Register a component and return it.

        `choices`, if given, maps a language to a dropdown's (label, value)
        pairs.
        """
        self.entries.append((component, key, attribute, choices))
        return component

    def updates(self, language: str) -> list:
        """Return one update per component, in registration order."""
        updates = []
        for _, key, attribute, choices in self.entries:
            values = {attribute: text(key, language)}
            if choices is not None:
                values["choices"] = choices(language)
            updates.append(gr.update(**values))
        return updates

    @property
    def components(self) -> list:
        """The registered components, in registration order."""
        return [component for component, _, _, _ in self.entries]


def build_review_page(settings: Settings, engine: Engine) -> gr.Blocks:
    """Build the review page on the given database."""
    page = _Page(settings, engine)
    with gr.Blocks(
        title=text("title", DEFAULT_LANGUAGE), analytics_enabled=False
    ) as blocks:
        page.build()
        blocks.load(page.refresh, page._queue_inputs(), page._queue_outputs())
    return blocks


class _Page:
    """The components of the review page and their event handlers."""

    def __init__(self, settings: Settings, engine: Engine):
        self.settings = settings
        self.engine = engine
        self.labels = Labels()

    # Layout ------------------------------------------------------------------

    def build(self) -> None:
        language = DEFAULT_LANGUAGE
        add = self.labels.add
        self.language = gr.State(language)
        self.clerk = gr.State(None)
        self.current = gr.State(None)

        with gr.Row():
            self.heading = add(
                gr.Textbox(
                    value=text("title", language),
                    show_label=False,
                    interactive=False,
                    container=False,
                    scale=3,
                ),
                "title",
                "value",
            )
            self.language_choice = gr.Radio(
                choices=[("中文", "zh"), ("English", "en")],
                value=language,
                show_label=False,
                scale=1,
                elem_id="language",
            )
        self._sign_in_row(language)
        self.message = add(
            gr.Textbox(
                label=text("message", language), interactive=False, elem_id="message"
            ),
            "message",
        )
        with gr.Tabs() as self.tabs:
            with gr.Tab(text("tab_queue", language), id="queue") as queue_tab:
                self._queue_tab(language)
            with gr.Tab(text("tab_task", language), id="task") as task_tab:
                self._task_tab(language)
            with gr.Tab(text("tab_audit", language), id="audit") as audit_tab:
                self._audit_tab(language)
            with gr.Tab(
                text("tab_dashboard", language), id="dashboard"
            ) as self.dashboard_tab:
                self.dashboard = DashboardTab(self.engine, self.labels)
                self.dashboard.build(language)
            with gr.Tab(text("tab_reports", language), id="reports") as reports_tab:
                self.reports = ReportsTab(
                    self.settings, self.engine, self.labels, self.clerk, self.language
                )
                self.reports.build(language, reports_tab)
        add(queue_tab, "tab_queue")
        add(task_tab, "tab_task")
        add(audit_tab, "tab_audit")
        add(self.dashboard_tab, "tab_dashboard")
        add(reports_tab, "tab_reports")
        self.shortcuts = add(
            gr.Textbox(
                value=text("shortcuts", language),
                show_label=False,
                interactive=False,
                container=False,
            ),
            "shortcuts",
            "value",
        )
        self._wire()

    def _sign_in_row(self, language: str) -> None:
        add = self.labels.add
        with gr.Row():
            self.user_name = add(
                gr.Textbox(label=text("user", language), elem_id="user-name"), "user"
            )
            self.password = add(
                gr.Textbox(
                    label=text("password", language),
                    type="password",
                    elem_id="password",
                ),
                "password",
            )
            self.sign_in_button = add(
                gr.Button(text("sign_in", language), elem_id="sign-in-btn"),
                "sign_in",
                "value",
            )
            self.sign_out_button = add(
                gr.Button(text("sign_out", language), elem_id="sign-out-btn"),
                "sign_out",
                "value",
            )
            self.signed_in_text = gr.Textbox(
                value=text("not_signed_in", language),
                show_label=False,
                interactive=False,
                elem_id="who",
            )

    def _queue_tab(self, language: str) -> None:
        add = self.labels.add
        with gr.Row():
            self.f_account = add(gr.Textbox(label=text("account", language)), "account")
            self.f_customer = add(
                gr.Textbox(label=text("customer", language)), "customer"
            )
            self.f_min = add(
                gr.Textbox(label=text("min_amount", language)), "min_amount"
            )
            self.f_max = add(
                gr.Textbox(label=text("max_amount", language)), "max_amount"
            )
        with gr.Row():
            self.f_from = add(
                gr.Textbox(label=text("date_from", language)), "date_from"
            )
            self.f_to = add(gr.Textbox(label=text("date_to", language)), "date_to")
            self.f_anomaly = add(
                gr.Dropdown(
                    choices=anomaly_choices(language),
                    value="all",
                    label=text("anomaly", language),
                ),
                "anomaly",
                choices=anomaly_choices,
            )
            self.f_sort = add(
                gr.Dropdown(
                    choices=sort_choices(language),
                    value="priority",
                    label=text("sort", language),
                ),
                "sort",
                choices=sort_choices,
            )
        with gr.Row():
            self.refresh_button = add(
                gr.Button(text("refresh", language), elem_id="refresh-btn"),
                "refresh",
                "value",
            )
            self.next_button = add(
                gr.Button(
                    text("next_task", language), variant="primary", elem_id="next-btn"
                ),
                "next_task",
                "value",
            )
            self.task_number = add(
                gr.Number(
                    label=text("task_id", language), precision=0, elem_id="task-number"
                ),
                "task_id",
            )
            self.open_button = add(
                gr.Button(text("open_task", language), elem_id="open-btn"),
                "open_task",
                "value",
            )
        self.counts = add(
            gr.Textbox(
                label=text("counts", language), interactive=False, elem_id="counts"
            ),
            "counts",
        )
        self.queue = add(
            gr.Dataframe(
                label=text("queue", language),
                interactive=False,
                datatype="str",
                wrap=True,
                elem_id="queue",
            ),
            "queue",
        )

    def _task_tab(self, language: str) -> None:
        add = self.labels.add
        with gr.Row():
            with gr.Column(scale=2):
                self.line_table = add(
                    gr.Dataframe(
                        label=text("line", language),
                        interactive=False,
                        datatype="str",
                        wrap=True,
                        elem_id="line",
                    ),
                    "line",
                )
            with gr.Column(scale=3):
                self.candidates = add(
                    gr.Dataframe(
                        label=text("candidates", language),
                        interactive=False,
                        datatype="str",
                        wrap=True,
                        elem_id="candidates",
                    ),
                    "candidates",
                )
                self.balance = add(
                    gr.Textbox(
                        label=text("balance", language),
                        interactive=False,
                        elem_id="balance",
                    ),
                    "balance",
                )
                self.orders = add(
                    gr.Dataframe(
                        label=text("open_orders", language),
                        interactive=False,
                        datatype="str",
                        elem_id="orders",
                    ),
                    "open_orders",
                )
        with gr.Row():
            self.candidate_number = add(
                gr.Number(
                    label=text("candidate_number", language),
                    value=0,
                    precision=0,
                    elem_id="candidate-number",
                ),
                "candidate_number",
            )
            self.split_customer = add(
                gr.Textbox(
                    label=text("split_customer", language), elem_id="split-customer"
                ),
                "split_customer",
            )
            self.note = add(
                gr.Textbox(label=text("note", language), elem_id="note"), "note"
            )
        self.split_rows = add(
            gr.Textbox(
                label=text("split_lines", language), lines=3, elem_id="split-rows"
            ),
            "split_lines",
        )
        with gr.Row():
            self.buttons = {
                action: add(
                    gr.Button(
                        text(key, language),
                        elem_id=element,
                        variant="primary" if action == "accept" else "secondary",
                    ),
                    key,
                    "value",
                )
                for action, key, element in (
                    ("accept", "accept", "accept-btn"),
                    ("choose", "choose", "choose-btn"),
                    ("split", "split", "split-btn"),
                    ("balance", "to_balance", "balance-btn"),
                    ("not_customer", "not_customer", "not-customer-btn"),
                    ("refund", "refund", "refund-btn"),
                )
            }
            self.undo_button = add(
                gr.Button(text("undo", language), elem_id="undo-btn", variant="stop"),
                "undo",
                "value",
            )
            self.release_button = add(
                gr.Button(text("release", language), elem_id="release-btn"),
                "release",
                "value",
            )
        self.earlier = add(
            gr.Dataframe(
                label=text("earlier_lines", language),
                interactive=False,
                datatype="str",
                wrap=True,
                elem_id="earlier",
            ),
            "earlier_lines",
        )

    def _audit_tab(self, language: str) -> None:
        add = self.labels.add
        self.audit_button = add(
            gr.Button(text("audit_refresh", language), elem_id="audit-btn"),
            "audit_refresh",
            "value",
        )
        self.audit_note = gr.Textbox(show_label=False, interactive=False)
        self.audit = gr.Dataframe(
            interactive=False, datatype="str", wrap=True, elem_id="audit"
        )

    # Events --------------------------------------------------------------------

    def _filters(self) -> list:
        return [
            self.f_account,
            self.f_customer,
            self.f_min,
            self.f_max,
            self.f_from,
            self.f_to,
            self.f_anomaly,
            self.f_sort,
            self.language,
        ]

    def _queue_inputs(self) -> list:
        return [self.clerk, *self._filters()]

    def _queue_outputs(self) -> list:
        return [self.queue, self.counts, self.message]

    def _task_outputs(self) -> list:
        return [
            self.current,
            self.line_table,
            self.candidates,
            self.orders,
            self.balance,
            self.earlier,
            self.split_customer,
            self.tabs,
        ]

    def _wire(self) -> None:
        self._wire_page()
        self._wire_queue()
        self._wire_task()
        self.audit_button.click(
            self.audit_log,
            [self.clerk, self.language],
            [self.audit, self.audit_note],
        )
        self.dashboard.wire(self.clerk, self.language, self.dashboard_tab)

    def _wire_page(self) -> None:
        self.language_choice.change(
            self.change_language,
            [self.clerk, *self._filters()[:-1], self.language_choice],
            [
                self.language,
                *self.labels.components,
                self.queue,
                self.counts,
                self.signed_in_text,
                self.message,
            ],
        )

        self.sign_in_button.click(
            self.sign_in,
            [self.user_name, self.password, self.language],
            [self.clerk, self.signed_in_text, self.password],
        ).then(self.refresh, self._queue_inputs(), self._queue_outputs())
        self.sign_out_button.click(
            self.sign_out,
            [self.language],
            [self.clerk, self.signed_in_text, self.current],
        ).then(self.refresh, self._queue_inputs(), self._queue_outputs())

    def _wire_queue(self) -> None:
        self.refresh_button.click(
            self.refresh, self._queue_inputs(), self._queue_outputs()
        )
        self.next_button.click(
            self.next_task,
            [self.clerk, *self._filters()],
            [*self._task_outputs(), self.message],
        )
        self.open_button.click(
            self.open_task,
            [self.clerk, self.task_number, self.language],
            [*self._task_outputs(), self.message],
        )
        self.queue.select(
            self.open_selected,
            [self.clerk, self.language],
            [*self._task_outputs(), self.message],
        )

    def _wire_task(self) -> None:
        decision_inputs = [
            self.clerk,
            self.current,
            self.candidate_number,
            self.split_rows,
            self.split_customer,
            self.note,
            self.language,
        ]
        for action, button in self.buttons.items():
            button.click(
                self._decider(action),
                decision_inputs,
                [*self._task_outputs(), self.message],
            ).then(self.refresh, self._queue_inputs(), self._queue_outputs())

        self.undo_button.click(
            self.undo,
            [self.clerk, self.current, self.note, self.language],
            [*self._task_outputs(), self.message],
        ).then(self.refresh, self._queue_inputs(), self._queue_outputs())
        self.release_button.click(
            self.release,
            [self.clerk, self.current, self.language],
            [self.message],
        )

    # Handlers --------------------------------------------------------------------

    def change_language(self, clerk, *inputs):
        *_, language = inputs
        queue, counts, message = self.refresh(clerk, *inputs)
        if clerk is None:
            signed_in = text("not_signed_in", language)
        else:
            signed_in = text("signed_in_as", language, name=clerk.name, role=clerk.role)
        return [
            language,
            *self.labels.updates(language),
            queue,
            counts,
            signed_in,
            message,
        ]

    def sign_in(self, name, password, language):
        clerk, message = views.sign_in_clerk(
            self.engine, name or "", password or "", language
        )
        return clerk, message, ""

    def sign_out(self, language):
        return None, text("not_signed_in", language), None

    def _queue_signed_out(self, language):
        empty = pd.DataFrame([], columns=views.queue_columns(language))
        return empty, "", text("not_signed_in", language)

    @views.requires_sign_in(_queue_signed_out)
    def refresh(self, clerk, *inputs):
        *filters, language = inputs
        try:
            queue, counts = self._queue(clerk, filters, language)
        except ValueError as exc:
            return gr.update(), gr.update(), text("error", language, error=str(exc))
        return queue, counts, ""

    def _queue(self, clerk, filters, language) -> tuple[pd.DataFrame, str]:
        *fields, sort = filters
        parsed = views.parse_filters(*(value or "" for value in fields))
        queue, counts = views.queue_table(
            self.engine,
            parsed,
            sort or "priority",
            language,
            masked=needs_masking(clerk.role),
        )
        return localize_queue(queue, counts, language)

    def _task_signed_out(self, language):
        return self._no_task(text("not_signed_in", language))

    @views.requires_sign_in(_task_signed_out)
    def next_task(self, clerk, *inputs):
        *filters, language = inputs
        try:
            *fields, _ = filters
            parsed = views.parse_filters(*(value or "" for value in fields))
        except ValueError as exc:
            return self._no_task(text("error", language, error=str(exc)))
        task_id = views.next_task(
            self.engine, clerk, parsed, self.settings.claim_minutes
        )
        if task_id is None:
            return self._no_task(text("queue_empty", language))
        return self._show(clerk, task_id, language)

    @views.requires_sign_in(_task_signed_out)
    def open_task(self, clerk, task_id, language):
        if task_id is None:
            return self._no_task(text("no_task", language))
        try:
            views.claim_task(
                self.engine, clerk, int(task_id), self.settings.claim_minutes
            )
        except CashmatchError as exc:
            log.warning(
                "review task %s: claim by %s failed: %s", task_id, clerk.name, exc
            )
            return self._no_task(text("error", language, error=str(exc)))
        return self._show(clerk, int(task_id), language)

    def open_selected(self, clerk, language, event: gr.SelectData):
        row = event.row_value or []
        if not row:
            return self._no_task(text("no_task", language))
        return self.open_task(clerk, int(row[0]), language)

    def _show(self, clerk, task_id: int, language: str, message: str | None = None):
        masked = needs_masking(clerk.role)
        view = localize_task_view(
            views.task_view(self.engine, task_id, language, masked=masked), language
        )
        current = {
            "task_id": view.task_id,
            "line_id": view.line_id,
            "version": view.version,
        }
        if message is None:
            line_ref = view.line.iloc[0, 1]
            message = text("claimed", language, task=task_id, line_ref=line_ref)
        return [
            current,
            view.line,
            view.candidates,
            view.open_orders,
            view.balance,
            view.earlier,
            view.customer_id,
            gr.Tabs(selected="task"),
            message,
        ]

    def _no_task(self, message: str):
        return [gr.update()] * 7 + [gr.Tabs(), message]

    def _decider(self, action: str):
        def handler(clerk, current, candidate, split_rows, customer_id, note, language):
            return self.decide(
                clerk,
                action,
                current,
                candidate,
                split_rows,
                customer_id,
                note,
                language,
            )

        handler.__name__ = f"decide_{action}"
        return handler

    @views.requires_sign_in(_task_signed_out)
    def decide(
        self, clerk, action, current, candidate, split_rows, customer_id, note, language
    ):
        if not current:
            return self._no_task(text("no_task", language))
        try:
            decision = ReviewDecision(
                action=action,
                candidate=int(candidate) if candidate is not None else None,
                parts=views.parse_split(split_rows or "", customer_id or "", language)
                if action == "split"
                else (),
                customer_id=(customer_id or "").strip() or None,
                note=note or "",
            )
        except ValueError as exc:
            return self._no_task(str(exc))
        message = views.decide(
            self.engine,
            clerk,
            current["task_id"],
            decision,
            version=current["version"],
            language=language,
        )
        message = localize_decided(message, language)
        return self._show(clerk, current["task_id"], language, message)

    @views.requires_sign_in(_task_signed_out)
    def undo(self, clerk, current, note, language):
        if not current:
            return self._no_task(text("no_task", language))
        message, task_id = views.undo(
            self.engine, clerk, current["line_id"], note or "", language
        )
        if task_id is None:
            return self._no_task(message)
        views.claim_task(self.engine, clerk, task_id, self.settings.claim_minutes)
        return self._show(clerk, task_id, language, message)

    def release(self, clerk, current, language):
        if clerk is None or not current:
            return text("no_task", language)
        try:
            views.release_task(self.engine, clerk, current["task_id"])
        except CashmatchError as exc:
            log.warning(
                "review task %s: release by %s failed: %s",
                current["task_id"],
                clerk.name,
                exc,
            )
            return text("error", language, error=str(exc))
        return text("released", language, task=current["task_id"])

    def audit_log(self, clerk, language):
        table, note = views.audit_table(self.engine, clerk, language)
        return localize_audit(table, language), note
