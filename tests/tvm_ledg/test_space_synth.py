"""Synthesized space graphs equal the TVM-lowered ones.

``data/space_synth_hashes.jsonl`` holds the content hashes of 200 seeded random
specs per space, plus 30 NB201 cells with many equal edges (where TVM merges
equal nodes), lowered through torch.fx + TVM
(``benchmarks/space_synth_reference.py``); a few specs are also lowered live
here, so a change on the TVM side is caught too.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cost_model.featurize import graph_tensors
from tvm_ledg import spaces
from tvm_ledg.networks import network_graph
from tvm_ledg.spaces import synth

REFERENCES = Path(__file__).parent / "data" / "space_synth_hashes.jsonl"


@pytest.fixture(scope="module", autouse=True)
def template_cache(tmp_path_factory):
    """One empty cache root for the module: templates are lowered once, at first use."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TVM_LEDG_CACHE_DIR", str(root))
        mp.setattr(synth, "_LOADED", {})
        yield root


def _references(space: str) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in REFERENCES.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["spec"].startswith(f"{space}:")]


def _synthesized(spec: str):
    parsed = spaces.parse(spec)
    return synth.synthesize(spec, parsed.arch, parsed.space)


@pytest.mark.parametrize("space", synth.SPACES)
def test_hashes_match_tvm_lowering(space):
    refs = _references(space)
    assert len(refs) >= 200
    wrong = [r["spec"] for r in refs if _synthesized(r["spec"]).content_hash() != r["hash"]]
    assert not wrong, f"{len(wrong)} of {len(refs)} {space} specs differ, e.g. {wrong[0]}"


@pytest.mark.parametrize("space", synth.SPACES)
def test_tensors_from_block_features_equal_featurizing_the_graph(space):
    """``synthesize_tensors`` (no nodes built) gives ``graph_tensors`` of the synthesized graph, bit for bit."""
    refs = _references(space)
    assert len(refs) >= 200
    for ref in refs:
        parsed = spaces.parse(ref["spec"])
        got = synth.synthesize_tensors(ref["spec"], parsed.arch, parsed.space)
        want = graph_tensors(synth.synthesize(ref["spec"], parsed.arch, parsed.space))
        assert got.texts == want.texts, ref["spec"]
        assert torch.equal(got.x_num, want.x_num), ref["spec"]
        assert torch.equal(got.edge_index, want.edge_index), ref["spec"]
        assert torch.equal(got.rel_index, want.rel_index), ref["spec"]
        assert got.work.dtype == want.work.dtype and np.array_equal(got.work, want.work), ref["spec"]
        assert (got.name, got.input_batch) == (want.name, want.input_batch)


def test_nb201_cells_differing_only_in_convolutions_share_a_layout(monkeypatch):
    """With the templates' guarantee (both convolutions' units have the same nodes and edges) such
    cells share one layout; without it each cell has its own; the graphs are the same either way."""
    refs = _references("nb201")[:40]
    swap = {"nor_conv_1x1": "nor_conv_3x3", "nor_conv_3x3": "nor_conv_1x1"}
    specs = [r["spec"] for r in refs]
    specs += [re.sub(r"nor_conv_(1x1|3x3)", lambda m: swap[m.group(0)], spec) for spec in specs]
    space = synth._space("nb201")
    assert space.convs_alike
    hashes, layouts = {}, {}
    for alike in (True, False):
        fresh = dataclasses.replace(space, convs_alike=alike, cells={})
        monkeypatch.setitem(synth._LOADED, "nb201", fresh)
        hashes[alike] = [_synthesized(spec).content_hash() for spec in specs]
        layouts[alike] = len(fresh.cells)
    assert hashes[True] == hashes[False]
    assert hashes[True][:len(refs)] == [r["hash"] for r in refs]
    assert layouts[True] <= len(refs) < layouts[False] == len(set(specs))


@pytest.mark.parametrize("space", synth.SPACES)
def test_graph_equals_live_lowering(space):
    """Every field but the binding names: shapes, FLOPs, bytes, params, attrs, edges, meta."""
    from tvm_ledg.lowering import to_op_graph
    from tvm_ledg.networks import load_network

    for ref in _references(space)[:3]:
        spec = ref["spec"]
        lowered = to_op_graph(load_network(spec), name=spec)
        synthesized = network_graph(spec)
        assert lowered.content_hash() == ref["hash"], "TVM lowering changed: regenerate the references"
        got, want = synthesized.to_json(), lowered.to_json()
        for node in got["nodes"] + want["nodes"]:
            del node["name"]
        assert got == want


def test_templates_are_cached(template_cache):
    network_graph(_references("nb201")[0]["spec"])
    cached = sorted(p.name for p in (template_cache / "space_templates").iterdir())
    assert any(name.startswith("nb201-tvm") and name.endswith(".json") for name in cached)
    synth._LOADED.clear()  # a new process reads them back instead of lowering again
    spec = _references("nb201")[1]["spec"]
    assert network_graph(spec).content_hash() == _references("nb201")[1]["hash"]


def test_other_batch_sizes_and_fused_go_through_tvm():
    spec = _references("nb201")[0]["spec"]
    graph = network_graph(spec, batch_size=2)
    assert graph.inputs[0].shape == (2, 3, 32, 32)
    assert network_graph(spec, batch_size=1).content_hash() == _references("nb201")[0]["hash"]


def test_synthesized_graph_is_valid():
    graph = _synthesized(_references("fbnet")[0]["spec"])
    graph.validate()
    assert graph.edges == sorted(set(graph.edges))
    assert graph.name.startswith("fbnet:")
