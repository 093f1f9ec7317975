"""The model that serves: loaded once per version, reloaded when it changes."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from matcher.pipeline import MatchModel
from service.settings import Settings
from training.registry import (
    load_model,
    promote,
    record_model,
    save_model,
    serving_row,
)

log = logging.getLogger("cashmatch.service")

_lock = threading.Lock()
_loaded: dict[str, MatchModel] = {}


def current_model(session: Session, settings: Settings) -> MatchModel:
    """Return the serving model, installing the cold-start model if none serves.

    The serving version is read from the database on every call, so a model
    promoted by another process is picked up without a restart.
    """
    row = serving_row(session)
    if row is None:
        return install_cold_start(session, settings)
    with _lock:
        model = _loaded.get(row.version)
        if model is None:
            model = load_model(Path(row.path))
            _loaded.clear()
            _loaded[row.version] = model
            log.info("loaded model %s from %s", row.version, row.path)
    return model


def install_cold_start(session: Session, settings: Settings) -> MatchModel:
    """Record the cold-start model and make it serve.

    Two processes starting at once may both get here; the second one's insert
    fails on the primary key, and it then serves what the first recorded.
    """
    from training.cold_start import cold_start_model

    model = cold_start_model(settings.cold_start_cache)
    path = save_model(model, settings.model_dir)
    try:
        with session.begin_nested():
            record_model(session, model, path, source="cold_start")
            promote(session, model.version, actor="system")
    except IntegrityError:
        log.warning("model %s was recorded by another process", model.version)
        if serving_row(session) is None:
            promote(session, model.version, actor="system")
    with _lock:
        _loaded.clear()
        _loaded[model.version] = model
    return model
