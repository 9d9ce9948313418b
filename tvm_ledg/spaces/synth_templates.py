"""Lower the building blocks of the nb201, fbnet and ofa spaces through TVM, once, as graph templates.

``tvm_ledg.spaces.synth`` assembles a space network's operator graph from these
templates instead of lowering the whole network. A template is the unfused
``OpGraph`` of one block lowered on its own, through the same path as a whole
network (``load_model(..., torch_tracer="fx")`` + ``to_op_graph``), behind a
``negative`` marker: the marker becomes node 0 (every block node depends on it,
so the post-order DFS emits it first) and its out-edges are the block's entry
edges. Dropping it leaves the block's nodes in the order they take inside the
whole network. A template is ``{"nodes": [node JSON], "edges": [[src, dst]]}``
with ids relative to the block and ``-1`` for the block's input.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cost_model.graph import OpGraph
from targets.errors import ModelImportError
from tvm_ledg.spaces import fbnet, nb201, ofa

__all__ = ["build_templates"]

_MARKER_OP = "negative"


class _Marked(nn.Module):
    """``block(-x)``: the marker makes the block's input a node, so its entry edges are recorded."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(torch.neg(x))


class _FirstEdge(nn.Module):
    """The first edge of an NB201 node, summed as ``InferCell`` does (Python ``sum`` starts at 0)."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum([self.op(x)])


class _AddTwo(nn.Module):
    """Its one node is the template of the add that sums two edges of an NB201 node."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x


class _NB201Head(nn.Module):
    """``TinyNetwork`` after the last cell: lastact, global pooling, classifier."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.lastact, self.global_pooling, self.classifier = net.lastact, net.global_pooling, net.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pooling(self.lastact(x))
        return self.classifier(x.view(x.size(0), -1))


class _FBNetHead(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.header, self.avgpool, self.fc = net.header, net.avgpool, net.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.avgpool(self.header(x))
        return self.fc(out.view(out.size(0), -1))


def _lower(module: nn.Module, shape: tuple[int, ...]) -> OpGraph:
    from tvm_ledg.frontend import load_model
    from tvm_ledg.lowering import to_op_graph

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        example = torch.randn(*shape)
    return to_op_graph(load_model(module.eval(), (example,), torch_tracer="fx"))


def _template(module: nn.Module, shape: tuple[int, ...], *, marked: bool = True) -> dict[str, Any]:
    """Lower ``module`` on an input of ``shape``; its nodes and edges relative to the block."""
    graph = _lower(_Marked(module) if marked else module, shape)
    nodes = [n.to_json() for n in graph.nodes]
    shift = 0
    if marked:
        if not nodes or nodes[0]["op"] != _MARKER_OP:
            raise ModelImportError(f"template of {type(module).__name__}: marker is not node 0")
        shift = 1
    if graph.output_nodes != [len(nodes) - 1]:
        raise ModelImportError(f"template of {type(module).__name__}: output is not the last node")
    for node in nodes:
        del node["id"]
    return {"nodes": nodes[shift:], "edges": [[s - shift, d - shift] for s, d in graph.edges]}


def _nb201_templates() -> tuple[dict[str, Any], str]:
    cell = nb201.NB201Cell(tuple(("skip_connect",) * j for j in (1, 2, 3)))  # only its stem and head are used
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nb201.build_network(cell)
    units: dict[str, Any] = {"stem": _template(net.stem, (1, 3, 32, 32), marked=False)}
    for stage, (channels, size) in enumerate(((16, 32), (32, 16), (64, 8))):
        shape = (1, channels, size, size)
        units[f"add:{stage}"] = _template(_AddTwo(), shape)
        for op in nb201.OPS:
            units[f"first:{op}:{stage}"] = _template(_FirstEdge(nb201._make_op(op, channels)), shape)
            if op != "skip_connect":
                units[f"edge:{op}:{stage}"] = _template(nb201._make_op(op, channels), shape)
        if stage < 2:
            units[f"reduce:{stage}"] = _template(nb201._ResNetBasicblock(channels, 2 * channels), shape)
    units["head"] = _template(_NB201Head(net), (1, 64, 8, 8))
    return units, type(net).__name__


def _fbnet_templates() -> tuple[dict[str, Any], str]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        nets = {op: fbnet.build_network(fbnet.FBNetArch((op,) * fbnet.NUM_LAYERS)) for op in range(len(fbnet.OPS))}
    units: dict[str, Any] = {"stem": _template(nets[0].stem, (1, 3, 32, 32), marked=False)}
    shapes = _block_shapes(nets[0].cells, nets[0], (1, 3, 32, 32))
    seen: dict[tuple, str] = {}
    for layer, (shape_in, shape_out) in enumerate(shapes):
        for op, net in nets.items():
            key = f"layer:{layer}:{op}"
            config = (shape_in, shape_out, op)  # the same block wherever it sits
            if config not in seen:
                seen[config] = key
                units[key] = _template(net.cells[layer], shape_in)
            units[key] = units[seen[config]]
    units["head"] = _template(_FBNetHead(nets[0]), shapes[-1][1])
    return units, type(nets[0]).__name__


class _OFAPrefix(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.first_conv, self.first_block = net.first_conv, net.blocks[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.first_block(self.first_conv(x))


class _OFAHead(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.final_expand_layer, self.feature_mix_layer = net.final_expand_layer, net.feature_mix_layer
        self.classifier = net.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand_layer(x)
        x = x.mean(3, keepdim=True).mean(2, keepdim=True)
        x = self.feature_mix_layer(x)
        return self.classifier(x.view(x.size(0), -1))


#: OFA templates are lowered at this resolution and re-shaped for the others; its feature-map
#: sizes (192, 96, 48, 24, 12, 6) differ from each other and from every kernel size and 1.
OFA_REFERENCE_RESOLUTION = 192


def _ofa_templates() -> tuple[dict[str, Any], str]:
    r = OFA_REFERENCE_RESOLUTION
    n_blocks = ofa.NUM_STAGES * ofa.BLOCKS_PER_STAGE
    units: dict[str, Any] = {}
    net = None
    for kernel in ofa.KERNEL_SIZES:
        for expand in ofa.EXPAND_RATIOS:
            arch = ofa.OFAArch((kernel,) * n_blocks, (expand,) * n_blocks, (2,) * ofa.NUM_STAGES, r)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                net = ofa.build_network(arch)
            shapes = _block_shapes(net.blocks, net, (1, 3, r, r))
            for stage in range(ofa.NUM_STAGES):
                for j in (0, 1):
                    block = 1 + 2 * stage + j
                    units[f"block:{stage}:{j}:{kernel}:{expand}"] = _template(net.blocks[block], shapes[block][0])
    units["stem"] = _template(_OFAPrefix(net), (1, 3, r, r), marked=False)
    units["head"] = _template(_OFAHead(net), shapes[-1][1])
    return units, type(net).__name__


def _block_shapes(
    blocks: nn.ModuleList, net: nn.Module, shape: tuple[int, ...]
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input shape, output shape) of every module of ``blocks``, from one forward pass of ``net``."""
    shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    hooks = [
        block.register_forward_hook(lambda m, args, out: shapes.append((tuple(args[0].shape), tuple(out.shape))))
        for block in blocks
    ]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(shape))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def build_templates(space: str) -> dict[str, Any]:
    """All block templates of ``space`` (``nb201``, ``fbnet`` or ``ofa``), lowered through TVM."""
    from tvm_ledg._tvm import TVM_VERSION

    builders = {nb201.NAME: _nb201_templates, fbnet.NAME: _fbnet_templates, ofa.NAME: _ofa_templates}
    if space not in builders:
        raise ModelImportError(f"no synthesizer templates for space {space!r}")
    units, source = builders[space]()
    meta = {"tvm_version": TVM_VERSION, "frontend": "torch", "source": source}  # as load_model sets for the net
    return {"tvm_version": TVM_VERSION, "meta": meta, "units": units}
