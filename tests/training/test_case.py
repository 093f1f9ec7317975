from decimal import Decimal

import pytest

from matcher.pipeline import AUTO, Matcher, allocation_rows
from training import cold_start
from training.case import CaseData, match_index, run_case, train_from_history
from training.metrics import evaluate
from training.synthetic import generate_case

SMALL = {"customers": 40, "open_orders": 600, "lines": 300, "history_lines": 600}


@pytest.fixture(scope="module")
def case():
    return generate_case(seed=3, **SMALL)


@pytest.fixture(scope="module")
def trained(case):
    return train_from_history(case.data)


@pytest.fixture(scope="module")
def results(case, trained):
    return run_case(case.data, model=trained[0])


def test_train_from_history_index_has_export_open_amounts(case, trained):
    _, index = trained
    export = {
        o.order_id: int(o.open_amount * 100)
        for o in case.data.orders
        if o.status in ("open", "partly_paid")
    }

    found = {oid: state.open for oid, state in index.orders.items() if state.open > 0}

    assert found == export


def test_train_from_history_learns_payer_accounts(case, trained):
    _, index = trained
    history_accounts = {
        line.counterparty_account
        for line in case.data.history_lines
        if line.amount > 0 and line.counterparty_account
    }

    learned = {account for account in index.seen_accounts}

    assert learned
    assert learned <= history_accounts


def test_train_from_history_model_is_ready(trained):
    model, _ = trained

    model.check()
    assert model.version.startswith("m-")
    assert model.calibrator is not None
    assert 0.0 <= model.threshold <= 1.01


def test_train_from_history_same_input_same_version(case, trained):
    again, _ = train_from_history(case.data)

    assert again.version == trained[0].version


def test_run_case_matches_every_line(case, results):

    assert [r.line.line_ref for r in results] == [
        line.line_ref for line in case.data.statement_lines
    ]


def test_run_case_beats_floor_on_small_case(case, results):

    metrics = evaluate(
        allocation_rows(results), case.truth, kinds=case.kinds, anomalies=case.anomalies
    )

    # Loose floors for a small case; the benchmark measures the real targets.
    assert metrics.accuracy.value >= 0.85
    assert metrics.automation.value >= 0.5
    assert metrics.precision.value >= 0.95
    assert metrics.duplicates.value == 1.0


def test_run_case_never_books_beyond_open_amounts(case, results):
    open_amounts = {o.order_id: o.open_amount for o in case.data.orders}
    booked: dict[str, Decimal] = {}

    for row in allocation_rows(results):
        if row["target"] in ("order", "fee"):
            booked[row["order_id"]] = booked.get(row["order_id"], 0) + row["amount"]

    for order_id, amount in booked.items():
        assert amount <= open_amounts[order_id], order_id


def test_run_case_money_out_is_unmatched(case, results):

    for result in results:
        if result.line.amount < 0:
            assert result.decision == "unmatched"
            assert result.decision != AUTO


def test_match_index_without_history_uses_export(case):
    data = CaseData(customers=case.data.customers, orders=case.data.orders)

    index = match_index(data)

    assert sum(1 for o in index.orders.values() if o.open > 0) == 600
    assert not index.seen_accounts


@pytest.fixture
def tiny_cold_start(monkeypatch):
    monkeypatch.setattr(
        cold_start,
        "COLD_START_CASE",
        {
            "seed": 5,
            "customers": 20,
            "open_orders": 200,
            "lines": 0,
            "history_lines": 300,
        },
    )
    monkeypatch.setattr(cold_start, "_loaded", {})


def test_cold_start_model_is_cached(tiny_cold_start, tmp_path, monkeypatch):
    first = cold_start.cold_start_model(tmp_path)
    files = list(tmp_path.glob("cold-start-*.pkl"))
    monkeypatch.setattr(cold_start, "_loaded", {})

    def fail():
        raise AssertionError("the cached model should have been loaded")

    monkeypatch.setattr(cold_start, "_train", fail)
    second = cold_start.cold_start_model(tmp_path)

    assert len(files) == 1
    assert first.version.startswith("cold-start-")
    assert second.version == first.version


def test_cold_start_model_rebuilds_broken_cache(tiny_cold_start, tmp_path):
    model = cold_start.cold_start_model(tmp_path)
    (path,) = tmp_path.glob("cold-start-*.pkl")
    path.write_bytes(b"not a pickle")
    cold_start._loaded.clear()

    rebuilt = cold_start.cold_start_model(tmp_path)

    assert rebuilt.version == model.version


def test_run_case_without_history_uses_cold_start(
    tiny_cold_start, tmp_path, monkeypatch, case
):
    monkeypatch.setenv("CASHMATCH_COLD_START_DIR", str(tmp_path))
    data = CaseData(
        customers=case.data.customers,
        orders=case.data.orders,
        invoices=case.data.invoices,
        statement_lines=case.data.statement_lines[:50],
    )

    results = run_case(data)

    assert len(results) == 50
    assert {r.model_version for r in results} == {
        cold_start.cold_start_model(tmp_path).version
    }


def test_match_batch_scores_anomalies_like_single_lines(case, trained):
    model, _ = trained
    lines = sorted(case.data.statement_lines[:40], key=lambda l: l.booking_date)

    batch = Matcher(match_index(case.data), model).match_batch(lines)
    single_matcher = Matcher(match_index(case.data), model)
    single = [single_matcher.match(line) for line in lines]

    assert [r.anomaly_score for r in batch] == pytest.approx(
        [r.anomaly_score for r in single]
    )
    assert [r.decision for r in batch] == [r.decision for r in single]
