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


def test_registry_reads_its_directory_once_and_user_files_every_time(tmp_path: Path, monkeypatch) -> None:
    import targets.registry as registry

    calls: list[Path] = []
    original = registry._read_descriptor
    monkeypatch.setattr(registry, "_read_descriptor", lambda path, loader: calls.append(path) or original(path, loader))
    shipped = registry.TargetRegistry(DESCRIPTOR_DIR)
    first = shipped.get("help:pixel3")
    assert shipped.get("help:pixel3") is first and shipped.list_names()
    assert len(calls) == len(list(DESCRIPTOR_DIR.glob("*.yaml")))

    user = tmp_path / "board.yaml"
    user.write_text(next(DESCRIPTOR_DIR.glob("*.yaml")).read_text())
    before = registry.load(user)
    user.write_text(user.read_text().replace(f"name: {before.name}", "name: my-board", 1))
    assert registry.load(user).name == "my-board"  # a file given by path is read fresh
