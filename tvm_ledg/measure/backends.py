"""Run one network on one target: TVM (Relax VM), onnxruntime (CPU EP) or PyTorch eager.

The target descriptor picks the backend (``runtime``) and its settings
(``threads``; for TVM the ``tvm.target`` dict). Every backend gets the same
network as ONNX bytes plus its PyTorch module and the same input arrays, and
returns a :class:`Session` with ``run(number) -> seconds`` for the timing
protocol and ``outputs()`` for the numerical cross-check.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from targets.errors import ArgumentError, ModelImportError, TargetError
from targets.schema import TargetDescriptor

__all__ = ["Network", "Session", "BACKENDS", "open_session", "backend_of"]

INPUT_NAME = "input"


@dataclass
class Network:
    """A network in the forms the backends need: ONNX bytes, the PyTorch module (when there is one), inputs."""

    name: str
    onnx_bytes: bytes
    inputs: dict[str, np.ndarray]
    module: Any = None  # torch.nn.Module in eval mode, or None for a network given only as ONNX
    family: str | None = None
    _relax: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, model: str) -> "Network":
        """An architecture-space string (``zoo:resnet:3``) or an ONNX file path, as the collector takes them."""
        from tvm_ledg.networks import is_space_spec

        return cls.from_spec(model) if is_space_spec(model) else cls.from_onnx(model)

    @classmethod
    def from_spec(cls, spec: str) -> "Network":
        """Build an architecture-space network (``zoo:resnet:3``, ``nb201:...``) and export it to ONNX."""
        import torch

        from tvm_ledg import spaces

        arch = spaces.parse(spec)
        model = spaces.build(arch, batch_size=getattr(arch.arch, "batch", 1))  # as network_graph(spec) does
        buf = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model.module, model.example_inputs, buf, dynamo=False, opset_version=17,
                              input_names=[INPUT_NAME], do_constant_folding=True)
        inputs = {INPUT_NAME: model.example_inputs[0].numpy()}
        family = arch.space if arch.space != "zoo" else arch.arch.to_text().split(":")[0]
        return cls(model.name, buf.getvalue(), inputs, model.module, family)

    @classmethod
    def from_onnx(cls, path: str | Path, seed: int = 0) -> "Network":
        """An ONNX file with static input shapes; inputs are seeded random normal (float) arrays."""
        import onnx
        from onnx.helper import tensor_dtype_to_np_dtype

        path = Path(path)
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # onnx raises DecodeError, OSError, ...
            raise ModelImportError(f"{path}: cannot read ONNX model ({exc})") from exc
        rng = np.random.default_rng(seed)
        initializers = {i.name for i in model.graph.initializer}
        inputs = {}
        for inp in model.graph.input:
            if inp.name in initializers:
                continue
            dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
            if any(d <= 0 for d in dims):
                raise ModelImportError(f"{path}: input {inp.name!r} has a dynamic shape {dims}; export it static")
            dtype = tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
            inputs[inp.name] = rng.standard_normal(dims).astype(dtype)
        return cls(path.stem, path.read_bytes(), inputs, None, "onnx")

    @property
    def relax(self) -> Any:
        """The Relax module TVM compiles (imported from the same ONNX bytes the other backends run)."""
        if self._relax is None:
            import onnx

            from tvm_ledg.frontend import load_model

            self._relax = load_model(onnx.load_from_string(self.onnx_bytes))
        return self._relax


class Session:
    """A network loaded on one backend: ``run(number)`` times back-to-back runs, ``outputs()`` gives results."""

    def __init__(self, run: Callable[[int], float], outputs: Callable[[], list[np.ndarray]], compile_s: float,
                 close: Callable[[], None] | None = None) -> None:
        self.run = run
        self.outputs = outputs
        self.compile_s = compile_s
        self._close = close

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _onnxruntime(net: Network, desc: TargetDescriptor, remote: Any = None) -> Session:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = desc.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    t0 = time.perf_counter()
    sess = ort.InferenceSession(net.onnx_bytes, opts, providers=["CPUExecutionProvider"])
    compile_s = time.perf_counter() - t0

    def run(number: int) -> float:
        start = time.perf_counter()
        for _ in range(number):
            sess.run(None, net.inputs)
        return time.perf_counter() - start

    return Session(run, lambda: [np.asarray(o) for o in sess.run(None, net.inputs)], compile_s)


def _pytorch(net: Network, desc: TargetDescriptor, remote: Any = None) -> Session:
    import torch

    if net.module is None:
        raise ArgumentError(f"{net.name}: target {desc.name} runs PyTorch eager, but this network has no PyTorch "
                            "module (it was given as ONNX)")
    inputs = [torch.from_numpy(a) for a in net.inputs.values()]
    module = net.module.eval()

    def run(number: int) -> float:
        torch.set_num_threads(desc.threads)  # process-wide: set before every use
        with torch.inference_mode():
            start = time.perf_counter()
            for _ in range(number):
                module(*inputs)
            return time.perf_counter() - start

    def outputs() -> list[np.ndarray]:
        torch.set_num_threads(desc.threads)
        with torch.inference_mode():
            out = module(*inputs)
        return [t.numpy() for t in (out if isinstance(out, (tuple, list)) else [out])]

    return Session(run, outputs, 0.0)


def _tvm(net: Network, desc: TargetDescriptor, remote: Any = None) -> Session:
    """Compile with ``tvm.compile`` for the descriptor's TVM target; run on the Relax VM, locally or over RPC."""
    from tvm_ledg._tvm import make_target, relax, tvm

    if desc.tvm is None:
        raise TargetError(f"target {desc.name}: runtime 'tvm' needs a 'tvm.target' section")
    if desc.tvm.tuned:
        raise ArgumentError(f"target {desc.name}: tuned TVM targets are measured through the tuning integration, "
                            "not by tvm_ledg.measure (needs a MetaSchedule database)")
    target = make_target(dict(desc.tvm.target))
    t0 = time.perf_counter()
    executable = tvm.compile(net.relax, target=target)
    compile_s = time.perf_counter() - t0
    if remote is None:
        dev = tvm.cpu()
        vm = relax.VirtualMachine(executable, dev)
        close = None
    else:
        vm, dev, close = remote.load(executable)
    args = [tvm.runtime.tensor(a, device=dev) for a in net.inputs.values()]
    if remote is None:
        main = vm["main"]

        def run(number: int) -> float:
            # Timed here like the other backends: a time_evaluator call runs the function once more,
            # untimed, before its ``number`` runs, which would double the cost of every sample.
            start = time.perf_counter()
            for _ in range(number):
                main(*args)
            dev.sync()
            return time.perf_counter() - start
    else:
        evaluators: dict[int, Any] = {}

        def run(number: int) -> float:  # timed on the device: the RPC round trip stays out of the time
            if number not in evaluators:
                evaluators[number] = vm.time_evaluator("main", dev, number=number, repeat=1)
            return float(evaluators[number](*args).mean) * number

    def outputs() -> list[np.ndarray]:
        out = vm["main"](*args)
        return [o.numpy() for o in _flatten(out)]

    return Session(run, outputs, compile_s, close)


def _flatten(value: Any) -> list[Any]:
    if hasattr(value, "numpy"):
        return [value]
    return [x for v in value for x in _flatten(v)]


BACKENDS: dict[str, Callable[..., Session]] = {"onnxruntime": _onnxruntime, "pytorch": _pytorch, "tvm": _tvm}


def backend_of(desc: TargetDescriptor) -> str:
    if desc.runtime not in BACKENDS:
        raise ArgumentError(f"target {desc.name}: runtime {desc.runtime!r} cannot be measured here; "
                            f"measurable runtimes: {sorted(BACKENDS)}")
    return desc.runtime


def open_session(net: Network, desc: TargetDescriptor, remote: Any = None) -> Session:
    """Load ``net`` on the backend of ``desc`` (``remote``: a :class:`~tvm_ledg.measure.rpc.RemoteDevice`)."""
    name = backend_of(desc)
    if remote is not None and name != "tvm":
        raise ArgumentError(f"target {desc.name}: remote measurement over TVM RPC needs runtime 'tvm', not {name!r}")
    return BACKENDS[name](net, desc, remote)
