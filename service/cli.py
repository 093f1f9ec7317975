"""The `cashmatch` command line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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
app.add_typer(model_app, name="model")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")

log = logging.getLogger("cashmatch.service")


def configure_logging(level: int = logging.INFO) -> None:
    """Send the `cashmatch` loggers to stderr, once."""
    root = logging.getLogger("cashmatch")
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)


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
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Cashmatch: cash application for bank statements."""
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

    The whole file is imported in one transaction, or nothing is.
    """
    from service.imports import import_file

    with database() as (session, settings):
        report = import_file(
            session,
            file,
            settings,
            account=account,
            profile=profile,
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
    """Load customers, orders and invoices exported by the ERP."""
    from ingest import read_customers, read_invoices, read_orders
    from service import master

    files = _master_files(paths)
    with database() as (session, settings):
        if "customers" in files:
            report = master.upsert_customers(
                session, read_customers(files["customers"])
            )
            typer.echo(f"customers: {report}")
        if "orders" in files:
            report = master.upsert_orders(session, read_orders(files["orders"]))
            typer.echo(f"orders: {report}")
        if "invoices" in files:
            report = master.upsert_invoices(session, read_invoices(files["invoices"]))
            typer.echo(f"invoices: {report}")


def _master_files(paths: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        candidates = path.glob("*.csv") if path.is_dir() else [path]
        for candidate in candidates:
            stem = candidate.stem.lower()
            if stem in ("customers", "orders", "invoices"):
                found[stem] = candidate
    if not found:
        names = ", ".join(str(p) for p in paths)
        fail(f"no customers.csv, orders.csv or invoices.csv in {names}")
    return found


@app.command("reconcile")
def reconcile_command(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    out: Annotated[
        Path, typer.Option(help="Where to write the allocations CSV")
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
    typer.echo(f"matched {len(outcomes)} lines with model {model.version}: {summary}")


@app.command("explain")
def explain_command(
    line_ref: Annotated[str, typer.Argument(help="The line_ref of a stored line")],
    account: Annotated[
        Optional[str], typer.Option(help="Account, when the line_ref is not unique")
    ] = None,
) -> None:
    """Print a line's candidates with their scores and reasons."""
    from service.explain import explain_line

    with database() as (session, settings):
        text = explain_line(session, settings, line_ref, account=account)
    typer.echo(text)


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
            help="Serve the new model when it is at least as good",
        ),
    ] = True,
    force: Annotated[
        bool, typer.Option(help="Serve the new model even when it scores lower")
    ] = False,
) -> None:
    """Train a model from reviewed labels (or a case history) and register it."""
    from service.train import train

    with database() as (session, settings):
        result = train(
            session, settings, case=case, promote_new=promote_model, force=force
        )
    typer.echo(result.summary())


@model_app.command("list")
def model_list() -> None:
    """List trained models, newest first; `*` marks the serving one."""
    from training.registry import list_models

    with database() as (session, settings):
        for row in list_models(session):
            mark = "*" if row.status == "serving" else " "
            accuracy = (row.metrics or {}).get("validation_top1_accuracy")
            shown = f"{accuracy:.3f}" if isinstance(accuracy, float) else "-"
            typer.echo(
                f"{mark} {row.version}  {row.status:<11} {row.source:<10} "
                f"top-1 {shown}  {row.created_at:%Y-%m-%d %H:%M}"
            )


@model_app.command("promote")
def model_promote(version: Annotated[str, typer.Argument()]) -> None:
    """Serve this model version."""
    from training.registry import promote

    with database() as (session, settings):
        promote(session, version, actor="cli")
    typer.echo(f"model {version} now serves")


@model_app.command("rollback")
def model_rollback() -> None:
    """Serve the model that served before the current one."""
    from training.registry import rollback

    with database() as (session, settings):
        row = rollback(session, actor="cli")
    typer.echo(f"model {row.version} now serves")


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Run the HTTP API with the review page at /review."""
    import uvicorn

    settings = Settings()
    open_database(settings).dispose()
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
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
    out: Annotated[
        Optional[Path],
        typer.Option(help="Write the allocations of every stored line to this CSV"),
    ] = None,
) -> None:
    """Print counts of lines by status and decision; optionally export rows."""
    from service.reports import status_report

    with database() as (session, settings):
        typer.echo(status_report(session, out=out))


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


if __name__ == "__main__":
    app()
