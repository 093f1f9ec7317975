"""The `cashmatch` command line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from sqlmodel import Session, select

from models.db import make_engine, migrate, session_scope
from models.errors import CashmatchError
from models.tables import StatementLine
from service.settings import Settings

app = typer.Typer(
    help="Match incoming bank-statement lines to customers, orders and "
    "prepayment balances.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="List, promote and roll back trained models.")
keys_app = typer.Typer(help="Create, list and revoke API keys.")
users_app = typer.Typer(help="Add the users who sign in to the review queue.")
ledger_app = typer.Typer(
    help="Prepayment ledgers: balances, applications, refunds, approvals and "
    "closed months."
)
app.add_typer(model_app, name="model")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(ledger_app, name="ledger")

log = logging.getLogger("cashmatch.service")


def open_database(settings: Settings):
    """Return an engine on the configured database, migrated to the latest."""
    engine = make_engine(settings.database_url)
    migrate(engine)
    return engine


@contextmanager
def database() -> Iterator[tuple[Session, Settings]]:
    """Yield a session on the configured database, committed at the end.

    A CashmatchError inside ends the command with its message and exit
    code 1; the transaction is rolled back, so nothing is half-done.
    """
    settings = Settings()
    engine = open_database(settings)
    try:
        with session_scope(engine) as session:
            yield session, settings
    except CashmatchError as exc:
        fail(str(exc))
    finally:
        engine.dispose()


def fail(message: str, code: int = 1) -> None:
    """Print an error for the user and exit non-zero."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@app.callback()
def main(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Log debug messages to stderr too, such as the database migration",
        ),
    ] = False,
) -> None:
    """Cashmatch: cash application for bank statements."""
    from service.logging_setup import configure_logging

    configure_logging(logging.DEBUG if verbose else logging.INFO)


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    account: Annotated[
        Optional[str], typer.Option(help="Our account, when the file does not say")
    ] = None,
    profile: Annotated[
        Optional[str],
        typer.Option(help="Bank profile to read a CSV or Excel export with"),
    ] = None,
    currency: Annotated[
        Optional[str],
        typer.Option(
            help="The account's currency as an ISO 4217 code, such as EUR, for "
            "an account the import creates; default CASHMATCH_DEFAULT_CURRENCY"
        ),
    ] = None,
    time_zone: Annotated[
        Optional[str],
        typer.Option(
            help="The account's IANA time zone, such as Europe/Berlin, for an "
            "account the import creates; default CASHMATCH_TIME_ZONE"
        ),
    ] = None,
    skip_bad_lines: Annotated[
        bool, typer.Option(help="Import the readable lines and list the rest")
    ] = False,
    accept_unbalanced: Annotated[
        bool,
        typer.Option(
            help="Import a statement whose lines do not add up to its closing "
            "balance, and record the difference"
        ),
    ] = False,
) -> None:
    """Import a statement file; lines already imported are not added again.

    The whole file is imported in one transaction, or nothing is. An
    account that exists already must have the --currency and --time-zone
    given, if any.
    """
    from service.imports import import_file

    with database() as (session, settings):
        report = import_file(
            session,
            file,
            settings,
            account=account,
            profile=profile,
            currency=currency,
            time_zone=time_zone,
            skip_bad_lines=skip_bad_lines,
            accept_unbalanced=accept_unbalanced,
            actor="cli",
        )
    batches = ", ".join(str(batch_id) for batch_id in report.batch_ids)
    typer.echo(f"{report.summary()}; batch {batches or 'none'}")
    for detail in report.details():
        typer.echo(f"  {detail}")


@app.command("void")
def void(
    batch_id: Annotated[int, typer.Argument(help="The import batch to void")],
    reason: Annotated[
        str, typer.Option(help="Why the batch was wrong, for the audit log")
    ],
    actor: Annotated[
        Optional[str],
        typer.Option(help="Who voids the batch; default cli:<login name>"),
    ] = None,
) -> None:
    """Void a wrongly imported batch: its lines and their allocations are undone."""
    import getpass

    from service.voiding import void_batch

    if actor is None:
        try:
            actor = f"cli:{getpass.getuser()}"
        except (KeyError, OSError):  # no login name in this environment
            actor = "cli"
    with database() as (session, settings):
        report = void_batch(session, batch_id, actor=actor, reason=reason)
    typer.echo(report.summary())


@app.command("load")
def load_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            help="customers.csv, orders.csv, invoices.csv, or a folder holding them",
        ),
    ],
) -> None:
    """Load customers, orders and invoices exported by the ERP.

    Every file given is loaded, in one transaction: all customers files
    first, then orders, then invoices, each kind in the order given. A row
    in a later file updates the same row from an earlier one.
    """
    files = _master_files(paths)
    loaded = []
    with database() as (session, _settings):
        for kind, path in files:
            try:
                loaded.append((kind, _load_master_file(session, kind, path), path))
            except CashmatchError as exc:
                fail(f"{path}: {exc}; nothing was loaded")
    # Counts are printed only once the transaction has committed.
    for kind, report, path in loaded:
        typer.echo(f"{kind}: {report} ({path})")


MASTER_KINDS = ("customers", "orders", "invoices")


def _load_master_file(session: Session, kind: str, path: Path):
    from ingest import read_customers, read_invoices, read_orders
    from service import master

    if kind == "customers":
        return master.upsert_customers(session, read_customers(path))
    if kind == "orders":
        return master.upsert_orders(session, read_orders(path))
    return master.upsert_invoices(session, read_invoices(path))


def _master_files(paths: list[Path]) -> list[tuple[str, Path]]:
    """Return (kind, file) pairs in load order, each file once."""
    found: dict[str, list[Path]] = {kind: [] for kind in MASTER_KINDS}
    for path in paths:
        for kind, candidate in _master_candidates(path):
            if candidate.resolve() not in {f.resolve() for f in found[kind]}:
                found[kind].append(candidate)

    ordered = [(kind, path) for kind in MASTER_KINDS for path in found[kind]]
    if not ordered:
        names = ", ".join(str(p) for p in paths)
        fail(f"no customers.csv, orders.csv or invoices.csv in {names}")
    return ordered


def _master_candidates(path: Path) -> list[tuple[str, Path]]:
    if not path.is_dir():
        kind = path.stem.lower()
        if kind not in MASTER_KINDS:
            fail(
                f"file {path} is not customers.csv, orders.csv or invoices.csv; "
                "rename it to the kind of data it holds"
            )
        return [(kind, path)]

    found = []
    for candidate in sorted(path.glob("*.csv")):
        kind = candidate.stem.lower()
        if kind in MASTER_KINDS:
            found.append((kind, candidate))
    return found


@app.command("reconcile")
def reconcile_command(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    out: Annotated[
        Path, typer.Option(help="Where to write the allocations, as .csv or .xlsx")
    ] = Path("allocations.csv"),
    statement: Annotated[
        Optional[Path],
        typer.Option(
            exists=True,
            dir_okay=False,
            help="The statement file, when it is not the folder's statement.*",
        ),
    ] = None,
    database: Annotated[
        Optional[str],
        typer.Option(
            help="Database URL to keep the results in; default is a temporary database"
        ),
    ] = None,
) -> None:
    """Match a case folder's statement and write the allocations output."""
    from service.reconcile import reconcile

    settings = Settings()
    try:
        report = reconcile(
            folder,
            out=out,
            statement=statement,
            database_url=database,
            settings=settings,
        )
    except CashmatchError as exc:
        fail(str(exc))
    decided = ", ".join(f"{n} {d}" for d, n in sorted(report.decisions.items()))
    typer.echo(
        f"{report.lines} lines ({decided or 'none new'}); model {report.model_version} "
        f"from {report.model_source}; wrote {out}"
    )


@app.command("match")
def match_command(
    account: Annotated[
        Optional[str], typer.Option(help="Only lines of this account")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Suggest only; book nothing")] = False,
) -> None:
    """Match every stored line that has not been matched yet."""
    from service.matching import match_lines
    from service.serving import current_model

    with database() as (session, settings):
        query = select(StatementLine).where(StatementLine.status == "new")
        if account:
            query = query.where(StatementLine.account == account)
        lines = list(session.exec(query.order_by(StatementLine.id)).all())
        model = current_model(session, settings)
        outcomes = match_lines(session, lines, model, settings, dry_run=dry_run)
        if dry_run:
            session.rollback()
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.decision] = counts.get(outcome.decision, 0) + 1
    summary = ", ".join(f"{n} {d}" for d, n in sorted(counts.items())) or "nothing new"
    stored = "dry run, nothing stored" if dry_run else "booked and stored"
    typer.echo(
        f"matched {len(outcomes)} lines with model {model.version}: {summary} ({stored})"
    )


@app.command("explain")
def explain_command(
    line_ref: Annotated[
        Optional[str], typer.Argument(help="The line_ref of a stored line")
    ] = None,
    account: Annotated[
        Optional[str], typer.Option(help="Account, when the line_ref is not unique")
    ] = None,
    line_id: Annotated[
        Optional[int],
        typer.Option(help="The id of a stored line, in place of its line_ref"),
    ] = None,
) -> None:
    """Print a line's candidates with their scores and reasons."""
    from service.explain import AmbiguousLineRef, explain_line, find_line
    from service.review import get_line

    if line_ref is not None and line_id is not None:
        fail("give a LINE_REF or --line-id, not both")
    if line_ref is None and line_id is None:
        fail("missing LINE_REF; name the line by its line_ref or with --line-id")
    with database() as (session, settings):
        if line_id is not None:
            line = get_line(session, line_id)
        else:
            try:
                line = find_line(session, line_ref, account=account)
            except AmbiguousLineRef as exc:
                fail(_ambiguous_ref_hint(exc, account))
        text = explain_line(session, settings, line)
    typer.echo(text)


def _ambiguous_ref_hint(exc, account: str | None) -> str:
    hint = f"{exc}; pick one with --line-id, such as --line-id {exc.line_ids[0]}"
    if account is None and len(exc.accounts) > 1:
        hint += f", or name its account with --account {exc.accounts[0]}"
    return hint


@app.command("train")
def train_command(
    case: Annotated[
        Optional[Path],
        typer.Option(
            exists=True, file_okay=False, help="Train from this case folder's history"
        ),
    ] = None,
    promote_model: Annotated[
        bool,
        typer.Option(
            "--promote/--no-promote",
            help="Serve the new model when it beats the serving one on the "
            "latest period",
        ),
    ] = True,
    force: Annotated[
        bool, typer.Option(help="Serve the new model even when it does not")
    ] = False,
    eval_from: Annotated[
        Optional[datetime],
        typer.Option(
            formats=["%Y-%m-%d"],
            help="First booking date of the evaluation period (YYYY-MM-DD); "
            "default: the latest share set by CASHMATCH_EVAL_SHARE",
        ),
    ] = None,
) -> None:
    """Train from reviewed labels (or a case history), evaluate and register.

    The model trains on the older labelled lines and is evaluated, like the
    serving model, on the latest period. Exits with code 1, naming how many
    labelled lines are needed, when there are too few.
    """
    from service.train import train_with_engine

    settings = Settings()
    engine = open_database(settings)
    try:
        result = train_with_engine(
            engine,
            settings,
            case=case,
            promote_new=promote_model,
            force=force,
            eval_from=eval_from.date() if eval_from else None,
            actor="cli",
        )
    except CashmatchError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    typer.echo(result.summary())


@model_app.command("list")
def model_list() -> None:
    """List trained models, newest first; `*` marks the serving one.

    The figures are those of the latest period the model was evaluated on.
    """
    from training.registry import list_models

    with database() as (session, settings):
        for row in list_models(session):
            typer.echo(_model_line(row))


def _model_line(row) -> str:
    metrics = row.metrics or {}

    def shown(name: str) -> str:
        value = metrics.get(name)
        return f"{100 * value:.1f} %" if isinstance(value, float) else "-"

    mark = "*" if row.status == "serving" else " "
    return (
        f"{mark} {row.version}  {row.status:<11} {row.source:<16} "
        f"accuracy {shown('eval_allocation_accuracy'):>7}  "
        f"automation {shown('eval_automation_rate'):>7}  "
        f"precision {shown('eval_auto_precision'):>7}  "
        f"{row.created_at:%Y-%m-%d %H:%M}"
    )


@model_app.command("promote")
def model_promote(version: Annotated[str, typer.Argument()]) -> None:
    """Serve this model version; the API picks it up without a restart."""
    from training.registry import promote

    with database() as (session, settings):
        row = promote(session, version, actor="cli")
        registry_version = row.registry_version
    _move_serving_alias(settings, registry_version)
    typer.echo(f"model {version} now serves")


@model_app.command("rollback")
def model_rollback() -> None:
    """Serve the model that served before the current one."""
    from training.registry import rollback

    with database() as (session, settings):
        row = rollback(session, actor="cli")
        version, registry_version = row.version, row.registry_version
    _move_serving_alias(settings, registry_version)
    typer.echo(f"model {version} now serves")


def _move_serving_alias(settings: Settings, registry_version: str | None) -> None:
    # The alias follows the database, so it moves only after the commit.
    if registry_version:
        from training.registry import set_serving_alias

        set_serving_alias(
            settings.mlflow_tracking_uri,
            settings.mlflow_registry_name,
            registry_version,
        )


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Run the HTTP API with the review page at /review.

    Logs are JSON lines when CASHMATCH_LOG_FORMAT=json, plain text otherwise.
    """
    import uvicorn

    from service.logging_setup import configure_logging as configure_log_format
    from service.logging_setup import uvicorn_log_config

    configure_log_format()
    settings = Settings()
    open_database(settings).dispose()
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        log_config=uvicorn_log_config(),
    )


@app.command("demo")
def demo_command(
    folder: Annotated[
        Path, typer.Option(help="Where to write the demo company")
    ] = Path("data/demo"),
    customers: Annotated[int, typer.Option(min=5)] = 120,
    lines: Annotated[int, typer.Option(min=20)] = 600,
    seed: Annotated[int, typer.Option()] = 7,
    serve: Annotated[
        bool,
        typer.Option("--serve/--no-serve", help="Serve on 127.0.0.1:8000 afterwards"),
    ] = False,
) -> None:
    """Generate a demo company, train, match its statement and print a summary."""
    from service.demo import run_demo

    with database() as (session, settings):
        summary = run_demo(
            session,
            settings,
            folder=folder,
            customers=customers,
            lines=lines,
            seed=seed,
        )
    typer.echo(summary)
    if serve:
        typer.echo(
            "serving on http://127.0.0.1:8000 (review page /review, API docs /docs); Ctrl-C stops"
        )
        serve_command(host="127.0.0.1", port=8000, workers=1)


@app.command("report")
def report_command(
    name: Annotated[
        str,
        typer.Argument(
            help="status, balances, unmatched, anomalies, customer-anomalies, "
            "reminders or reconciliation"
        ),
    ] = "status",
    out: Annotated[
        Optional[Path],
        typer.Option(
            help="Write the report to this .csv or .xlsx file; for status, the "
            "allocations of every stored line"
        ),
    ] = None,
    as_of: Annotated[
        Optional[str],
        typer.Option(
            help="Count balances and age money as of this day "
            "(YYYY-MM-DD, default today)"
        ),
    ] = None,
    account: Annotated[
        Optional[str],
        typer.Option(help="Our bank account, for unmatched and reconciliation"),
    ] = None,
    month: Annotated[
        Optional[str], typer.Option(help="The month to reconcile, YYYY-MM")
    ] = None,
) -> None:
    """Print a report, or write it as CSV or XLSX with --out."""
    from service import reports
    from service.exports import check_table_suffix

    if name not in reports.ALL_REPORT_NAMES:
        fail(
            f"report {name!r} not found; use one of "
            f"{', '.join(reports.ALL_REPORT_NAMES)}"
        )
    if out is not None:
        try:
            check_table_suffix(out)
        except CashmatchError as exc:
            fail(str(exc))

    if name == reports.STATUS_REPORT:
        with database() as (session, _settings):
            typer.echo(reports.status_report(session, out=out))
        return
    with database() as (session, settings):
        text = _named_report(session, settings, name, out, as_of, account, month)
    typer.echo(text)


def _named_report(session, settings, name, out, as_of, account, month) -> str:
    from service import ledger, reports
    from service.exports import csv_text, write_table

    options = reports.ReportOptions(
        as_of=_day(as_of) or ledger.local_today(settings.time_zone),
        unused_days=settings.unused_balance_days,
        fee_max=settings.fee_max,
        account=account,
        month=month,
    )
    columns, rows = reports.report_table(session, name, options)
    if out is None:
        return csv_text(rows, columns).rstrip("\r\n")
    count = write_table(rows, columns, out, title=name)
    return f"wrote {count} {name} rows to {out}"


def _day(text: str | None):
    from datetime import date

    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"day {text!r} is not a date like 2025-06-30")


@keys_app.command("create")
def keys_create(
    name: Annotated[
        str, typer.Argument(help="User or service account that owns the key")
    ],
    role: Annotated[str, typer.Option(help="erp, clerk, analyst or admin")] = "erp",
) -> None:
    """Create an API key; it is shown once and stored only as a hash."""
    from service.auth import create_api_key

    with database() as (session, settings):
        key = create_api_key(session, name, role=role, actor="cli")
    typer.echo(key)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[
        str, typer.Argument(help="The key's first characters, as `keys list` shows")
    ],
) -> None:
    """Revoke an API key."""
    from service.auth import revoke_api_key

    with database() as (session, settings):
        revoke_api_key(session, prefix, actor="cli")
    typer.echo(f"revoked key {prefix}")


@keys_app.command("list")
def keys_list() -> None:
    """List API keys by prefix, owner and role."""
    from service.auth import list_api_keys

    with database() as (session, settings):
        for key in list_api_keys(session):
            state = "revoked" if key.revoked_at else "active"
            typer.echo(f"{key.prefix}  {key.user_name:<20} {key.role:<8} {state}")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Sign-in name")],
    role: Annotated[str, typer.Option(help="clerk, analyst, admin or erp")] = "clerk",
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="At least 8 characters; asked for when not given",
        ),
    ] = ...,
) -> None:
    """Add a user, or change a user's role and password; stored hashed."""
    from service.auth import upsert_user

    with database() as (session, _settings):
        upsert_user(session, name, role=role, password=password)
    typer.echo(f"user {name} ({role}) saved")



# The prepayment ledger ------------------------------------------------------------

Actor = Annotated[
    Optional[str], typer.Option(help="Who acts, for the audit log; default cli:<login>")
]
UserActor = Annotated[
    Optional[str],
    typer.Option(
        help="The user who acts, as added with `cashmatch users add`; default is "
        "your login name"
    ),
]
Note = Annotated[str, typer.Option(help="A note kept with the entry")]
BookedOn = Annotated[
    Optional[str], typer.Option(help="Book on this day, YYYY-MM-DD; default today")
]


def _actor(actor: str | None) -> str:
    import getpass

    if actor:
        return actor
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in this environment
        return "cli"


def _user_actor(session: Session, actor: str | None, permission: str) -> str:
    """Return the name of the acting user, or raise AuthError.

    The user must exist, be active and have a role with `permission`, as
    an API key's owner must for the same route.
    """
    import getpass

    from service.auth import active_user

    if actor is None:
        try:
            actor = getpass.getuser()
        except (KeyError, OSError):  # no login name in this environment
            fail("no login name found; name the acting user with --actor")
    return active_user(session, actor, permission).name


def _money(text: str):
    from models.money import to_money

    try:
        amount = to_money(text)
    except ValueError as exc:
        fail(f"{exc}; write an amount like 1250.00")
    if amount <= 0:
        fail(f"amount {amount} must be positive")
    return amount


def _ledger_today(settings) -> object:
    from service import ledger

    return ledger.local_today(settings.time_zone)


@ledger_app.command("show")
def ledger_show(customer_id: Annotated[str, typer.Argument()]) -> None:
    """Print a customer's balance, ledger entries and open requests."""
    from service import ledger

    with database() as (session, _settings):
        view = ledger.customer_ledger(session, customer_id)
    typer.echo(f"{view.customer_id} {view.name}: balance {view.balance}")
    for entry in view.entries:
        target = entry.order_id or entry.invoice_id or ""
        typer.echo(
            f"  #{entry.id} {ledger.entry_day(entry)} {entry.kind:<11} "
            f"{entry.amount:>12} {target:<12} {entry.actor}  {entry.note}"
        )
    for request in view.requests:
        typer.echo(
            f"  request {request.id}: {request.kind} {request.amount} "
            f"{request.status}, asked by {request.requested_by}"
        )


@ledger_app.command("apply")
def ledger_apply(
    customer_id: Annotated[str, typer.Argument()],
    amount: Annotated[str, typer.Argument(help="The amount of the balance to apply")],
    order: Annotated[Optional[str], typer.Option(help="The order to pay")] = None,
    invoice: Annotated[
        Optional[str], typer.Option(help="The invoice whose orders to pay")
    ] = None,
    note: Note = "",
    booked_on: BookedOn = None,
    actor: Actor = None,
) -> None:
    """Apply part of a customer's balance to an order or an invoice."""
    from service import ledger

    with database() as (session, settings):
        entries = ledger.apply_balance(
            session,
            customer_id=customer_id,
            amount=_money(amount),
            actor=_actor(actor),
            today=_ledger_today(settings),
            order_id=order,
            invoice_id=invoice,
            note=note,
            booked_on=_day(booked_on),
        )
        balance = ledger.balance(session, customer_id)
    for entry in entries:
        typer.echo(f"applied {-entry.amount} to order {entry.order_id}")
    typer.echo(f"{customer_id}'s balance is now {balance}")


@ledger_app.command("refund")
def ledger_refund(
    customer_id: Annotated[str, typer.Argument()],
    amount: Annotated[str, typer.Argument()],
    source_line: Annotated[
        Optional[int], typer.Option(help="Id of the line marked for refund")
    ] = None,
    payment_line: Annotated[
        Optional[int], typer.Option(help="Id of the money-out line that paid it")
    ] = None,
    note: Note = "",
    booked_on: BookedOn = None,
    actor: UserActor = None,
) -> None:
    """Request a refund; above the approval limit it waits for a second user."""
    from service import controls

    with database() as (session, settings):
        request = controls.request_refund(
            session,
            customer_id=customer_id,
            amount=_money(amount),
            actor=_user_actor(session, actor, "confirm"),
            limit=settings.approval_limit,
            today=_ledger_today(settings),
            note=note,
            source_line_id=source_line,
            payment_line_id=payment_line,
            booked_on=_day(booked_on),
        )
    typer.echo(_request_text(request))


@ledger_app.command("write-off")
def ledger_write_off(
    customer_id: Annotated[str, typer.Argument()],
    amount: Annotated[str, typer.Argument()],
    note: Note = "",
    booked_on: BookedOn = None,
    actor: UserActor = None,
) -> None:
    """Request a write-off; above the approval limit it waits for a second user."""
    _taking_command(customer_id, "write_off", amount, None, note, booked_on, actor)


@ledger_app.command("fee")
def ledger_fee(
    customer_id: Annotated[str, typer.Argument()],
    amount: Annotated[str, typer.Argument()],
    line: Annotated[
        Optional[int], typer.Option(help="Id of the bank's money-out fee line")
    ] = None,
    note: Note = "",
    booked_on: BookedOn = None,
    actor: UserActor = None,
) -> None:
    """Charge a bank fee to a customer's balance."""
    _taking_command(customer_id, "fee", amount, line, note, booked_on, actor)


def _taking_command(customer_id, kind, amount, line, note, booked_on, actor) -> None:
    from service import controls

    with database() as (session, settings):
        request = controls.request_taking(
            session,
            customer_id=customer_id,
            kind=kind,
            amount=_money(amount),
            actor=_user_actor(session, actor, "confirm"),
            limit=settings.approval_limit,
            today=_ledger_today(settings),
            note=note,
            line_id=line,
            booked_on=_day(booked_on),
        )
    typer.echo(_request_text(request))


def _request_text(request) -> str:
    text = (
        f"request {request.id}: {request.kind} of {request.amount} for "
        f"{request.customer_id} is {request.status}"
    )
    if request.status == "pending":
        text += "; another user must approve it"
    return text


@ledger_app.command("requests")
def ledger_requests(
    status: Annotated[
        Optional[str], typer.Option(help="pending, approved, rejected or cancelled")
    ] = "pending",
) -> None:
    """List refund, write-off and fee requests, newest first."""
    from service import controls

    with database() as (session, _settings):
        found = controls.list_requests(session, status=status)
    for request in found:
        typer.echo(
            f"{request.id}  {request.kind:<9} {request.amount:>12} "
            f"{request.customer_id:<12} {request.status:<9} by {request.requested_by}"
        )


@ledger_app.command("approve")
def ledger_approve(
    request_id: Annotated[int, typer.Argument()],
    reason: Annotated[str, typer.Option(help="The reason, kept in the audit log")] = "",
    actor: UserActor = None,
) -> None:
    """Approve another user's pending request and book it."""
    from service import controls

    with database() as (session, settings):
        request = controls.approve_request(
            session,
            request_id,
            actor=_user_actor(session, actor, "review"),
            today=_ledger_today(settings),
            reason=reason,
        )
    typer.echo(_request_text(request))


@ledger_app.command("reject")
def ledger_reject(
    request_id: Annotated[int, typer.Argument()],
    reason: Annotated[str, typer.Option(help="The reason, kept in the audit log")] = "",
    actor: UserActor = None,
) -> None:
    """Reject a pending request; nothing is booked."""
    from service import controls

    with database() as (session, _settings):
        request = controls.reject_request(
            session,
            request_id,
            actor=_user_actor(session, actor, "review"),
            reason=reason,
        )
    typer.echo(_request_text(request))


@ledger_app.command("pay")
def ledger_pay(
    request_id: Annotated[int, typer.Argument()],
    line_id: Annotated[int, typer.Argument(help="Id of the money-out line")],
    actor: Actor = None,
) -> None:
    """Record the money-out statement line that paid an approved refund."""
    from service import controls

    with database() as (session, _settings):
        request = controls.pay_refund(session, request_id, line_id, actor=_actor(actor))
    typer.echo(f"request {request.id} paid by line {request.payment_line_id}")


@ledger_app.command("reverse")
def ledger_reverse(
    entry_id: Annotated[int, typer.Argument()],
    reason: Annotated[str, typer.Option(help="The reason, kept in the audit log")],
    amount: Annotated[
        Optional[str], typer.Option(help="Reverse only this much; default all")
    ] = None,
    booked_on: BookedOn = None,
    actor: Actor = None,
) -> None:
    """Reverse an application, fee or write-off with a new entry."""
    from service import ledger

    with database() as (session, settings):
        reversal = ledger.reverse_entry(
            session,
            entry_id,
            actor=_actor(actor),
            reason=reason,
            today=_ledger_today(settings),
            amount=_money(amount) if amount else None,
            booked_on=_day(booked_on),
        )
    typer.echo(
        f"entry {reversal.id} reverses {reversal.amount} of entry {entry_id}, "
        f"booked on {reversal.booked_on}"
    )


@ledger_app.command("close-month")
def ledger_close_month(
    month: Annotated[str, typer.Argument(help="YYYY-MM")],
    note: Note = "",
    actor: Actor = None,
) -> None:
    """Close a month that has ended; nothing can be booked in it afterwards."""
    from service import controls

    with database() as (session, settings):
        row = controls.close_month(
            session,
            month,
            actor=_actor(actor),
            today=_ledger_today(settings),
            note=note,
        )
    typer.echo(f"month {row.month} closed by {row.closed_by}")


@ledger_app.command("months")
def ledger_months() -> None:
    """List the closed months."""
    from service import ledger

    with database() as (session, _settings):
        for row in ledger.closed_months(session):
            typer.echo(
                f"{row.month}  closed by {row.closed_by} at {row.closed_at:%Y-%m-%d}"
            )


@ledger_app.command("check-invoice")
def ledger_check_invoice(invoice_id: Annotated[str, typer.Argument()]) -> None:
    """Compare an invoice with what its orders were paid plus the balance."""
    from service import ledger

    with database() as (session, _settings):
        check = ledger.check_invoice(session, invoice_id)
    state = "covered" if check.covered else f"short by {check.shortfall}"
    typer.echo(
        f"invoice {check.invoice_id} of {check.amount}: paid to its orders "
        f"{check.paid_to_orders}, counted by earlier invoices "
        f"{check.already_invoiced}, balance left {check.prepayment_balance}; "
        f"{state}"
    )


if __name__ == "__main__":
    app()
