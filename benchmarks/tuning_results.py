"""The results of the tuning-curve benchmark's runs, as kept in its part files (``<out>.parts/``).

One ``CurveRun`` per (workload, method, seed) measured tuning run and one ``PredictedRun`` per (workload, seed)
predicted-runner run. Each is written as one JSON object with the settings it was made with (``settings``), so
that a later invocation reuses it only under the same settings; ``from_json`` reads it back and names the file
when a field is missing.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, TypeVar

from targets.errors import DataError

__all__ = ["CurveRun", "PredictedRun"]

_Kept = TypeVar("_Kept", bound="_PartFile")


class _PartFile:
    """A dataclass kept as one JSON object, its fields as keys."""

    @classmethod
    def from_json(cls: type[_Kept], data: dict[str, Any], source: Path) -> _Kept:
        """The run kept in ``data``, read from ``source`` (named when a field is missing)."""
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        missing = [f.name for f in fields if f.name not in data]
        if missing:
            raise DataError(f"{source}: not a {cls.__name__} part file (missing {', '.join(missing)}); delete it "
                            "or choose another --out")
        return cls(**{f.name: data[f.name] for f in fields})

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclasses.dataclass
class CurveRun(_PartFile):
    """One measured tuning run: the run time of every measured trial in order (None: the candidate failed)
    and where the time went. Times of busy-machine retakes are taken out of the wall-clock ones."""

    workload: str
    method: str
    seed: int
    run_secs: list[float | None]
    best_schedule: dict[str, str] | None  # the fastest record (XGB runs only): timed again beside predicted ones
    best_ms: float  # inf when no trial ran
    wall_seconds: float
    round_seconds: list[float]  # wall-clock of each round of measured trials
    round_model_seconds: list[float]  # seconds in the cost model's predict + update, per round
    busy_retakes: int
    busy_wait_seconds: float
    checkpoint: str | None  # the pre-trained model's checkpoint (ledg-pretrained only)
    settings: dict[str, Any]


@dataclasses.dataclass
class PredictedRun(_PartFile):
    """One predicted-runner run: the ``predicted_ms`` of the schedules predicted fastest, ``measured_ms`` of the
    same schedules timed for real (inf: it failed) and XGB's best schedule of the same seed timed in the same
    runner call (None: that XGB run found none)."""

    workload: str
    seed: int
    wall_seconds: float
    checkpoint: str
    predicted_ms: list[float]
    measured_ms: list[float]
    xgb_remeasured_ms: float | None
    measure_errors: list[str]
    settings: dict[str, Any]

    def versus_xgb(self) -> tuple[float, float] | None:
        """XGB's best schedule as timed again here, and the measured predicted top-1 over it; None when XGB's was
        not timed or failed to run this time."""
        best = self.xgb_remeasured_ms
        if best is None or not math.isfinite(best):
            return None
        return best, self.measured_ms[0] / best
