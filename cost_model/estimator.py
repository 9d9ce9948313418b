"""The contract every latency model follows: ``LatencyPredictor`` and the baselines alike.

As in scikit-learn: the constructor stores its parameters under their own
names and does no work; ``get_params`` returns them; learned state lives in
attributes ending in ``_`` and ``fit`` starts by resetting all of it
(``_reset_fitted``), so fitting twice is the same as fitting a fresh object
once; ``predict`` starts with ``_check_fitted``. Rows are
``(graph_key, target_name, latency_ms)``; ``fit(graphs, targets, rows,
val_rows)`` returns the estimator and ``predict(graphs, targets, pairs)``
returns float64 milliseconds.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from cost_model.graph import OpGraph
from cost_model.registry import Registry
from cost_model.rows import Row
from targets.errors import CheckpointError
from targets.schema import TargetDescriptor

__all__ = ["LatencyEstimator", "BASELINES", "register_baseline"]


class LatencyEstimator(ABC):
    """Base class: ``fit`` / ``predict`` over latency rows, ``get_params``, one not-fitted guard.

    ``_fitted_attribute`` names the learned attribute that is None until ``fit``;
    ``_how_to_fit`` completes the not-fitted error message."""

    _fitted_attribute: str
    _how_to_fit = "call fit() first"

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters and their current values (read from the same-named attributes)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    @abstractmethod
    def _reset_fitted(self) -> None:
        """Set every learned attribute to its unfitted value (called by ``__init__`` and ``fit``)."""

    @abstractmethod
    def fit(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor], rows: Sequence[Row],
            val_rows: Sequence[Row] = ()) -> "LatencyEstimator":
        """Learn from ``rows``; ``val_rows`` may only steer training (early stopping), never test data."""

    @abstractmethod
    def predict(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Latency in ms (float64) of each ``(graph_key, target_name)`` pair."""

    def _check_fitted(self) -> None:
        if getattr(self, self._fitted_attribute) is None:
            raise CheckpointError(f"this {type(self).__name__} is not fitted; {self._how_to_fit}")


E = TypeVar("E", bound=type[LatencyEstimator])

BASELINES: Registry[type[LatencyEstimator]] = Registry("baseline")
"""Baseline classes by their ``name``; here, next to the contract they follow, so that every module
defining baselines can register them without importing the others (``cost_model.baselines.make_baseline``
builds one)."""


def register_baseline(cls: E) -> E:
    """Class decorator: register a baseline under its ``name`` attribute."""
    BASELINES.add(cls.name, cls)  # type: ignore[attr-defined]
    return cls
