"""Operator graphs of nb201, fbnet and ofa specs assembled from block templates, without lowering the network.

Lowering one NB201 network through torch.fx + TVM costs ~0.6 s; a NAS search
loop needs thousands per second. Every network of these spaces is a chain of
single-input blocks (stem, cells or layers, reductions, head), and TVM's
normalization never crosses a block boundary, so each distinct block is lowered
once (``synth_templates``) and a spec's graph is the concatenation of its
blocks' templates (OFA's re-shaped to the spec's resolution, see below).

Why concatenation gives the lowering's node numbering: the canonical order is
a post-order DFS from the outputs (``cost_model.graph.canonical_order``). Every
node of a block depends on the block's input, so the DFS finishes everything
before the block first, then the block's nodes in the order the block has on
its own, ending with the block's output. The same argument inside an NB201
cell gives its order from the unit-level DAG of its edges and sums, ordered by
``canonical_order`` itself. Edges sorted per block are therefore sorted
globally.

Templates are lowered at first use (~2 s for nb201, ~5 s fbnet, ~20 s ofa) and cached as JSON under
``default_cache_root()/space_templates``, keyed by space and TVM version.
Nodes of synthesized graphs share their ``attrs``/``inputs``/``outputs``
containers with the templates: read them, do not mutate them.
Batch sizes other than 1 are not templated; callers lower those through TVM.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from cost_model.batch import GraphTensors
from cost_model.cache_dir import default_cache_root
from cost_model.chain_tensors import BlockStructure, RowTable, block_structure, chain_tensors
from cost_model.featurize import node_rows
from cost_model.graph import OpGraph, OpNode, TensorSpec
from cost_model.io import read_json, write_text_atomic
from targets.errors import GraphError
from tvm_ledg import op_costs
from tvm_ledg.spaces import fbnet, nb201, ofa
from tvm_ledg.spaces.synth_nb201 import CONV_OPS, CellLayout, cell_layout, convs_alike
from tvm_ledg.spaces.synth_templates import OFA_REFERENCE_RESOLUTION

__all__ = ["SPACES", "synthesize", "synthesize_tensors"]

log = logging.getLogger(__name__)

SPACES: tuple[str, ...] = (nb201.NAME, fbnet.NAME, ofa.NAME)

_NB201_STAGES = 3
_NB201_CELLS_PER_STAGE = 5


@dataclass(frozen=True)
class _Block:
    """Nodes (prototype field dicts, ids relative to the block) and sorted edges, ``-1`` = the block input.

    ``features`` caches the block's row ids in its space's ``RowTable`` and its ``BlockStructure``
    (``_block_ids``, ``_block_structure``): a template block is featurized once for all the
    networks that use it.
    """

    protos: tuple[dict[str, Any], ...]
    edges: tuple[tuple[int, int], ...]
    features: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class _Space:
    blocks: dict[str, _Block]
    meta: dict[str, Any]
    inputs: tuple[TensorSpec, ...]
    reshaped: dict[tuple[str, tuple[tuple[int, int], ...]], _Block] = field(default_factory=dict)  # OFA, per size
    convs_alike: bool = False  # NB201: both convolutions' units have the same nodes and edges
    rows: RowTable = field(default_factory=RowTable)  # node features of the blocks used so far
    cells: dict[tuple[str, ...], CellLayout] = field(default_factory=dict)  # NB201, by ``cell_layout``'s key


_LOADED: dict[str, _Space] = {}


def synthesize(spec: str, arch: Any, space: str) -> OpGraph:
    """The unfused operator graph of ``arch`` (a parsed ``space`` architecture), named ``spec``."""
    templates = _space(space)
    inputs = templates.inputs
    if space == nb201.NAME:
        blocks = _nb201_blocks(arch, templates)
    else:
        blocks = _chain_blocks(arch, space, templates)
        if space == ofa.NAME:
            inputs = (TensorSpec((1, 3, arch.r, arch.r), inputs[0].dtype),)
    return _assemble(blocks, inputs, templates.meta, spec)


def synthesize_tensors(spec: str, arch: Any, space: str) -> GraphTensors:
    """``featurize.graph_tensors(synthesize(spec, arch, space))``, assembled from per-block features
    (``cost_model.chain_tensors``) without building the graph's nodes."""
    templates = _space(space)
    if space == nb201.NAME:
        ids, structures = _nb201_pieces(arch, templates)
    else:
        blocks = [b for b in _chain_blocks(arch, space, templates) if b.protos]  # skip layers have no nodes
        ids = list(itertools.chain.from_iterable(_block_ids(b, templates) for b in blocks))
        structures = [_block_structure(b) for b in blocks]
    return chain_tensors(templates.rows.gather(ids), structures, name=spec,
                         input_batch=1)  # templates are lowered at batch 1


def _chain_blocks(arch: Any, space: str, templates: _Space) -> list[_Block]:
    """The blocks of an fbnet or ofa network, in order."""
    if space == ofa.NAME:
        return _ofa_blocks(arch, templates)
    blocks = [templates.blocks["stem"], *(templates.blocks[f"layer:{i}:{op}"] for i, op in enumerate(arch.ops))]
    blocks.append(templates.blocks["head"])
    return blocks


def _block_ids(block: _Block, space: _Space) -> list[int]:
    """Ids of the block's node features in ``space.rows``, featurized at first use."""
    ids = block.features.get("ids")
    if ids is None:
        nodes = []
        for proto in block.protos:
            node = object.__new__(OpNode)
            node.__dict__ = {**proto, "id": 0}  # features never read the id
            nodes.append(node)
        ids = block.features["ids"] = space.rows.add(node_rows(nodes))
    return ids


def _block_structure(block: _Block) -> BlockStructure:
    structure = block.features.get("structure")
    if structure is None:
        structure = block.features["structure"] = block_structure(len(block.protos), block.edges)
    return structure


def _assemble(blocks: list[_Block], inputs: tuple[TensorSpec, ...], meta: dict[str, Any], name: str) -> OpGraph:
    nodes: list[OpNode] = []
    edges: list[tuple[int, int]] = []
    new = object.__new__
    append = nodes.append
    for block in blocks:
        offset = len(nodes)
        for i, proto in enumerate(block.protos, offset):
            node = new(OpNode)
            fields = proto.copy()
            fields["id"] = i
            node.__dict__ = fields
            append(node)
        edges += [(s + offset, d + offset) for s, d in block.edges]
    # Built from verified templates in canonical order: skip OpGraph.__post_init__'s O(E) re-validation.
    graph = new(OpGraph)
    graph.__dict__.update(
        nodes=nodes,
        edges=edges,
        inputs=list(inputs),
        output_nodes=[len(nodes) - 1],
        name=name,
        fused=False,
        meta=dict(meta),
    )
    return graph


# ------------------------------------------------------------------ NB201
def _nb201_blocks(cell: nb201.NB201Cell, space: _Space) -> list[_Block]:
    kinds, layout = cell_layout(cell, space.blocks, space.cells, space.convs_alike)
    units = space.blocks
    blocks = [units["stem"]]
    for stage in range(_NB201_STAGES):
        if stage:
            blocks.append(units[f"reduce:{stage - 1}"])
        protos = tuple(proto for kind in kinds for proto in units[f"{kind}:{stage}"].protos)
        blocks.extend([_Block(protos, layout.edges)] * _NB201_CELLS_PER_STAGE)
    blocks.append(units["head"])
    return blocks


def _nb201_pieces(cell: nb201.NB201Cell, space: _Space) -> tuple[list[int], list[BlockStructure]]:
    """Node feature ids (in ``space.rows``) and block structures (per cell) of ``_nb201_blocks``' graph."""
    kinds, layout = cell_layout(cell, space.blocks, space.cells, space.convs_alike)
    units = space.blocks
    ids, structures = list(_block_ids(units["stem"], space)), [_block_structure(units["stem"])]
    for stage in range(_NB201_STAGES):
        if stage:
            reduce = units[f"reduce:{stage - 1}"]
            ids += _block_ids(reduce, space)
            structures.append(_block_structure(reduce))
        ids += list(itertools.chain.from_iterable(_block_ids(units[f"{kind}:{stage}"], space) for kind in kinds)
                    ) * _NB201_CELLS_PER_STAGE
        structures.extend([layout.structure] * _NB201_CELLS_PER_STAGE)
    ids += _block_ids(units["head"], space)
    structures.append(_block_structure(units["head"]))
    return ids, structures


# ------------------------------------------------------------------ OFA
# Templates are lowered at one resolution (``OFA_REFERENCE_RESOLUTION``) and
# re-shaped: feature-map sizes are substituted and FLOPs/bytes recomputed with the formulas the
# lowering applies to these (Relax) operators. Attributes and weights do not depend on the size.


def _ofa_sizes(r: int) -> list[int]:
    """Feature-map size after the first conv and after each stage (stride-s convs with k // 2 padding)."""
    sizes = [-(-r // 2)]
    for stride in ofa._STAGE_STRIDES:
        sizes.append(-(-sizes[-1] // stride))
    return sizes


def _ofa_blocks(arch: ofa.OFAArch, units: _Space) -> list[_Block]:
    ref, new = _ofa_sizes(OFA_REFERENCE_RESOLUTION), _ofa_sizes(arch.r)
    blocks = [_reshaped(units, "stem", {OFA_REFERENCE_RESOLUTION: arch.r, ref[0]: new[0]})]
    prev_stage = -1
    for stage, kernel, expand in arch.active_blocks():
        first = stage != prev_stage
        prev_stage = stage
        mapping = {ref[stage + 1]: new[stage + 1]}
        if first:
            mapping[ref[stage]] = new[stage]
        blocks.append(_reshaped(units, f"block:{stage}:{0 if first else 1}:{kernel}:{expand}", mapping))
    blocks.append(_reshaped(units, "head", {ref[-1]: new[-1]}))
    return blocks


def _reshaped(space: _Space, key: str, mapping: dict[int, int]) -> _Block:
    """Template ``key`` with feature-map sizes (dims 2, 3 of NCHW tensors) replaced per ``mapping``."""
    memo_key = (key, tuple(sorted(mapping.items())))
    if memo_key not in space.reshaped:
        block = space.blocks[key]
        if all(a == b for a, b in mapping.items()):
            space.reshaped[memo_key] = block
        else:
            space.reshaped[memo_key] = _Block(tuple(_reshape_node(p, mapping) for p in block.protos), block.edges)
    return space.reshaped[memo_key]


def _reshape_node(proto: dict[str, Any], mapping: dict[int, int]) -> dict[str, Any]:
    def resize(t: TensorSpec) -> TensorSpec:
        if len(t.shape) != 4:
            return t
        n, c, h, w = t.shape
        return TensorSpec((n, c, mapping.get(h, h), mapping.get(w, w)), t.dtype)

    weight = 1 if proto["op"] == "nn.conv2d" else -1  # (O, I, kh, kw): no feature-map dims
    inputs = [t if k == weight else resize(t) for k, t in enumerate(proto["inputs"])]
    outputs = [resize(t) for t in proto["outputs"]]
    cost = op_costs.estimate(proto["op"], proto["attrs"], inputs, outputs)
    return {
        **proto,
        "inputs": inputs,
        "outputs": outputs,
        "flops": cost.flops,
        "macs": cost.macs,
        "bytes_read": sum(t.nbytes for t in inputs),
        "bytes_written": sum(t.nbytes for t in outputs),
    }


# ------------------------------------------------------------------ templates
def _space(space: str) -> _Space:
    if space not in _LOADED:
        _LOADED[space] = _parse_templates(_template_json(space))
    return _LOADED[space]


def _tvm_version() -> str:
    """Installed TVM version, read from the package metadata (no ``import tvm``)."""
    try:
        return metadata.version("apache-tvm")
    except metadata.PackageNotFoundError:
        return "unknown"


def _template_json(space: str) -> dict[str, Any]:
    """The space's templates from the cache; lowered through TVM (and cached) when absent or stale."""
    path = default_cache_root() / "space_templates" / f"{space}-tvm{_tvm_version()}.json"
    if path.exists():
        try:
            return read_json(path, GraphError)
        except GraphError as exc:
            log.warning("ignoring unreadable template cache: %s", exc)
    from tvm_ledg.spaces.synth_templates import build_templates

    log.info("lowering %s block templates through TVM (once; cached in %s)", space, path)
    data = build_templates(space)
    write_text_atomic(path, json.dumps(data, sort_keys=True))
    return data


def _parse_templates(data: dict[str, Any]) -> _Space:
    blocks: dict[str, _Block] = {}
    for key, unit in data["units"].items():
        protos = []
        for node_json in unit["nodes"]:
            node = OpNode.from_json({**node_json, "id": 0})
            fields = dict(node.__dict__)
            del fields["id"]
            protos.append(fields)
        blocks[key] = _Block(tuple(protos), tuple(sorted((int(s), int(d)) for s, d in unit["edges"])))
    for stage in range(_NB201_STAGES) if "reduce:0" in blocks else ():
        for op in CONV_OPS:
            for kind in ("first", "edge"):
                blocks[f"{kind}-conv:{op}:{stage}"] = _drop_first(blocks[f"{kind}:{op}:{stage}"])
        relu = blocks[f"edge:{CONV_OPS[0]}:{stage}"]
        blocks[f"relu:{stage}"] = _Block(relu.protos[:1], ((-1, 0),))
    stem = data["units"]["stem"]["nodes"][0]["inputs"][0]
    return _Space(blocks, dict(data["meta"]), (TensorSpec.from_json(stem),),
                  convs_alike="reduce:0" in blocks and convs_alike(blocks))


def _drop_first(block: _Block) -> _Block:
    """``block`` without its first node (a ReLU shared with other edges), which becomes its input."""
    edges = tuple(sorted((max(s - 1, -1), d - 1) for s, d in block.edges if s >= 0))
    return _Block(block.protos[1:], edges)
