"""Reading and writing files safely: atomic writes and JSON with errors that name the file.

Every file the project writes (graphs, checkpoints' configs, caches, exports,
reports) goes through ``write_bytes_atomic`` so that a crash or Ctrl-C leaves
the old file or the new one, never half of one; every JSON file it reads goes
through ``read_json`` so that a missing or broken file is reported in the
caller's own error class, with the path.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from targets.errors import LedgError, OutputError

__all__ = ["write_bytes_atomic", "write_text_atomic", "read_json"]


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``.

    A crash leaves either the old file or the new one, never half of one. Missing
    folders are created, as for every output; a path that cannot be written is an
    ``OutputError`` naming it, found before anything is written when a folder is
    in the way.
    """
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file path")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            where = f": {exc.filename}" if exc.filename and exc.filename not in (str(path), tmp) else ""
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc}{where})") from exc
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Text form of ``write_bytes_atomic`` (UTF-8)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def read_json(path: Path, error: type[LedgError], missing: str = "no such file") -> Any:
    """The parsed JSON in ``path``; a missing file (``missing`` says why it should be there) or invalid JSON
    raises ``error`` naming the path, so each caller reports in its own error class."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise error(f"{path}: {missing}") from exc
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON ({exc})") from exc
