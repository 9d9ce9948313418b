"""One error hierarchy for the whole project.

It lives in the lowest layer (``targets`` imports nothing of ours) so that
``cost_model`` and ``tvm_ledg`` can raise and catch the same classes without
breaking the one-way dependency ``tvm_ledg -> cost_model -> targets``.
"""

from __future__ import annotations

__all__ = [
    "LedgError",
    "TargetError",
    "GraphError",
    "ModelImportError",
    "UnsupportedOperatorError",
    "CheckpointError",
    "DataError",
    "ArgumentError",
    "OutputError",
]


class LedgError(Exception):
    """Base class of every domain error; the CLI prints these as one line."""


class TargetError(LedgError, ValueError):
    """A target descriptor is missing, malformed or fails validation."""


class GraphError(LedgError, ValueError):
    """An operator graph is malformed (bad JSON, dangling edge, cycle...)."""


class ModelImportError(LedgError):
    """A network could not be loaded or lowered (missing file, corrupt ONNX, dynamic shapes...)."""


class UnsupportedOperatorError(ModelImportError):
    """A frontend met an operator it cannot convert; the message names the operator."""


class CheckpointError(LedgError):
    """A cost-model checkpoint is missing, corrupted or incompatible."""


class DataError(LedgError):
    """A dataset file is missing or does not have the expected layout."""


class ArgumentError(LedgError, ValueError):
    """A command-line option, config entry or call argument is rejected (unknown name, bad value, bad combination).

    Kept apart from :class:`DataError` so that a caller can tell "you asked for
    something wrong" from "the data on disk is wrong"; the CLI prints both as one line.
    """


class OutputError(LedgError, OSError):
    """An output file cannot be written (a folder in its place, no permission, a full disk...).

    Also an ``OSError``, so code that treats a failed write as optional keeps doing so.
    """
