"""Turn what a user types as MODEL into a Relax module or an operator graph.

A MODEL is an ONNX file path, or an architecture-space string such as
``nb201:|nor_conv_3x3~0|+|...|`` (see ``tvm_ledg.spaces``), or ``@list.txt``
naming a file with one MODEL per line. The CLI and the prediction API share
this one resolver so they accept exactly the same things.

MODELs are checked (``check_model``) before TVM is imported, which alone takes
about 5 s: a mistyped path or space string is an error at once.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from cost_model.graph import OpGraph
from targets.errors import ModelImportError

__all__ = ["check_model", "expand_model_args", "load_network", "network_graph", "is_space_spec", "model_key"]

log = logging.getLogger(__name__)


def is_space_spec(spec: str) -> bool:
    """True when ``spec`` starts with a registered space prefix (``nb201:``...)."""
    prefix, sep, _ = spec.partition(":")
    if not sep:  # a plain path: the spaces (and torch with them) need not be imported
        return False
    from tvm_ledg import spaces

    return prefix in spaces.list_spaces()


def check_model(model: str) -> str:
    """``model`` itself if it can name a network: a valid space string or an existing ``*.onnx`` file.

    Imports neither TVM nor onnx (a space string is parsed by its space, which imports torch).
    """
    if is_space_spec(model):
        from tvm_ledg import spaces

        spaces.parse(model)
        return model
    path = Path(model)
    if path.suffix.lower() != ".onnx":
        raise ModelImportError(
            f"{model!r}: not an ONNX file (*.onnx) nor a space string (prefixes: {_space_prefixes()})"
        )
    if not path.is_file():
        raise ModelImportError(f"{path}: {'not a file' if path.exists() else 'no such ONNX file'}")
    return model


def model_key(model: str, batch_size: int | None = None) -> str:
    """Graph-store key of a MODEL: the space string itself, or the ONNX file's content hash.

    A file is keyed by its bytes, not its path, so a renamed file is found again and
    an edited one is lowered again instead of being served its old graph.
    """
    suffix = "" if batch_size is None else f"#batch={batch_size}"
    if is_space_spec(model):
        return model + suffix
    path = Path(model)
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:24]
    except OSError as exc:
        raise ModelImportError(f"{model}: cannot read model file ({exc.strerror})") from exc
    return f"onnx-sha256:{digest}{suffix}"


def expand_model_args(args: list[str]) -> list[str]:
    """Expand ``@file`` arguments into the MODEL lines they list and check every MODEL.

    Blank lines and ``#`` comments of a list are skipped; an error in a list names its line.
    """
    out: list[str] = []
    for arg in args:
        if not arg.startswith("@"):
            out.append(check_model(arg))
            continue
        path = Path(arg[1:])
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ModelImportError(f"{path}: cannot read model list ({exc.strerror})") from exc
        for number, line in enumerate(lines, start=1):
            model = line.strip()
            if not model or model.startswith("#"):
                continue
            try:
                out.append(check_model(model))
            except ModelImportError as exc:
                raise ModelImportError(f"{path}:{number}: {exc}") from None
    return out


def load_network(spec: str, *, batch_size: int | None = None):
    """Load one MODEL string as a Relax ``IRModule`` (an override of the batch size is optional)."""
    check_model(spec)
    _check_batch_size(spec, batch_size)
    from tvm_ledg.frontend import load_model

    if is_space_spec(spec):
        from tvm_ledg import spaces

        arch = spaces.parse(spec)
        built = spaces.build(arch, batch_size=batch_size or getattr(arch.arch, "batch", 1))  # zoo archs carry one
        return load_model(built.module, built.example_inputs, torch_tracer="fx")
    path = Path(spec)
    input_shapes = None
    if batch_size is not None:
        input_shapes = _onnx_shapes_with_batch(path, batch_size)
    return load_model(path, input_shapes=input_shapes)


def _check_batch_size(spec: str, batch_size: int | None) -> None:
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ModelImportError(f"{spec}: the batch size must be a positive integer, got {batch_size!r}")


def network_graph(spec: str, *, fused: bool = False, batch_size: int | None = None) -> OpGraph:
    """MODEL string -> operator graph named after the MODEL.

    Unfused graphs of nb201/fbnet/ofa specs at batch 1 are assembled from block
    templates (``tvm_ledg.spaces.synth``, same graph, ~1000x faster than lowering).
    """
    _check_batch_size(spec, batch_size)  # the template path below skips load_network's checks
    if not fused and batch_size in (None, 1) and is_space_spec(spec):
        from tvm_ledg import spaces
        from tvm_ledg.spaces import synth

        parsed = spaces.parse(spec)
        if parsed.space in synth.SPACES:
            return synth.synthesize(spec, parsed.arch, parsed.space)
    mod = load_network(spec, batch_size=batch_size)
    from tvm_ledg.lowering import to_op_graph

    return to_op_graph(mod, fused=fused, name=spec)


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
