"""The public-data guard, for every test.

Tests that read the public measured data (``../shared/data`` or
``$TVM_LEDG_DATA_ROOT``) carry ``@pytest.mark.data`` and are skipped when no
data root is found, so a fresh clone without the data passes. Every other test
runs with ``$TVM_LEDG_DATA_ROOT`` pointing at a directory that does not exist,
so a test that reads public data without the marker fails on every machine,
not only on the ones that happen to lack the data.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cost_model.data.public import DATA_ROOT_ENV, resolve_data_root
from targets.errors import DataError


def _find_data_root() -> tuple[Path | None, str]:
    try:
        return resolve_data_root(), ""
    except DataError as exc:
        return None, str(exc)


# Resolved once, before any fixture changes the environment.
DATA_ROOT, _WHY_NO_DATA = _find_data_root()


@pytest.fixture(autouse=True)
def _public_data_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                       tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip ``data`` tests without data; give them the resolved root; hide the data from all others."""
    if request.node.get_closest_marker("data") is not None:
        if DATA_ROOT is None:
            pytest.skip(f"public data not available: {_WHY_NO_DATA}")
        monkeypatch.setenv(DATA_ROOT_ENV, str(DATA_ROOT))
    else:
        hidden = tmp_path_factory.getbasetemp() / "no-public-data-for-tests-without-the-data-marker"
        monkeypatch.setenv(DATA_ROOT_ENV, str(hidden))
