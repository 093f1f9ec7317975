"""The cold-start model: trained on a generated case, cached on disk.

A company without labelled history still needs a ranker. This one is
trained at first use on a synthetic case with a fixed seed and pickled, so
later runs load it. Nothing is downloaded. The cache file name carries a
fingerprint of the feature list, the generator settings and the code that
shapes the model, so a change trains a new model instead of loading a
stale one.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import pickle
import tempfile
import time
from pathlib import Path

from features.pairs import FEATURE_NAMES
from matcher.pipeline import MatchModel
from models.errors import CashmatchError

log = logging.getLogger("cashmatch.training")

COLD_START_CASE = {
    "seed": 20240,
    "customers": 150,
    "open_orders": 2250,
    "lines": 0,
    "history_lines": 4000,
}
_FORMAT = 2
_loaded: dict[Path, MatchModel] = {}


def default_cache_dir() -> Path:
    """Return the cache folder of the cold-start model.

    $CASHMATCH_COLD_START_DIR wins, then $CASHMATCH_CACHE_DIR, then the
    user cache ($XDG_CACHE_HOME or ~/.cache, under cashmatch).
    """
    for variable in ("CASHMATCH_COLD_START_DIR", "CASHMATCH_CACHE_DIR"):
        configured = os.environ.get(variable)
        if configured:
            return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cashmatch"


def cold_start_model(cache_dir: Path | None = None) -> MatchModel:
    """Return the cold-start model, training and caching it at first use."""
    path = Path(cache_dir or default_cache_dir()) / f"cold-start-{_fingerprint()}.pkl"
    if path in _loaded:
        return _loaded[path]

    model = _load(path)
    if model is None:
        model = _train()
        _save(model, path)
    _loaded[path] = model
    return model


# The code that shapes the cold-start model: a change to any of these
# modules trains a new one.
_SHAPING_MODULES = (
    "features.pairs",
    "features.references",
    "features.text",
    "matcher.candidates",
    "training.case",
    "training.dataset",
    "training.synthetic",
    "training.synthetic_lines",
    "training.synthetic_memos",
    "training.vocabulary",
)


def _fingerprint() -> str:
    digest = hashlib.sha256()
    digest.update(
        repr((_FORMAT, FEATURE_NAMES, sorted(COLD_START_CASE.items()))).encode()
    )
    for name in _SHAPING_MODULES:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    return digest.hexdigest()[:12]


def _load(path: Path) -> MatchModel | None:
    if not path.exists():
        return None
    try:
        with path.open("rb") as handle:
            model = pickle.load(handle)
        model.check()
    except (
        OSError,
        EOFError,
        pickle.UnpicklingError,
        AttributeError,
        ImportError,
        TypeError,
        ValueError,
        CashmatchError,
    ) as exc:
        # A broken or stale cache file is rebuilt, never trusted.
        log.warning("cold-start model cache %s is unusable (%s); retraining", path, exc)
        return None
    return model


def _train() -> MatchModel:
    from training.case import train_from_history
    from training.synthetic import generate_case

    log.info("training the cold-start model on a generated case %s", COLD_START_CASE)
    started = time.perf_counter()
    case = generate_case(**COLD_START_CASE)
    model, _ = train_from_history(case.data)
    model.version = "cold-start-" + model.version
    log.info(
        "trained the cold-start model %s in %.1f s",
        model.version,
        time.perf_counter() - started,
    )
    return model


def _save(model: MatchModel, path: Path) -> None:
    """Write the model atomically, so concurrent first uses never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.NamedTemporaryFile(
            dir=path.parent, delete=False, suffix=".tmp"
        ) as handle:
            pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(handle.name, path)
    except OSError as exc:
        Path(handle.name).unlink(missing_ok=True)
        log.warning("could not cache the cold-start model at %s: %s", path, exc)
    else:
        log.info("cached the cold-start model %s at %s", model.version, path)
