"""The dashboard tab of the review page: how well matching works, as plots.

The figures are those of /metrics (`service.metrics.dashboard_figures`),
shown as tables and weekly plots in Chinese or English. The tab also takes
audit verdicts: a signed-in clerk types an audit task's id and marks its
automatic decision right or wrong.

`dashboard_view` builds every table without Gradio, so it can be tested on
its own; `DashboardTab` lays out the components and wires their events.
The figures are shown to signed-in users only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

import gradio as gr
import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session

from models.db import session_scope
from models.errors import CashmatchError
from review_ui.reasons import CHANNELS, LINE_STATUSES, code_text, status_text
from review_ui.texts import text
from review_ui.views import requires_sign_in
from service.auditing import open_audit_tasks, record_verdict
from service.metrics import AlertLevels, Figures, dashboard_figures
from training.metrics import Rate

log = logging.getLogger("cashmatch.review_ui")

PLOT_WEEKS = 26
# The components that `DashboardTab.refresh` fills, in its order.
OUTPUT_NAMES = (
    "alerts",
    "summary",
    "automation_plot",
    "precision_plot",
    "accepted_plot",
    "models_plot",
    "unmatched_plot",
    "by_account",
    "by_channel",
    "promotions",
    "open_audits",
)


@dataclass
class DashboardView:
    """The tables the dashboard shows, with headers in one language."""

    alerts: str
    summary: pd.DataFrame
    automation_week: pd.DataFrame
    precision_week: pd.DataFrame
    accepted_week: pd.DataFrame
    models_week: pd.DataFrame
    unmatched_week: pd.DataFrame
    by_account: pd.DataFrame
    by_channel: pd.DataFrame
    promotions: pd.DataFrame
    open_audits: pd.DataFrame


def dashboard_view(
    engine: Engine, language: str, *, levels: AlertLevels | None = None
) -> DashboardView:
    """Compute the figures and return them as the dashboard's tables."""
    levels = levels or AlertLevels()
    with Session(engine) as session:
        figures = dashboard_figures(session, levels=levels)
        audits = open_audit_tasks(session)
        open_audits = _open_audits_table(audits, language)
    return DashboardView(
        alerts=_alerts_text(figures, levels, language),
        summary=_summary_table(figures, language),
        automation_week=_rate_frame(figures.automation_by["week"], language),
        precision_week=_precision_frame(figures, language),
        accepted_week=_rate_frame(figures.accepted_by["week"], language),
        models_week=_models_frame(figures, language),
        unmatched_week=_unmatched_week_frame(figures, language),
        by_account=_breakdown(figures, "account", language),
        by_channel=_breakdown(figures, "channel", language),
        promotions=_promotions_table(figures, language),
        open_audits=open_audits,
    )


def _percent(rate: Rate) -> str:
    return "-" if not rate.total else f"{100 * rate.value:.1f} %"


def _alerts_text(figures: Figures, levels: AlertLevels, language: str) -> str:
    active = [alert for alert in figures.alerts if alert.active]
    if not active:
        return text("dash_no_alerts", language)
    days = {"automation": levels.window_days, "precision": levels.precision_window_days}
    return "\n".join(
        text(
            f"alert_{alert.name}",
            language,
            value=f"{100 * alert.value:.1f} %",
            level=f"{100 * alert.level:.1f} %",
            count=alert.count,
            days=days[alert.name],
        )
        for alert in active
    )


def _summary_table(figures: Figures, language: str) -> pd.DataFrame:
    audits = figures.audits
    queue = figures.queue
    unmatched = "; ".join(
        f"{account} {amount:,.2f} {currency}"
        for (account, currency), amount in figures.unmatched_by["account"].items()
    )
    waited = ""
    if queue.open:
        waited = text("detail_queue", language, hours=_hours(queue.mean_hours))
    rows = [
        (
            "fig_automation",
            _percent(figures.automation),
            _counts(figures.automation, language),
        ),
        ("fig_precision", _percent(audits.precision), _interval(audits, language)),
        (
            "fig_accepted",
            _percent(figures.accepted),
            _counts(figures.accepted, language),
        ),
        ("fig_queue", str(queue.open), waited),
        ("fig_queue_age", _hours(queue.oldest_hours), ""),
        ("fig_unmatched", unmatched or "0.00", ""),
        ("fig_model", figures.serving_version or "-", ""),
    ]
    return pd.DataFrame(
        [[text(key, language), value, detail] for key, value, detail in rows],
        columns=[
            text("col_figure", language),
            text("col_value", language),
            text("col_note", language),
        ],
    )


def _interval(audits, language: str) -> str:
    rate = audits.precision
    if not rate.total:
        return text("detail_no_audits", language, pending=audits.pending)
    low, high = rate.interval
    return text(
        "detail_interval",
        language,
        low=f"{100 * low:.1f} %",
        high=f"{100 * high:.1f} %",
        total=rate.total,
        pending=audits.pending,
    )


def _counts(rate: Rate, language: str) -> str:
    return text("detail_lines", language, hits=rate.hits, total=rate.total)


def _hours(hours: float) -> str:
    return "-" if math.isnan(hours) else f"{hours:.1f}"


def _rate_frame(rates: dict[str, Rate], language: str) -> pd.DataFrame:
    rows = [
        [week, rate.value, rate.total]
        for week, rate in list(rates.items())[-PLOT_WEEKS:]
        if rate.total
    ]
    return pd.DataFrame(
        rows,
        columns=[
            text("col_week", language),
            text("col_share", language),
            text("col_lines", language),
        ],
    )


def _precision_frame(figures: Figures, language: str) -> pd.DataFrame:
    rows = []
    for week, rate in list(figures.audits.by_week.items())[-PLOT_WEEKS:]:
        low, high = rate.interval
        rows.append([week, rate.value, low, high, rate.total])
    return pd.DataFrame(
        rows,
        columns=[
            text("col_week", language),
            text("col_share", language),
            text("col_low", language),
            text("col_high", language),
            text("col_lines", language),
        ],
    )


def _models_frame(figures: Figures, language: str) -> pd.DataFrame:
    weeks = sorted({week for week, _ in figures.lines_by_model_week})[-PLOT_WEEKS:]
    kept = set(weeks)
    rows = [
        [week, version, count]
        for (week, version), count in figures.lines_by_model_week.items()
        if week in kept
    ]
    return pd.DataFrame(
        rows,
        columns=[
            text("col_week", language),
            text("col_version", language),
            text("col_lines", language),
        ],
    )


def _unmatched_week_frame(figures: Figures, language: str) -> pd.DataFrame:
    # Plots need numbers: the exact amounts are in the tables, the plot shows
    # whole currency units as integers.
    items = figures.unmatched_by["week"].items()
    weeks = sorted({week for week, _ in figures.unmatched_by["week"]})[-PLOT_WEEKS:]
    kept = set(weeks)
    rows = [
        [week, currency, int(amount.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))]
        for (week, currency), amount in items
        if week in kept
    ]
    return pd.DataFrame(
        rows,
        columns=[
            text("col_week", language),
            text("col_currency", language),
            text("col_whole_units", language),
        ],
    )


def _breakdown(figures: Figures, dimension: str, language: str) -> pd.DataFrame:
    automation = figures.automation_by[dimension]
    accepted = figures.accepted_by[dimension]
    queue = figures.queue_by[dimension]
    unmatched: dict[str, list[str]] = {}
    for (key, currency), amount in figures.unmatched_by[dimension].items():
        unmatched.setdefault(key, []).append(f"{amount:,.2f} {currency}")
    keys = sorted(set(automation) | set(accepted) | set(queue) | set(unmatched))
    rows = []
    for key in keys:
        waiting = queue.get(key)
        rows.append(
            [
                code_text(CHANNELS, key, language) if dimension == "channel" else key,
                _percent(automation.get(key, Rate(0, 0))),
                _percent(accepted.get(key, Rate(0, 0))),
                str(waiting.open) if waiting else "0",
                _hours(waiting.oldest_hours) if waiting else "-",
                "; ".join(unmatched.get(key, [])) or "0.00",
            ]
        )
    return pd.DataFrame(
        rows,
        columns=[
            text(f"col_{dimension}", language),
            text("col_automation", language),
            text("col_accepted", language),
            text("col_open_tasks", language),
            text("col_oldest_hours", language),
            text("col_unmatched", language),
        ],
    )


def _promotions_table(figures: Figures, language: str) -> pd.DataFrame:
    rows = [
        [
            promotion.at.strftime("%Y-%m-%d %H:%M"),
            promotion.version,
            promotion.previous or "",
            promotion.actor,
        ]
        for promotion in reversed(figures.promotions)
    ]
    return pd.DataFrame(
        rows,
        columns=[
            text("col_at", language),
            text("col_version", language),
            text("col_previous", language),
            text("col_actor", language),
        ],
    )


def _open_audits_table(tasks, language: str) -> pd.DataFrame:
    rows = [
        [str(task.id), str(task.line_id), task.created_at.strftime("%Y-%m-%d %H:%M")]
        for task in tasks
    ]
    return pd.DataFrame(
        rows,
        columns=[
            text("col_task", language),
            text("col_line_id", language),
            text("col_at", language),
        ],
    )


def record_audit(
    engine: Engine, clerk, task_id: int, *, right: bool, note: str, language: str
) -> str:
    """Record a clerk's audit verdict and return the message to show."""
    try:
        with session_scope(engine) as session:
            outcome = record_verdict(
                session, task_id, actor=clerk.name, right=right, note=note
            )
            status = outcome.line.status
    except CashmatchError as exc:
        log.warning("audit task %s: verdict by %s failed: %s", task_id, clerk.name, exc)
        return text("error", language, error=str(exc))
    verdict = text("verdict_right" if right else "verdict_wrong", language)
    return text(
        "audit_recorded",
        language,
        task=task_id,
        verdict=verdict,
        status=status_text(LINE_STATUSES, status, language),
    )


class DashboardTab:
    """The components of the dashboard tab and their events."""

    def __init__(self, engine: Engine, labels):
        self.engine = engine
        self.labels = labels

    def build(self, language: str) -> None:
        """Lay out the tab; call inside the `gr.Tab` context."""
        add = self.labels.add
        with gr.Row():
            self.refresh_button = add(
                gr.Button(text("dashboard_refresh", language), elem_id="dashboard-btn"),
                "dashboard_refresh",
                "value",
            )
            self.alerts = add(
                gr.Textbox(
                    label=text("dash_alerts", language),
                    interactive=False,
                    elem_id="dashboard-alerts",
                    scale=3,
                ),
                "dash_alerts",
            )
        self.summary = add(
            gr.Dataframe(
                label=text("dash_summary", language),
                interactive=False,
                datatype="str",
                elem_id="dashboard-summary",
            ),
            "dash_summary",
        )
        self._plots(language)
        self._tables(language)
        self._audit_controls(language)

    def _plots(self, language: str) -> None:
        add = self.labels.add
        with gr.Row():
            self.automation_plot = add(
                gr.LinePlot(label=text("dash_automation_week", language), y_lim=[0, 1]),
                "dash_automation_week",
            )
            self.precision_plot = add(
                gr.LinePlot(label=text("dash_precision_week", language), y_lim=[0, 1]),
                "dash_precision_week",
            )
        with gr.Row():
            self.accepted_plot = add(
                gr.LinePlot(label=text("dash_accepted_week", language), y_lim=[0, 1]),
                "dash_accepted_week",
            )
            self.models_plot = add(
                gr.BarPlot(label=text("dash_models_week", language)),
                "dash_models_week",
            )
        self.unmatched_plot = add(
            gr.BarPlot(label=text("dash_unmatched_week", language)),
            "dash_unmatched_week",
        )

    def _tables(self, language: str) -> None:
        add = self.labels.add
        tables = {}
        for key, element in (
            ("dash_by_account", "dashboard-accounts"),
            ("dash_by_channel", "dashboard-channels"),
            ("dash_promotions", "dashboard-promotions"),
        ):
            tables[key] = add(
                gr.Dataframe(
                    label=text(key, language),
                    interactive=False,
                    datatype="str",
                    elem_id=element,
                ),
                key,
            )
        self.by_account = tables["dash_by_account"]
        self.by_channel = tables["dash_by_channel"]
        self.promotions = tables["dash_promotions"]

    def _audit_controls(self, language: str) -> None:
        add = self.labels.add
        self.open_audits = add(
            gr.Dataframe(
                label=text("dash_open_audits", language),
                interactive=False,
                datatype="str",
                elem_id="dashboard-audits",
            ),
            "dash_open_audits",
        )
        with gr.Row():
            self.audit_task = add(
                gr.Number(
                    label=text("dash_audit_task", language),
                    precision=0,
                    elem_id="audit-task",
                ),
                "dash_audit_task",
            )
            self.audit_note = add(gr.Textbox(label=text("note", language)), "note")
            self.right_button = add(
                gr.Button(text("audit_right", language), elem_id="audit-right-btn"),
                "audit_right",
                "value",
            )
            self.wrong_button = add(
                gr.Button(
                    text("audit_wrong", language),
                    variant="stop",
                    elem_id="audit-wrong-btn",
                ),
                "audit_wrong",
                "value",
            )
        self.audit_message = gr.Textbox(
            show_label=False, interactive=False, elem_id="audit-message"
        )

    def outputs(self) -> list:
        """Return the components that `refresh` fills, in its order."""
        return [getattr(self, name) for name in OUTPUT_NAMES]

    def wire(self, clerk: gr.State, language: gr.State, tab=None) -> None:
        """Connect the buttons; `tab`, when given, refreshes on selection."""
        self.refresh_button.click(self.refresh, [clerk, language], self.outputs())
        if tab is not None:
            tab.select(self.refresh, [clerk, language], self.outputs())
        for button, right in ((self.right_button, True), (self.wrong_button, False)):
            button.click(
                self._verdict(right),
                [clerk, self.audit_task, self.audit_note, language],
                [self.audit_message],
            ).then(self.refresh, [clerk, language], self.outputs())

    def _signed_out(self, language: str) -> list:
        # The alerts box shows the message; every table and plot is emptied.
        empty = [None] * (len(OUTPUT_NAMES) - 1)
        return [text("not_signed_in", language), *empty]

    @requires_sign_in(_signed_out)
    def refresh(self, clerk, language: str) -> list:
        """Return the new value of every output component."""
        view = dashboard_view(self.engine, language)
        columns = view.automation_week.columns
        precision_columns = view.precision_week.columns
        model_columns = view.models_week.columns
        unmatched_columns = view.unmatched_week.columns
        return [
            view.alerts,
            view.summary,
            gr.LinePlot(value=view.automation_week, x=columns[0], y=columns[1]),
            gr.LinePlot(
                value=view.precision_week,
                x=precision_columns[0],
                y=precision_columns[1],
            ),
            gr.LinePlot(
                value=view.accepted_week,
                x=view.accepted_week.columns[0],
                y=view.accepted_week.columns[1],
            ),
            gr.BarPlot(
                value=view.models_week,
                x=model_columns[0],
                y=model_columns[2],
                color=model_columns[1],
            ),
            gr.BarPlot(
                value=view.unmatched_week,
                x=unmatched_columns[0],
                y=unmatched_columns[2],
                color=unmatched_columns[1],
            ),
            view.by_account,
            view.by_channel,
            view.promotions,
            view.open_audits,
        ]

    def _verdict(self, right: bool):
        def handler(clerk, task_id, note, language):
            if clerk is None:
                return text("not_signed_in", language)
            if task_id is None:
                return text("no_task", language)
            return record_audit(
                self.engine,
                clerk,
                int(task_id),
                right=right,
                note=note or "",
                language=language,
            )

        handler.__name__ = "audit_right" if right else "audit_wrong"
        return handler
