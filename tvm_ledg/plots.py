"""Pictures of predictions for the CLI's ``--plot``: a target ranking and per-operator breakdowns.

matplotlib is an optional dependency (the ``plots`` extra) and costs about a
second to import, so it is imported only when a picture is drawn. Figures are
drawn on matplotlib's Agg canvas directly, without pyplot, so drawing changes
no global backend state of the calling program; the PNG is written atomically.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cost_model.io import write_bytes_atomic
from targets.errors import ArgumentError, OutputError
from tvm_ledg.predict import LatencyPrediction

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MAX_PANELS", "PREDICTED_COLOR", "MEASURED_COLOR", "check_plot_path", "plot_ranking", "plot_breakdown"]

MAX_PANELS = 12  # breakdown panels in one picture; more would be too small to read
PREDICTED_COLOR = "#1f77b4"
MEASURED_COLOR = "#d62728"
_KINDS_PER_PANEL = 12  # operator kinds drawn per panel; the rest are summed into "other"


def _new_figure(width: float, height: float) -> "Figure":
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ArgumentError("--plot needs matplotlib (pip install 'tvm-ledg[plots]')") from exc
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def check_plot_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, refused unless it names a PNG (checked before any prediction work is done)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ArgumentError(f"{path}: --plot writes PNG; name the file *.png")
    return path


def _save(fig: "Figure", path: str | os.PathLike[str]) -> None:
    path = check_plot_path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    try:
        write_bytes_atomic(path, buf.getvalue())
    except OSError as exc:  # a path the user cannot write to: one line, not a traceback
        raise OutputError(f"{path}: cannot write the plot ({exc.strerror or exc})") from exc


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def plot_ranking(model: str, ranked: Sequence[LatencyPrediction], path: str | os.PathLike[str], *,
                 measured_ms: Mapping[str, float] | None = None) -> "Figure":
    """Horizontal bars of each target's predicted latency for ``model``, fastest on top, on a log axis.

    A prediction with ``std_log`` gets a multiplicative error bar (latency / e^std to
    latency * e^std: one standard deviation in log space, symmetric on the log axis).
    A target in ``measured_ms`` (name -> measured median ms) gets a measured bar beside
    its predicted one. Writes a PNG to ``path`` and returns the figure.
    """
    if not ranked:
        raise ArgumentError("nothing to plot: no targets ranked")
    measured_ms = measured_ms or {}
    n = len(ranked)
    fig = _new_figure(8.0, 1.6 + 0.45 * n)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    pred = [r.latency_ms for r in ranked]
    spread = [math.exp(r.std_log) if r.std_log is not None else 1.0 for r in ranked]
    meas = [measured_ms.get(r.target) for r in ranked]
    lows = [p / s for p, s in zip(pred, spread)] + [m for m in meas if m is not None]
    base = 10 ** math.floor(math.log10(min(lows)) - 0.3)  # bars start a little left of the smallest value
    height = 0.38 if any(m is not None for m in meas) else 0.7
    y = list(range(n))
    y_pred = [i - height / 2 if meas[i] is not None else i for i in y]
    ax.barh(y_pred, [p - base for p in pred], height=height, left=base, color=PREDICTED_COLOR, label="predicted")
    uncertain = [i for i, r in enumerate(ranked) if r.std_log is not None]
    if uncertain:
        ax.errorbar([pred[i] for i in uncertain], [y_pred[i] for i in uncertain], fmt="none", ecolor="black",
                    capsize=3, elinewidth=1, label="x/ e^std_log (one std in log space)",
                    xerr=[[pred[i] - pred[i] / spread[i] for i in uncertain],
                          [pred[i] * spread[i] - pred[i] for i in uncertain]])
    for yi, p, s in zip(y_pred, pred, spread):
        ax.annotate(f"{p:.3g} ms" + (f" x/ {s:.2f}" if s != 1.0 else ""), (p * s, yi), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    done = [(i, m) for i, m in enumerate(meas) if m is not None]
    if done:
        ax.barh([i + height / 2 for i, _ in done], [m - base for _, m in done], height=height, left=base,
                color=MEASURED_COLOR, label="measured (median)")
        for i, m in done:
            ax.annotate(f"{m:.3g} ms", (m, i + height / 2), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=8)
    ax.set_yticks(y, [r.target for r in ranked])
    ax.invert_yaxis()  # fastest on top, as the table prints them
    ax.set_xlim(base, max([*(p * s for p, s in zip(pred, spread)), *(m for _, m in done)]) * 3)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_title(f"predicted latency per target\n{_short(model, 80)}", fontsize=9)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8)
    _save(fig, path)
    return fig


def _by_kind(prediction: LatencyPrediction) -> list[tuple[str, float]]:
    """``(op kind, ms)`` summed over the prediction's operators, largest first, the tail summed into "other"."""
    sums: dict[str, float] = {}
    for _, op, ms in prediction.operators:
        sums[op] = sums.get(op, 0.0) + ms
    kinds = sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(kinds) > _KINDS_PER_PANEL:
        rest = kinds[_KINDS_PER_PANEL - 1:]
        kinds = kinds[: _KINDS_PER_PANEL - 1] + [(f"other ({len(rest)} kinds)", sum(ms for _, ms in rest))]
    return kinds


def plot_breakdown(predictions: Sequence[LatencyPrediction], path: str | os.PathLike[str], *,
                   labels: Mapping[str, str] | None = None) -> "Figure":
    """One panel per prediction: predicted ms per operator kind (``nn.conv2d``, ``add``...), largest first.

    Each bar is the sum over the operators of that kind, with its share of the
    predicted latency. ``predictions`` need their full breakdown (``operators``);
    ``labels`` maps model names to the (shorter) names shown in panel titles. At
    most ``MAX_PANELS`` predictions: more is refused rather than drawn unreadably small.
    """
    if not predictions:
        raise ArgumentError("nothing to plot: no predictions")
    if len(predictions) > MAX_PANELS:
        raise ArgumentError(f"--plot draws one panel per prediction, at most {MAX_PANELS}; got {len(predictions)} "
                            "(models x targets): plot fewer, or write them all with --csv")
    if any(not p.operators for p in predictions):
        raise ArgumentError("--plot draws the per-operator breakdown: add --breakdown")
    labels = labels or {}
    cols = 1 if len(predictions) == 1 else 2
    rows = math.ceil(len(predictions) / cols)
    fig = _new_figure(7.0 * cols, 0.6 + 3.4 * rows)
    for k, p in enumerate(predictions):
        ax = fig.add_subplot(rows, cols, k + 1)
        kinds = _by_kind(p)
        ms = [v for _, v in kinds]
        ax.barh(range(len(kinds)), ms, color=PREDICTED_COLOR)
        ax.set_yticks(range(len(kinds)), [name for name, _ in kinds], fontsize=8)
        ax.invert_yaxis()
        for i, v in enumerate(ms):
            ax.annotate(f"{v:.3g} ms ({100 * v / p.latency_ms:.1f}%)", (v, i), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=7)
        ax.set_xlim(0, max(ms) * 1.45)
        ax.set_xlabel("predicted ms (sum per operator kind)", fontsize=8)
        ax.set_title(_short(labels.get(p.model, p.model), 60) + f"\n{p.target}: {p.latency_ms:.3g} ms", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    _save(fig, path)
    return fig
