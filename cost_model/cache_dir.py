"""Where tvm-ledg keeps what it can recompute: one root, so every cache moves with one variable."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_root"]


def default_cache_root() -> Path:
    """``$TVM_LEDG_CACHE_DIR``, else ``$XDG_CACHE_HOME/tvm-ledg``, else ``~/.cache/tvm-ledg``."""
    env = os.environ.get("TVM_LEDG_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "tvm-ledg"
