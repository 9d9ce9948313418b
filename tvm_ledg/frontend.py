"""Networks in, Relax ``IRModule`` out: ONNX files/protos, PyTorch modules, Relax modules.

ONNX goes through ``tvm.relax.frontend.onnx.from_onnx``; PyTorch through
``torch.export.export`` (eval mode, no grad) and
``tvm.relax.frontend.torch.from_exported_program`` (without PyTorch's
decomposition pass when TVM covers every operator, see ``_translate_exported``),
or, on request (``torch_tracer="fx"``), through ``torch.fx.symbolic_trace`` and
``from_fx``: about 3x faster, used for the architecture spaces, whose FX and
export graphs are tested to be identical.
Both results are brought to one canonical form by
``tvm_ledg.normalize.normalize_module`` (BatchNorm folded into the preceding
convolution, constants folded, one spelling per operator), so the same network
gives the same operator graph from either frontend. A Relax module is returned
as is.

Every failure is a ``ModelImportError`` (``UnsupportedOperatorError`` for an
operator the frontend cannot convert) naming the file or module.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from targets.errors import ModelImportError, UnsupportedOperatorError
from tvm_ledg._tvm import (
    IRModule,
    OpNotImplemented,
    TVMError,
    from_exported_program,
    from_fx,
    from_onnx,
    relax,
)
from tvm_ledg.lowering import FRONTEND_ATTR, SOURCE_ATTR
from tvm_ledg.normalize import normalize_module

__all__ = ["load_model", "normalize_module"]

log = logging.getLogger(__name__)

Shape = Sequence[int]


def load_model(
    source: Any,
    example_inputs: Any = None,
    *,
    input_shapes: Mapping[str, Shape] | None = None,
    torch_tracer: str = "export",
) -> IRModule:
    """Import a network as a normalized Relax ``IRModule``.

    Args:
        source: an ONNX file path (``str``/``Path``), an ``onnx.ModelProto``, a
            ``torch.nn.Module`` or a Relax ``IRModule`` (returned unchanged).
        example_inputs: for a torch module, a tensor or tuple of tensors; their
            shapes (batch size, resolution) fix the graph's shapes.
        input_shapes: for ONNX, ``{input name: shape}`` overriding the model's
            input shapes; required for every input with a symbolic dimension.
    """
    if isinstance(source, IRModule):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return _import_onnx(_read_onnx(path), input_shapes, str(path))
    if _is_onnx_model(source):
        name = source.graph.name or "onnx-model"
        return _import_onnx(source, input_shapes, name)
    if _is_torch_module(source):
        if input_shapes is not None:
            raise ModelImportError(
                f"{type(source).__name__}: input_shapes applies to ONNX models; for a torch module pass "
                "example_inputs of the shape you want"
            )
        return _import_torch(source, example_inputs, torch_tracer)
    raise ModelImportError(
        f"cannot import a {type(source).__name__}: expected an ONNX path or ModelProto, a torch.nn.Module "
        "or a Relax IRModule"
    )


# ------------------------------------------------------------------ ONNX
def _read_onnx(path: Path) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    if not path.exists():
        raise ModelImportError(f"{path}: no such ONNX file")
    if not path.is_file():
        raise ModelImportError(f"{path}: not a file")
    try:
        return onnx.load(str(path))
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        raise ModelImportError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc


def _is_onnx_model(obj: Any) -> bool:
    return type(obj).__name__ == "ModelProto" and type(obj).__module__.startswith("onnx")


def _import_onnx(model: Any, input_shapes: Mapping[str, Shape] | None, name: str) -> IRModule:
    shapes, dtypes = _onnx_input_shapes(model, input_shapes, name)
    try:
        mod = from_onnx(model, shapes, dtypes)
    except OpNotImplemented as exc:
        ops = str(exc).rsplit(":", 1)[-1].strip()
        raise UnsupportedOperatorError(f"{name}: TVM's ONNX frontend does not support operator(s) {ops}") from exc
    except (TVMError, ValueError, TypeError, KeyError, AssertionError, NotImplementedError) as exc:
        raise ModelImportError(f"{name}: ONNX import failed ({type(exc).__name__}: {exc})") from exc
    return _finish(mod, "onnx", name)


def _onnx_input_shapes(
    model: Any, overrides: Mapping[str, Shape] | None, name: str
) -> tuple[dict[str, list[int]], dict[str, str]]:
    """Static shapes and dtypes of the graph inputs, with overrides; errors name the symbolic dims."""
    from onnx.helper import tensor_dtype_to_np_dtype

    initializers = {init.name for init in model.graph.initializer}
    overrides = dict(overrides or {})
    shapes: dict[str, list[int]] = {}
    dtypes: dict[str, str] = {}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        tensor_type = inp.type.tensor_type
        dtypes[inp.name] = str(tensor_dtype_to_np_dtype(tensor_type.elem_type))
        dims = [(d.dim_value if d.HasField("dim_value") else None, d.dim_param) for d in tensor_type.shape.dim]
        if inp.name in overrides:
            shape = [int(x) for x in overrides.pop(inp.name)]
            if len(shape) != len(dims) or any(x <= 0 for x in shape):
                raise ModelImportError(
                    f"{name}: input_shapes[{inp.name!r}] = {shape} does not fit input {inp.name!r} of rank {len(dims)}"
                )
            shapes[inp.name] = shape
            continue
        for axis, (value, symbol) in enumerate(dims):
            if not value:
                # a dynamic batch alone is also fixed by the batch size option of the CLI and of the API
                batch_only = axis == 0 and all(v for v, _ in dims[1:])
                hint = (" or set the batch size (--batch-size N of `tvm-ledg graph` and `predict`; batch_size=N "
                        "of predict_latency)") if batch_only else ""
                raise ModelImportError(
                    f"{name}: input {inp.name!r} has a dynamic dimension {axis} ({symbol or '?'}); "
                    f"pass input_shapes={{{inp.name!r}: [...]}} with static sizes{hint}"
                )
        shapes[inp.name] = [int(v) for v, _ in dims]
    if overrides:
        raise ModelImportError(
            f"{name}: input_shapes names unknown inputs {sorted(overrides)} (inputs: {sorted(shapes)})"
        )
    return shapes, dtypes


# ------------------------------------------------------------------ PyTorch
def _is_torch_module(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def _import_torch(model: Any, example_inputs: Any, tracer: str = "export") -> IRModule:
    import torch

    name = type(model).__name__
    if tracer not in ("export", "fx"):
        raise ModelImportError(f"{name}: torch_tracer must be 'export' or 'fx', not {tracer!r}")
    if example_inputs is None:
        raise ModelImportError(f"{name}: a torch module needs example_inputs (a tensor or a tuple of tensors)")
    args = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    if not args or not all(isinstance(a, torch.Tensor) for a in args):
        raise ModelImportError(f"{name}: example_inputs must be a tensor or a non-empty tuple of tensors")
    if tracer == "fx":
        return _finish(_import_fx(model, args, name), "torch", name)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            program = torch.export.export(model, args)
    except Exception as exc:  # torch.export raises many unrelated types (UserError, Unsupported, TypeError...)
        raise ModelImportError(f"{name}: torch.export failed ({type(exc).__name__}: {exc})") from exc
    finally:
        model.train(was_training)
    return _finish(_translate_exported(program, name), "torch", name)


def _fx_tracer_class() -> type:
    import torch

    class Tracer(torch.fx.Tracer):
        """Traces *into* average pooling: TVM 0.27's ``nn.AvgPool*d`` module converter drops
        ``count_include_pad``, while its ``F.avg_pool*d`` function converter honours it."""

        def is_leaf_module(self, m: torch.nn.Module, qualified_name: str) -> bool:
            if isinstance(m, (torch.nn.AvgPool1d, torch.nn.AvgPool2d, torch.nn.AvgPool3d)):
                return False
            return super().is_leaf_module(m, qualified_name)

    return Tracer


def _import_fx(model: Any, args: tuple[Any, ...], name: str) -> IRModule:
    """``torch.fx.symbolic_trace`` + ``from_fx`` (the module must be in eval mode for BatchNorm)."""
    import torch

    was_training = model.training
    model.eval()
    try:
        graph_module = torch.fx.GraphModule(model, _fx_tracer_class()().trace(model))
    except Exception as exc:  # symbolic tracing raises TraceError, TypeError, ... on dynamic control flow
        raise ModelImportError(f"{name}: torch.fx.symbolic_trace failed ({type(exc).__name__}: {exc})") from exc
    finally:
        model.train(was_training)
    info = [(list(a.shape), str(a.dtype).removeprefix("torch.")) for a in args]
    try:
        return from_fx(graph_module, info)
    except (TVMError, ValueError, TypeError, KeyError, AssertionError, NotImplementedError) as exc:
        raise ModelImportError(f"{name}: PyTorch FX import failed ({type(exc).__name__}: {exc})") from exc


def _translate_exported(program: Any, name: str) -> IRModule:
    """ExportedProgram -> Relax, without PyTorch's decomposition when TVM covers every operator.

    ``run_decompositions`` re-traces the program and costs ~60% of a NAS-Bench-201
    import (~3 s of ~5 s here); TVM translates the undecomposed training-IR
    operators directly, so it is skipped unless an operator is unsupported
    without it. ``aten.batch_norm.default`` needs ``_batch_norm_converter``:
    TVM 0.27 reads its ``training``/``momentum`` arguments as momentum/epsilon.
    """
    unsupported: list[str] = []
    for decompose in (False, True):
        try:
            return from_exported_program(
                program, decompose=decompose, custom_convert_map={"batch_norm.default": _batch_norm_converter}
            )
        except AssertionError as exc:  # TVM asserts "Unsupported function types [...]"
            match = re.search(r"Unsupported function types? \[(.*?)\]", str(exc))
            if match is None:
                raise ModelImportError(f"{name}: PyTorch import failed ({exc})") from exc
            unsupported = [match.group(1)]
            log.debug("%s: %s unsupported without decomposition; decomposing", name, match.group(1))
        except (TVMError, ValueError, TypeError, KeyError, NotImplementedError) as exc:
            raise ModelImportError(f"{name}: PyTorch import failed ({type(exc).__name__}: {exc})") from exc
    raise UnsupportedOperatorError(f"{name}: TVM's PyTorch frontend does not support operator(s) {unsupported[0]}")


def _batch_norm_converter(node: Any, importer: Any) -> Any:
    """``aten.batch_norm(x, weight, bias, mean, var, training, momentum, eps, cudnn)`` -> Relax, in eval mode."""
    x, weight, bias, mean, var, training, momentum, eps = node.args[:8]
    data = importer.env[x]
    channels, dtype = int(data.ty.shape[1]), str(data.ty.dtype)

    def tensor(arg: Any, fill: float) -> Any:
        return importer.env[arg] if arg is not None else relax.const(np.full(channels, fill, dtype), dtype)

    out = importer.block_builder.emit(
        relax.op.nn.batch_norm(
            data,
            tensor(weight, 1.0),
            tensor(bias, 0.0),
            tensor(mean, 0.0),
            tensor(var, 1.0),
            axis=1,
            epsilon=float(eps),
            center=bias is not None,
            scale=weight is not None,
            momentum=float(momentum),
            training=bool(training),
        )
    )
    return importer.block_builder.emit(relax.TupleGetItem(out, 0))


# ------------------------------------------------------------------ common
def _finish(mod: IRModule, frontend: str, name: str) -> IRModule:
    try:
        mod = normalize_module(mod)
    except (TVMError, ValueError, TypeError) as exc:
        raise ModelImportError(f"{name}: normalizing the imported module failed ({exc})") from exc
    log.debug("imported %s through the %s frontend", name, frontend)
    return mod.with_attrs({FRONTEND_ATTR: frontend, SOURCE_ATTR: name})
