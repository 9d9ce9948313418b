"""The shipped descriptors are indexed with libyaml's parser: it must read them exactly as the pure-Python one."""

from __future__ import annotations

from pathlib import Path

import pytest

from targets.errors import TargetError
from targets.registry import DESCRIPTOR_DIR, _read_descriptor, _ShippedLoader, load_file


@pytest.mark.parametrize("path", sorted(DESCRIPTOR_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_loader_reads_each_descriptor_as_the_strict_one(path: Path) -> None:
    fast, strict = _read_descriptor(path, _ShippedLoader), load_file(path)
    assert fast.to_dict() == strict.to_dict()
    assert fast.content_hash() == strict.content_hash()


def test_shipped_loader_rejects_duplicate_keys_and_reads_bare_exponents(tmp_path: Path) -> None:
    text = next(DESCRIPTOR_DIR.glob("*.yaml")).read_text()
    duplicated = tmp_path / "dup.yaml"
    duplicated.write_text(text + "\nname: again\n")
    with pytest.raises(TargetError, match="duplicate key 'name'"):
        _read_descriptor(duplicated, _ShippedLoader)
    assert _ShippedLoader("x: 1e3").get_single_data() == {"x": 1000.0}
