"""GraphStore: put/get round trip, corruption is reported."""

import pytest

from cost_model.graph import OpGraph, OpNode, TensorSpec
from cost_model.graph_store import GraphStore
from targets.errors import GraphError


def _graph(c: int) -> OpGraph:
    t = TensorSpec((1, c), "float32")
    return OpGraph(nodes=[OpNode(0, "nn.relu", inputs=[t], outputs=[t])], edges=[], inputs=[t], output_nodes=[0])


def test_round_trip_and_missing(tmp_path):
    store = GraphStore(tmp_path)
    store.put("a", _graph(3))
    assert "a" in store and "b" not in store
    assert store["a"].content_hash() == _graph(3).content_hash()
    assert len(store) == 1
    with pytest.raises(KeyError):
        store["b"]


def test_corrupted_file_is_named(tmp_path):
    store = GraphStore(tmp_path)
    store.put("a", _graph(3))
    path = next(tmp_path.glob("*/*.json.gz"))
    path.write_bytes(b"garbage")
    with pytest.raises(GraphError, match="corrupted"):
        store["a"]
