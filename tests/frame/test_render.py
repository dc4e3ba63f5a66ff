"""Value summaries and the state tree: short, readable, never a tensor's data."""

from __future__ import annotations

import pytest

from statefire.frame import Counter, Feature, StateObject
from statefire.frame._render import render_tree, summarize


class Thing(Feature):
    category = "things"
    n = Counter()
    value = StateObject()


def test_scalars_and_strings():
    """Numbers show as themselves (floats to 6 significant digits); long strings are cut."""
    assert summarize(None) == "None"
    assert summarize(True) == "True"
    assert summarize(12) == "12"
    assert summarize(1 / 3) == "0.333333"
    assert summarize("short") == "'short'"
    long = summarize("x" * 200)
    assert long.endswith("...'") and len(long) <= 62


def test_long_containers_are_shortened():
    """Lists and tuples show 4 items and the count; big dicts their size; deep nesting its length."""
    assert summarize(list(range(10))) == "[0, 1, 2, 3, ... 10 items]"
    assert summarize((1,)) == "(1,)"
    assert summarize({"a": 1}) == "{'a': 1}"
    assert summarize({i: i for i in range(10)}) == "dict(10 keys)"
    assert summarize([[[1, 2, 3]]]) == "[[list(len=3)]]"


def test_tensors_show_shape_and_dtype_never_data():
    """A torch tensor is its shape and dtype; a 0-d tensor its value."""
    torch = pytest.importorskip("torch")
    assert summarize(torch.zeros(32, 10)) == "Tensor[32, 10] float32"
    assert summarize(torch.tensor(0.25)) == "tensor(0.25)"
    assert summarize((torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64))) == (
        "(Tensor[2, 3] float32, Tensor[2] int64)")


def test_features_and_callables_by_name(s):
    """A feature value shows as its class and name; a function as its qualified name."""
    thing = Thing(name="thing")
    assert summarize(thing) == "<Thing thing>"
    assert summarize(test_tensors_show_shape_and_dtype_never_data) == "test_tensors_show_shape_and_dtype_never_data"


def test_unreadable_repr_is_replaced_by_the_type():
    """An object with a very long repr shows as its type."""

    class Big:
        def __repr__(self):
            return "B" * 500

    assert summarize(Big()) == "<Big>"


def test_tree_of_features_with_long_values(s):
    """The tree lists categories, features and their `name=value` pairs, one pair per line when narrow."""
    thing = Thing(name="thing")
    thing.value = list(range(100))
    Thing(name="other").n = 7
    tree = render_tree(s, width=40)
    assert tree.splitlines()[:3] == ["State", "└─ things", "   ├─ thing (Thing)"]
    assert "value=[0, 1, 2, 3, ... 100 items]" in tree
    assert "n=7" in tree
    assert "n=0  value" not in tree  # 40 columns: the two pairs do not fit on one line
