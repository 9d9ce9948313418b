"""Turn what a user types as MODEL into a Relax module or an operator graph.

A MODEL is an ONNX file path, or an architecture-space string such as
``nb201:|nor_conv_3x3~0|+|...|`` (see ``tvm_ledg.spaces``), or ``@list.txt``
naming a file with one MODEL per line. The CLI and the prediction API share
this one resolver so they accept exactly the same things.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cost_model.graph import OpGraph
from targets.errors import ModelImportError

__all__ = ["expand_model_args", "load_network", "network_graph", "is_space_spec"]

log = logging.getLogger(__name__)


def is_space_spec(spec: str) -> bool:
    """True when ``spec`` starts with a registered space prefix (``nb201:``...)."""
    from tvm_ledg import spaces

    prefix, sep, _ = spec.partition(":")
    return bool(sep) and prefix in spaces.list_spaces()


def expand_model_args(args: list[str]) -> list[str]:
    """Expand ``@file`` arguments into the MODEL lines they list (blank lines and ``#`` comments skipped)."""
    out: list[str] = []
    for arg in args:
        if not arg.startswith("@"):
            out.append(arg)
            continue
        path = Path(arg[1:])
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ModelImportError(f"{path}: cannot read model list ({exc.strerror})") from exc
        out.extend(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return out


def load_network(spec: str, *, batch_size: int | None = None):
    """Load one MODEL string as a Relax ``IRModule`` (an override of the batch size is optional)."""
    from tvm_ledg.frontend import load_model

    if is_space_spec(spec):
        from tvm_ledg import spaces

        arch = spaces.parse(spec)
        built = spaces.build(arch, batch_size=batch_size or getattr(arch.arch, "batch", 1))  # zoo archs carry one
        return load_model(built.module, built.example_inputs, torch_tracer="fx")
    path = Path(spec)
    if path.suffix.lower() != ".onnx":
        raise ModelImportError(
            f"{spec!r}: not an ONNX file (*.onnx) nor a space string (prefixes: {_space_prefixes()})"
        )
    input_shapes = None
    if batch_size is not None:
        input_shapes = _onnx_shapes_with_batch(path, batch_size)
    return load_model(path, input_shapes=input_shapes)


def network_graph(spec: str, *, fused: bool = False, batch_size: int | None = None) -> OpGraph:
    """MODEL string -> operator graph named after the MODEL.

    Unfused graphs of nb201/fbnet/ofa specs at batch 1 are assembled from block
    templates (``tvm_ledg.spaces.synth``, same graph, ~1000x faster than lowering).
    """
    if not fused and batch_size in (None, 1) and is_space_spec(spec):
        from tvm_ledg import spaces
        from tvm_ledg.spaces import synth

        parsed = spaces.parse(spec)
        if parsed.space in synth.SPACES:
            return synth.synthesize(spec, parsed.arch, parsed.space)
    from tvm_ledg.lowering import to_op_graph

    return to_op_graph(load_network(spec, batch_size=batch_size), fused=fused, name=spec)


def _space_prefixes() -> str:
    from tvm_ledg import spaces

    return ", ".join(f"{p}:" for p in spaces.list_spaces())


def _onnx_shapes_with_batch(path: Path, batch_size: int) -> dict[str, list[int]]:
    """Read the graph inputs of an ONNX file and replace their leading dimension by ``batch_size``."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for a bad file
        raise ModelImportError(f"{path}: cannot read ONNX model ({exc})") from exc
    initializers = {init.name for init in model.graph.initializer}
    shapes: dict[str, list[int]] = {}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        dims = inp.type.tensor_type.shape.dim
        rest = [d.dim_value if d.HasField("dim_value") else -1 for d in dims[1:]]
        if any(d < 0 for d in rest):
            raise ModelImportError(f"{path}: input {inp.name!r} has a dynamic non-batch dimension {rest}")
        shapes[inp.name] = [batch_size, *rest]
    return shapes
