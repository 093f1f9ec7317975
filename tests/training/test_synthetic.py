import csv
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from features.references import ReferenceIndex
from training.synthetic import DEFAULT_MIX, generate_case, write_case

SMALL = {"customers": 30, "open_orders": 450, "lines": 300, "history_lines": 300}


@pytest.fixture(scope="module")
def case():
    return generate_case(seed=7, **SMALL)


def _open(orders):
    return [o for o in orders if o.status in ("open", "partly_paid")]


def test_generate_case_same_seed_same_case(case):
    again = generate_case(seed=7, **SMALL)

    assert again.data.statement_lines == case.data.statement_lines
    assert again.truth == case.truth
    assert again.data.orders == case.data.orders


def test_generate_case_other_seed_differs(case):
    other = generate_case(seed=8, **SMALL)

    assert other.data.statement_lines != case.data.statement_lines


def test_generate_case_sizes(case):
    data = case.data

    assert len(data.customers) == 30
    assert len(_open(data.orders)) == 450
    assert len(data.statement_lines) == 300
    assert len(data.history_lines) == 300


def test_generate_case_open_orders_per_customer(case):
    counts = Counter(o.customer_id for o in _open(case.data.orders))

    assert min(counts.values()) >= 5
    assert max(counts.values()) <= 50


def test_generate_case_every_kind_present(case):
    kinds = set(case.kinds.values())

    assert kinds == set(DEFAULT_MIX)


def test_generate_case_truth_adds_up_to_line(case):
    rows = defaultdict(list)
    for row in case.truth:
        rows[row.line_ref].append(row)

    for line in case.data.statement_lines:
        booked = sum(r.amount for r in rows[line.line_ref] if r.target != "fee")
        assert booked == line.amount, line.line_ref


def test_generate_case_truth_within_open_amounts(case):
    open_amounts = {o.order_id: o.open_amount for o in _open(case.data.orders)}
    paid = defaultdict(Decimal)
    for row in case.truth:
        if row.target in ("order", "fee"):
            paid[row.order_id] += row.amount

    for order_id, amount in paid.items():
        assert amount <= open_amounts[order_id], order_id


def test_generate_case_history_before_statement(case):
    last = max(line.booking_date for line in case.data.history_lines)
    first = min(line.booking_date for line in case.data.statement_lines)

    assert last < first


def test_generate_case_duplicates_repeat_a_payment(case):
    duplicates = [ref for ref, kind in case.kinds.items() if kind == "duplicate"]
    lines = {line.line_ref: line for line in case.data.statement_lines}

    assert duplicates
    for ref in duplicates:
        line = lines[ref]
        assert case.anomalies[ref] == ["duplicate"]
        earlier = [
            other
            for other in case.data.statement_lines
            if other.booking_date < line.booking_date
            and (other.amount, other.memo, other.counterparty_account)
            == (line.amount, line.memo, line.counterparty_account)
        ]
        assert earlier, ref


def test_generate_case_money_out_has_no_customer(case):
    lines = {line.line_ref: line for line in case.data.statement_lines}

    for row in case.truth:
        if case.kinds[row.line_ref] in ("money_out", "other_income"):
            assert row.target == "none"
            assert row.customer_id == ""
        if case.kinds[row.line_ref] == "money_out":
            assert lines[row.line_ref].amount < 0


def test_generate_case_fee_within_tolerance(case):
    fees = [row for row in case.truth if row.target == "fee"]
    open_amounts = {o.order_id: o.open_amount for o in case.data.orders}

    assert fees
    for row in fees:
        assert Decimal(0) < row.amount <= Decimal("50.00")
        assert row.amount <= open_amounts[row.order_id] / 100


def test_generate_case_same_amount_pays_oldest(case):
    orders = {o.order_id: o for o in _open(case.data.orders)}
    open_now = {oid: o.open_amount for oid, o in orders.items()}
    rows = defaultdict(list)
    for row in case.truth:
        rows[row.line_ref].append(row)
    checked = 0

    for line in sorted(case.data.statement_lines, key=lambda l: l.booking_date):
        for row in rows[line.line_ref]:
            if case.kinds[line.line_ref] == "same_amount" and row.target == "order":
                paid = orders[row.order_id]
                twins = [
                    o
                    for o in orders.values()
                    if o.customer_id == paid.customer_id
                    and open_now[o.order_id] == open_now[paid.order_id]
                ]
                assert len(twins) >= 2
                assert min(twins, key=lambda o: (o.order_date, o.order_id)) == paid
                checked += 1
        for row in rows[line.line_ref]:
            if row.target in ("order", "fee"):
                open_now[row.order_id] -= row.amount

    assert checked


def test_generate_case_plants_each_alert():
    planted = generate_case(seed=4, **{**SMALL, "lines": 600})

    kinds = {reason for reasons in planted.anomalies.values() for reason in reasons}

    assert kinds == {"duplicate", "reference_conflict", "over_advance", "unusual_amount"}


def test_generate_case_wrong_reference_names_other_order(case):
    references = ReferenceIndex()
    for order in case.data.orders:
        references.add(order.order_id)
    lines = {line.line_ref: line for line in case.data.statement_lines}
    wrong = [ref for ref, kind in case.kinds.items() if kind == "wrong_reference"]

    assert wrong
    for ref in wrong:
        named = {hit.target_id for hit in references.find(lines[ref].memo)}
        paid = {row.order_id for row in case.truth if row.line_ref == ref}
        assert named
        assert not named & paid
        assert case.anomalies[ref] == ["reference_conflict"]


def test_generate_case_overpay_is_over_advance(case):
    for row in case.truth:
        if case.kinds[row.line_ref] == "overpay" and row.target == "balance":
            assert ("over_advance" in case.anomalies[row.line_ref]) == (
                row.amount > Decimal("50.00")
            )


def test_generate_case_unusual_amount_goes_to_balance(case):
    unusual = [row for row in case.truth if case.kinds[row.line_ref] == "unusual_amount"]

    assert unusual
    assert {row.target for row in unusual} == {"balance"}


def test_generate_case_unnamed_payments_take_oldest_equal(case):
    references = ReferenceIndex()
    for order in case.data.orders:
        references.add(order.order_id)
    orders = {o.order_id: o for o in _open(case.data.orders)}
    open_now = {oid: o.open_amount for oid, o in orders.items()}
    rows = defaultdict(list)
    for row in case.truth:
        rows[row.line_ref].append(row)
    checked = 0

    for line in sorted(case.data.statement_lines, key=lambda l: l.booking_date):
        kind = case.kinds[line.line_ref]
        unnamed = not references.find(line.memo)
        for row in rows[line.line_ref]:
            if kind in ("fee", "overpay", "no_reference") and unnamed and row.target == "order":
                paid = orders[row.order_id]
                twins = [
                    o
                    for o in orders.values()
                    if o.customer_id == paid.customer_id
                    and open_now[o.order_id] == open_now[paid.order_id]
                ]
                assert min(twins, key=lambda o: (o.order_date, o.order_id)) == paid
                checked += 1
        for row in rows[line.line_ref]:
            if row.target in ("order", "fee"):
                open_now[row.order_id] -= row.amount

    assert checked


def test_generate_case_north_vocabulary_has_other_names(case):
    north = generate_case(seed=7, vocabulary="north", **SMALL)
    default_names = {c.name for c in case.data.customers}

    assert not default_names & {c.name for c in north.data.customers}


def test_generate_case_mix_sets_kinds():
    mixed = generate_case(seed=1, mix={"reference": 1, "money_out": 1}, **SMALL)

    assert Counter(mixed.kinds.values()) == {"reference": 150, "money_out": 150}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"vocabulary": "martian"}, "unknown vocabulary", id="vocabulary"),
        pytest.param({"mix": {"wire": 1.0}}, "unknown payment kinds", id="mix-kind"),
        pytest.param({"mix": {"reference": 0}}, "add up to 0", id="mix-empty"),
        pytest.param({"open_orders": 10}, "5 to 50 open orders", id="too-few-orders"),
    ],
)
def test_generate_case_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        generate_case(**{**SMALL, **options})


def _read(path):
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_write_case_files_and_columns(case, tmp_path):
    write_case(case, tmp_path)

    columns = {
        "customers.csv": ["customer_id", "name", "aliases", "bank_accounts"],
        "orders.csv": [
            "order_id",
            "customer_id",
            "order_date",
            "amount",
            "open_amount",
            "currency",
            "deposit_amount",
            "status",
        ],
        "invoices.csv": ["invoice_id", "order_ids", "amount", "issue_date"],
        "history/allocations.csv": [
            "line_ref",
            "customer_id",
            "order_id",
            "target",
            "amount",
        ],
        "statement.csv": [
            "line_ref",
            "booking_date",
            "amount",
            "currency",
            "counterparty_name",
            "counterparty_account",
            "memo",
            "bank_reference",
        ],
        "truth.csv": [
            "line_ref",
            "customer_id",
            "order_id",
            "target",
            "amount",
            "kind",
            "anomaly_reasons",
        ],
    }
    for name, expected in columns.items():
        with (tmp_path / name).open(encoding="utf-8") as handle:
            assert next(csv.reader(handle)) == expected, name
    assert (tmp_path / "history" / "statement.csv").exists()


def test_write_case_rows_match_the_case(case, tmp_path):
    write_case(case, tmp_path)

    statement = _read(tmp_path / "statement.csv")
    truth = _read(tmp_path / "truth.csv")
    customers = _read(tmp_path / "customers.csv")

    assert [row["line_ref"] for row in statement] == [
        line.line_ref for line in case.data.statement_lines
    ]
    assert [Decimal(row["amount"]) for row in statement] == [
        line.amount for line in case.data.statement_lines
    ]
    assert len(truth) == len(case.truth)
    assert {row["kind"] for row in truth} == set(case.kinds.values())
    assert customers[0]["bank_accounts"].split("|") == list(
        case.data.customers[0].bank_accounts
    )


def test_write_case_reads_back_with_ingest(case, tmp_path):
    import ingest

    write_case(case, tmp_path)

    orders = ingest.read_orders(tmp_path / "orders.csv")
    statements = ingest.read_statements(tmp_path / "statement.csv")
    lines = [line for statement in statements for line in statement.lines]

    assert ingest.read_customers(tmp_path / "customers.csv") == case.data.customers
    assert ingest.read_invoices(tmp_path / "invoices.csv") == case.data.invoices
    assert [(o.order_id, o.open_amount, o.status.lower()) for o in orders] == [
        (o.order_id, o.open_amount, o.status.lower()) for o in case.data.orders
    ]
    assert (
        ingest.read_allocations(tmp_path / "history" / "allocations.csv")
        == case.data.history_allocations
    )
    assert [(l.line_ref, l.amount, l.memo, l.counterparty_account) for l in lines] == [
        (l.line_ref, l.amount, l.memo, l.counterparty_account)
        for l in case.data.statement_lines
    ]
