"""The learned latency model. Imports torch, never TVM.

Submodules are imported lazily by their users; this package's import stays
cheap so that reading an ``OpGraph`` needs neither torch nor TVM.
"""

from cost_model.graph import GRAPH_FORMAT_VERSION, OpGraph, OpNode, TensorSpec

__all__ = ["OpGraph", "OpNode", "TensorSpec", "GRAPH_FORMAT_VERSION"]
