"""The learning loop end to end: cold start, reviews, retraining, next month.

A generated company gets two habits that the cold-start model has never
seen. Its last customer starts to pay prepayments under a new name from a
new account (a payer alias). Ten customers top up their prepayment balance
with memos such as "储值", each for exactly the open amount of one of their
orders (a memo habit; the amount alone points to the order). The cold-start
model matches the first month through the service, and simulated clerks
correct it. `train_with_engine` then trains on those labels, and the next
month's lines are matched with what the system knew before and after.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from ingest.records import AllocationRecord, ParsedStatement, StatementRecord
from matcher.index import MatchIndex
from models.db import make_engine, migrate, session_scope
from models.tables import Allocation, ModelVersion, ReviewTask, StatementLine
from service import master, review
from service.auth import create_api_key
from service.booking import Part
from service.imports import lines_for_keys, store_statements
from service.matching import match_lines
from service.review import ReviewDecision
from service.serving import current_model
from service.settings import Settings
from service.train import train_with_engine
from training.case import match_index
from training.dataset import orders_before, truth_candidate_key
from training.evaluation import evaluate_model, evaluation_start
from training.labels import (
    NO_MATCH_KEY,
    LabelledLine,
    candidate_view_key,
    collect_labels,
)
from training.learning import LearningSettings
from training.registry import load_model, promote, serving_row
from training.synthetic import generate_case
from training.train import TrainSettings

ALIAS_NAME = "鑫源商行"
ALIAS_ACCOUNT = "6230888800001111"
HABIT_MEMOS = ("储值", "储值款", "充值储值", "储值 补充")


class Company:
    """A generated company with the two new habits in both months."""

    def __init__(self, seed: int = 1):
        case = generate_case(
            seed=seed, customers=20, open_orders=200, lines=120, history_lines=300
        )
        self.data = case.data
        self.rng = random.Random(seed)
        self.alias_customer = self.data.customers[-1]
        self.habit_customers = self.data.customers[:10]
        every_truth = self.data.history_allocations + case.truth
        self.open_orders = orders_before(self.data.orders, every_truth)

        first = self.data.history_lines[0].booking_date + timedelta(days=5)
        second = self.data.statement_lines[0].booking_date
        habit1, habit1_truth = self._habit("HX", first, 40)
        alias1, alias1_truth = self._alias("HA", first, 6)
        habit2, habit2_truth = self._habit("LX", second, 12)
        alias2, alias2_truth = self._alias("LA", second, 4)
        self.month1 = self.data.history_lines + habit1 + alias1
        self.month1_truth = self.data.history_allocations + habit1_truth + alias1_truth
        self.month2 = self.data.statement_lines + habit2 + alias2
        self.month2_truth = case.truth + habit2_truth + alias2_truth
        self.habit_refs = {line.line_ref for line in habit2}
        self.alias_refs = {line.line_ref for line in alias2}

    def _habit(self, prefix: str, start, count: int):
        lines, truth = [], []
        for i in range(count):
            customer = self.habit_customers[i % len(self.habit_customers)]
            orders = [
                o for o in self.open_orders if o.customer_id == customer.customer_id
            ]
            amount = self.rng.choice(orders).open_amount
            line = self._line(
                f"{prefix}{i:03d}",
                start + timedelta(days=i * 80 // count),
                amount,
                name=customer.name,
                account=customer.bank_accounts[0] if customer.bank_accounts else "",
                memo=self.rng.choice(HABIT_MEMOS),
            )
            lines.append(line)
            truth.append(_to_balance(line, customer.customer_id))
        return lines, truth

    def _alias(self, prefix: str, start, count: int):
        lines, truth = [], []
        for i in range(count):
            amount = Decimal(self.rng.choice([2000, 3000, 5000, 8000]))
            line = self._line(
                f"{prefix}{i:03d}",
                start + timedelta(days=i * 80 // count),
                amount,
                name=ALIAS_NAME,
                account=ALIAS_ACCOUNT,
                memo="预付款",
            )
            lines.append(line)
            truth.append(_to_balance(line, self.alias_customer.customer_id))
        return lines, truth

    def _line(self, ref, day, amount, *, name, account, memo) -> StatementRecord:
        return replace(
            self.data.history_lines[0],
            line_ref=ref,
            booking_date=day,
            amount=amount,
            counterparty_name=name,
            counterparty_account=account,
            memo=memo,
            bank_reference=ref,
        )

    def month2_labels(self) -> list[LabelledLine]:
        """Return the next month's money-in lines with their truth."""
        by_ref: dict[str, list[AllocationRecord]] = {}
        for row in self.month2_truth:
            if row.target != "none":
                by_ref.setdefault(row.line_ref, []).append(row)
        return [
            LabelledLine(
                record=line, truth=by_ref.get(line.line_ref, []), source="truth"
            )
            for line in self.month2
            if line.amount > 0
        ]


def _to_balance(line: StatementRecord, customer_id: str) -> AllocationRecord:
    return AllocationRecord(line.line_ref, customer_id, "", "balance", line.amount)


def _store(engine, settings, lines, name) -> list[int]:
    statement = ParsedStatement(
        file_name=name, format="csv", lines=lines, account="default"
    )
    with session_scope(engine) as session:
        report = store_statements(
            session,
            [statement],
            settings,
            file_name=name,
            file_sha256=hashlib.sha256(name.encode()).hexdigest(),
        )
        return [line.id for line in lines_for_keys(session, report.line_keys)]


def _review_like_clerks(engine, line_ids, truth) -> dict[str, int]:
    """Undo wrong automatic bookings, then decide every open task by the truth."""
    by_ref: dict[str, list[AllocationRecord]] = {}
    for row in truth:
        by_ref.setdefault(row.line_ref, []).append(row)
    done = {"undone": 0, "decided": 0}
    with session_scope(engine) as session:
        for line_id in line_ids:
            line = session.get(StatementLine, line_id)
            if line.status == "allocated" and _booked_key(session, line) != _key(
                by_ref.get(line.line_ref, [])
            ):
                review.reverse_line(
                    session,
                    line_id,
                    actor="clerk",
                    reason="wrong",
                    expected_version=None,
                )
                done["undone"] += 1
        for line_id in line_ids:
            line = session.get(StatementLine, line_id)
            task = session.exec(
                select(ReviewTask).where(
                    ReviewTask.line_id == line_id, ReviewTask.status == "open"
                )
            ).first()
            if task is None or line.amount <= 0:
                continue
            decision = _decision(line, by_ref.get(line.line_ref, []))
            review.decide(session, task.id, decision, actor="clerk")
            done["decided"] += 1
    return done


def _key(rows) -> tuple:
    key = truth_candidate_key(rows)
    return key if key[0] else NO_MATCH_KEY


def _booked_key(session, line) -> tuple:
    booked = session.exec(
        select(Allocation).where(
            Allocation.line_id == line.id, Allocation.status == "confirmed"
        )
    ).all()
    return _key(
        AllocationRecord(
            line.line_ref, a.customer_id or "", a.order_id or "", a.target, a.amount
        )
        for a in booked
    )


def _decision(line, truth) -> ReviewDecision:
    expected = _key(truth)
    if expected == NO_MATCH_KEY:
        return ReviewDecision("not_customer")
    shown = (line.suggestion or {}).get("candidates", [])
    for number, view in enumerate(shown):
        if candidate_view_key(view) == expected:
            return ReviewDecision("choose", candidate=number)
    parts = tuple(
        Part(row.target, row.amount, row.customer_id, row.order_id or None)
        for row in truth
        if row.target != "none"
    )
    return ReviewDecision("split", parts=parts)


@pytest.fixture(scope="module")
def loop(tmp_path_factory, mlflow_uri, shared_cold_start):
    """Run the loop once: month one matched, reviewed, trained on."""
    folder = tmp_path_factory.mktemp("loop")
    settings = Settings(
        data_dir=folder,
        mlflow_tracking_uri=mlflow_uri,
        mlflow_registry_name="loop-ranker",
        cold_start_dir=Path(shared_cold_start),
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    company = Company()
    with session_scope(engine) as session:
        master.upsert_customers(session, company.data.customers)
        master.upsert_orders(
            session, orders_before(company.data.orders, company.month1_truth)
        )
        master.upsert_invoices(session, company.data.invoices)
        cold = current_model(session, settings)

    month1 = _store(engine, settings, company.month1, "month1.csv")
    with session_scope(engine) as session:
        lines = [session.get(StatementLine, line_id) for line_id in month1]
        match_lines(session, lines, cold, settings)
    reviewed = _review_like_clerks(engine, month1, company.month1_truth)
    result = train_with_engine(engine, settings, actor="test")
    yield {
        "engine": engine,
        "settings": settings,
        "company": company,
        "cold": cold,
        "reviewed": reviewed,
        "result": result,
    }
    engine.dispose()


def _month2(loop, model, index) -> object:
    company = loop["company"]
    with Session(loop["engine"]) as session:
        orders = collect_labels(session).orders
    lines = company.month2_labels()
    start = evaluation_start(index, orders, lines[0].record.booking_date)
    return evaluate_model(model, start, lines)


def _right(evaluation, refs: set[str]) -> int:
    return sum(
        bool(right)
        for ref, right in zip(evaluation.line_refs, evaluation.right)
        if ref in refs
    )


def test_learning_loop_reviews_correct_month_one(loop):
    assert loop["reviewed"]["decided"] >= 40
    assert loop["reviewed"]["undone"] >= 1


def test_learning_loop_retrained_model_is_promoted(loop):
    result = loop["result"]

    assert result.promoted, result.reason
    assert (
        result.metrics["eval_allocation_accuracy"]
        > result.metrics["serving_eval_allocation_accuracy"]
    )
    with Session(loop["engine"]) as session:
        assert serving_row(session).version == result.version


def _trained(loop):
    with Session(loop["engine"]) as session:
        row = session.get(ModelVersion, loop["result"].version)
        return collect_labels(session), load_model(Path(row.path))


def test_learning_loop_improves_next_month(loop):
    # The next month is matched with the training evaluation, from the same
    # open amounts each time. The served index learns payers from the
    # database but not the memo statistics that the memo habit relies on.
    company = loop["company"]
    labels, model = _trained(loop)
    # What the cold-start system knew: the master data and nothing learned.
    bare = MatchIndex.build(labels.customers, labels.orders, labels.invoices)
    before = _month2(loop, loop["cold"], bare)
    after = _month2(loop, model, match_index(labels.case_data()))

    assert after.accuracy.value > before.accuracy.value
    assert _right(before, company.alias_refs) == 0
    assert _right(after, company.alias_refs) == len(company.alias_refs)
    assert _right(after, company.habit_refs) == len(company.habit_refs)
    assert _right(after, company.habit_refs) > _right(before, company.habit_refs)


def test_learning_loop_retrain_beats_learned_index_alone(loop):
    labels, model = _trained(loop)
    index = match_index(labels.case_data())

    cold = _month2(loop, loop["cold"], index)
    retrained = _month2(loop, model, index)

    assert retrained.accuracy.hits > cold.accuracy.hits


def test_learning_loop_api_serves_new_version(loop):
    from service.app import create_app

    company = loop["company"]
    with session_scope(loop["engine"]) as session:
        key = create_api_key(session, "erp-loop", role="erp", actor="test")
    alias_line = next(
        line for line in company.month2 if line.line_ref in company.alias_refs
    )
    app = create_app(loop["settings"], engine=loop["engine"], review_page=False)
    body = {
        "lines": [
            {
                "line_ref": alias_line.line_ref,
                "booking_date": alias_line.booking_date.isoformat(),
                "amount": str(alias_line.amount),
                "counterparty_name": alias_line.counterparty_name,
                "counterparty_account": alias_line.counterparty_account,
                "memo": alias_line.memo,
            }
        ],
        "dry_run": True,
    }

    response = TestClient(app).post("/v1/match", json=body, headers={"X-API-Key": key})

    assert response.status_code == 200, response.text
    found = response.json()
    assert found["model_version"] == loop["result"].version
    rows = found["lines"][0]["allocations"]
    assert {row["customer_id"] for row in rows} == {company.alias_customer.customer_id}


def test_worse_model_not_promoted(loop):
    # A ranker of one tree with two leaves underfits; it must not replace
    # the serving model, whose version and file stay as they were.
    weak = LearningSettings(train=TrainSettings(n_estimators=1, num_leaves=2))
    with Session(loop["engine"]) as session:
        serving_before = serving_row(session).version

    result = train_with_engine(
        loop["engine"], loop["settings"], learning=weak, actor="test"
    )

    assert not result.promoted
    assert "no gain" in result.reason or "below" in result.reason
    with Session(loop["engine"]) as session:
        assert serving_row(session).version == serving_before
        assert session.get(ModelVersion, result.version).status == "candidate"


def test_worse_model_promoted_when_forced(loop):
    weak = LearningSettings(train=TrainSettings(n_estimators=1, num_leaves=2, seed=7))
    with Session(loop["engine"]) as session:
        serving_before = serving_row(session).version

    result = train_with_engine(
        loop["engine"], loop["settings"], learning=weak, force=True, actor="test"
    )

    assert result.promoted
    assert result.reason.startswith("forced")
    with session_scope(loop["engine"]) as session:
        assert serving_row(session).version == result.version
        promote(session, serving_before, actor="test")
