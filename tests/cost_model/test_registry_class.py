import copy

import pytest

from cost_model.registry import Registry
from targets.errors import ArgumentError, CheckpointError


def test_entries_keep_their_registration_order():
    colours: Registry[int] = Registry("colour")
    assert colours.add("red", 1) == 1 and colours.add("blue", 2) == 2
    assert list(colours) == ["red", "blue"] and len(colours) == 2
    assert colours.lookup("red") == 1 and colours["blue"] == 2 and "green" not in colours
    assert dict(colours) == {"red": 1, "blue": 2}


def test_unknown_and_twice_registered_names_are_one_line_errors():
    colours: Registry[int] = Registry("colour")
    colours.add("red", 1)
    colours.add("blue", 2)
    with pytest.raises(ArgumentError, match=r"^unknown colour 'green'; expected one of red, blue$"):
        colours.lookup("green")
    with pytest.raises(ArgumentError, match="unknown colour"):
        colours.lookup(["red"])  # unhashable: unknown, not a TypeError
    with pytest.raises(ArgumentError, match=r"^colour 'red' is registered twice$"):
        colours.add("red", 3)
    assert colours["red"] == 1


def test_the_error_class_is_the_callers():
    kinds: Registry[str] = Registry("text encoder kind", error=CheckpointError)
    with pytest.raises(CheckpointError, match="unknown text encoder kind 'x'"):
        kinds.lookup("x")


def test_a_copy_registers_on_its_own():
    colours: Registry[int] = Registry("colour")
    colours.add("red", 1)
    clone = copy.copy(colours)
    clone.add("blue", 2)
    assert list(clone) == ["red", "blue"] and list(colours) == ["red"]
