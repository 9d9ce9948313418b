"""What the target conditioning reads of a descriptor: its prompt text and its feature vector.

With the roofline head, a target's peak compute already enters every kernel's
time through the bound ``t* = max(F / P, B / BW)``. Reading it (and the thread
count that sets it on a CPU) a second time in the conditioning lets the network
learn a free function of it, and with few training targets that function
extrapolates badly: on the measured zoo, a held-out 1-thread target was
predicted 2.6x too slow because the only 1-thread targets in training were
untuned TVM (validation folds, ``docs/results/validation_sweep/``).

``TARGET_INPUTS``:

* ``all``: the whole prompt (``TargetDescriptor.to_text``) and feature vector;
* ``no-throughput``: both without the peak compute figures and the thread
  count, which then reach the model only through the roofline bound;
* ``features-no-throughput``: the feature vector without them, and no prompt
  (one fixed text for every target), as the GraphSAGE baseline conditions.
"""

from __future__ import annotations

from targets.prompt import hardware_prompt
from targets.schema import FEATURE_NAMES, TargetDescriptor

__all__ = ["TARGET_INPUTS", "THROUGHPUT_FEATURES", "conditioning_text", "conditioning_features"]

TARGET_INPUTS: tuple[str, ...] = ("all", "no-throughput", "features-no-throughput")
THROUGHPUT_FEATURES: tuple[str, ...] = ("log_peak_fp32_tops", "log_peak_fp16_tops", "log_peak_int8_tops",
                                        "log_threads")
_THROUGHPUT_INDEX = tuple(FEATURE_NAMES.index(n) for n in THROUGHPUT_FEATURES)
_NO_PROMPT = "target"


def conditioning_text(desc: TargetDescriptor, inputs: str = "all") -> str:
    """The prompt the text encoder embeds for ``desc`` under ``inputs`` (one of ``TARGET_INPUTS``)."""
    if inputs == "all":
        return desc.to_text()
    if inputs == "no-throughput":
        return hardware_prompt(desc, throughput=False)
    if inputs == "features-no-throughput":
        return _NO_PROMPT
    raise ValueError(f"target inputs {inputs!r}: expected one of {TARGET_INPUTS}")


def conditioning_features(desc: TargetDescriptor, inputs: str = "all") -> tuple[list[float], list[float]]:
    """``(values, mask)`` of ``desc.to_features()``, the throughput features unknown unless ``inputs == "all"``."""
    if inputs not in TARGET_INPUTS:
        raise ValueError(f"target inputs {inputs!r}: expected one of {TARGET_INPUTS}")
    values, mask = desc.to_features()
    if inputs != "all":
        for i in _THROUGHPUT_INDEX:
            values[i] = mask[i] = 0.0
    return values, mask
