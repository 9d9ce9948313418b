"""OpGraph: validation, totals, JSON round trip, hashing, atomic save."""

import json

import pytest

from cost_model.graph import OpGraph, OpNode, TensorSpec, dtype_bytes
from targets.errors import GraphError


def _diamond(weight_shape=(8, 3, 3, 3)) -> OpGraph:
    x = TensorSpec((1, 3, 8, 8), "float32")
    y = TensorSpec((1, 8, 8, 8), "float32")
    w = TensorSpec(weight_shape, "float32")
    conv = dict(op="nn.conv2d", inputs=[x, w], outputs=[y], flops=2 * 8 * 8 * 8 * 27, macs=8 * 8 * 8 * 27, params=216)
    nodes = [
        OpNode(0, name="a", **conv),
        OpNode(1, name="b", **conv),
        OpNode(2, "add", name="c", inputs=[y, y], outputs=[y], flops=512),
        OpNode(3, "nn.relu", name="d", inputs=[y], outputs=[y], flops=512),
    ]
    return OpGraph(nodes=nodes, edges=[(0, 2), (1, 2), (2, 3)], inputs=[x], name="diamond")


def test_totals_and_relations():
    g = _diamond()
    assert g.num_nodes == 4
    assert g.total_flops == 2 * (2 * 8 * 8 * 8 * 27) + 1024
    assert g.total_macs == 2 * 8 * 8 * 8 * 27
    assert g.total_params == 432
    assert g.depth == 3
    assert g.parents(2) == [0, 1]
    assert g.children(0) == [2]


def test_json_round_trip_is_lossless(tmp_path):
    g = _diamond()
    path = tmp_path / "g.json"
    g.save(path)
    back = OpGraph.load(path)
    assert back.to_json() == g.to_json()
    assert back.content_hash() == g.content_hash()
    assert not list(tmp_path.glob("*.tmp")), "atomic write left a temp file"


def test_hash_ignores_names_but_not_structure():
    g1, g2 = _diamond(), _diamond()
    for n in g2.nodes:
        n.name = n.name.upper()
    g2.meta["frontend"] = "other"
    assert g1.content_hash() == g2.content_hash()
    g3 = _diamond(weight_shape=(8, 3, 5, 5))
    assert g3.content_hash() != g1.content_hash()
    g4 = OpGraph(nodes=_diamond().nodes, edges=[(0, 2), (1, 3), (2, 3)])
    assert g4.content_hash() != g1.content_hash()


@pytest.mark.parametrize(
    "edges, message",
    [([(2, 1)], "topological"), ([(0, 9)], "outside"), ([(0, 1), (0, 1)], "duplicate")],
)
def test_bad_edges_are_rejected(edges, message):
    nodes = [OpNode(i, "nn.relu") for i in range(3)]
    with pytest.raises(GraphError, match=message):
        OpGraph(nodes=nodes, edges=edges)


def test_bad_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(GraphError, match="broken.json"):
        OpGraph.load(path)
    path.write_text(json.dumps({"format_version": 99, "nodes": [], "edges": []}))
    with pytest.raises(GraphError, match="format_version"):
        OpGraph.load(path)
    with pytest.raises(GraphError, match="no such file"):
        OpGraph.load(tmp_path / "missing.json")


def test_dtype_bytes():
    assert [dtype_bytes(d) for d in ("float32", "float16", "bfloat16", "int8", "bool", "int64", "float32x4")] == [
        4, 2, 2, 1, 1, 8, 16,
    ]
    with pytest.raises(GraphError):
        dtype_bytes("handle")


def test_atomic_write_errors_name_the_path_and_leave_nothing(tmp_path):
    from cost_model.io import write_text_atomic
    from targets.errors import OutputError

    with pytest.raises(OutputError, match="is a folder"):
        write_text_atomic(tmp_path, "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match=r"file/sub/out\.json: cannot write \(Not a directory"):  # still an OSError
        write_text_atomic(tmp_path / "file" / "sub" / "out.json", "x")
    write_text_atomic(tmp_path / "a" / "b" / "out.json", "y")  # missing folders are created
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "file", "out.json"]
