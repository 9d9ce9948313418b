"""LeDG-Former building blocks, one module per block (PyG style: flat rows, ``Shapes:`` docstrings)."""

from cost_model.layers.bgiffn import BGIFFN, Adjacency
from cost_model.layers.block import LeDGBlock
from cost_model.layers.csr import CSRPattern, sddmm, spmm
from cost_model.layers.film import FiLM
from cost_model.layers.gate import GATE_MODES, RelationGate
from cost_model.layers.relation_attention import RelationAttention, RelationIndex

__all__ = [
    "Adjacency",
    "BGIFFN",
    "CSRPattern",
    "FiLM",
    "GATE_MODES",
    "LeDGBlock",
    "RelationAttention",
    "RelationGate",
    "RelationIndex",
    "sddmm",
    "spmm",
]
