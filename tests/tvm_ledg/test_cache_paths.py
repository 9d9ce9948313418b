"""Every default cache path follows one root, so ``TVM_LEDG_CACHE_DIR`` or ``XDG_CACHE_HOME`` moves them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from tvm_ledg.collect import default_store_path
from tvm_ledg.predict import default_graph_cache


@pytest.mark.parametrize("variable, root", [("TVM_LEDG_CACHE_DIR", "{tmp}"), ("XDG_CACHE_HOME", "{tmp}/tvm-ledg")])
def test_default_caches_share_the_root(monkeypatch, tmp_path: Path, variable: str, root: str) -> None:
    monkeypatch.delenv("TVM_LEDG_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv(variable, str(tmp_path))
    expected = Path(root.format(tmp=tmp_path))
    assert default_graph_cache() == expected / "graphs"
    assert default_store_path() == expected / "measurements.sqlite"
