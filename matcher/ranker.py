"""The LightGBM lambdarank model that orders a line's candidates."""

from __future__ import annotations

import numpy as np
from lightgbm import LGBMRanker
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted


class CandidateRanker(BaseEstimator):
    """Score candidates so the right one of each line comes first.

    Parameters follow LightGBM's. One thread by default: on a busy machine
    OpenMP threads contend, and one line's few dozen rows gain nothing from
    more.
    """

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        learning_rate: float = 0.08,
        num_leaves: int = 15,
        min_child_samples: int = 20,
        max_bin: int = 63,
        random_state: int = 0,
        n_jobs: int = 1,
    ):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.max_bin = max_bin
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y, *, group, feature_names=None) -> "CandidateRanker":
        """Fit on candidate rows `X`, 0/1 labels `y` and query sizes `group`.

        `group[i]` is the number of rows of the i-th line; rows of one line
        are contiguous.
        """
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.int32)
        group = np.asarray(group, dtype=np.int32)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(
                f"X must be 2-D with one row per label; got {X.shape} and {len(y)}"
            )
        if int(group.sum()) != len(X):
            raise ValueError(
                f"group sizes add up to {int(group.sum())}, not {len(X)} rows"
            )

        self.model_ = LGBMRanker(
            objective="lambdarank",
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            max_bin=self.max_bin,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
        self.model_.fit(X, y, group=group)
        self.n_features_in_ = X.shape[1]
        self.feature_names_ = tuple(feature_names or ())
        return self

    def predict(self, X) -> np.ndarray:
        """Return one score per candidate row; higher is better."""
        # sklearn's full check costs more than scoring one line's rows, so
        # it runs only to raise its NotFittedError.
        if not hasattr(self, "model_"):
            check_is_fitted(self, "model_")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"expected {self.n_features_in_} features per row, got {X.shape}"
            )
        # The booster directly: the scikit-learn wrapper's checks cost more
        # than scoring the few dozen candidates of one line.
        return self.model_.booster_.predict(X, num_threads=1)

    def feature_importance(self) -> dict[str, float]:
        """Return the gain importance of each feature by name."""
        check_is_fitted(self, "model_")
        gains = self.model_.booster_.feature_importance(importance_type="gain")
        names = self.feature_names_ or tuple(f"f{i}" for i in range(len(gains)))
        return dict(zip(names, (float(g) for g in gains)))
