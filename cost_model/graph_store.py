"""A directory of operator graphs keyed by MODEL, shared by lowering, prediction and training.

The key is ``tvm_ledg.networks.model_key``: a space string as is, an ONNX file
as the hash of its content (a path would serve an edited file its old graph).

Lowering a network through TVM costs about a second, so graphs are built once
(by ``tvm_ledg.graph_builder``) and read back here without TVM. One gzipped
JSON file per graph, named by a digest of the key, written atomically:
an interrupted build loses at most the graph in flight and resumes by skipping
what is already there.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

from cost_model.graph import OpGraph, paused_gc
from cost_model.io import write_bytes_atomic
from targets.errors import GraphError

__all__ = ["GraphStore"]


class GraphStore:
    """``store[spec] -> OpGraph`` backed by ``<root>/<digest[:2]>/<digest>.json.gz``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, spec: str) -> Path:
        digest = hashlib.sha256(spec.encode()).hexdigest()[:24]
        return self.root / digest[:2] / f"{digest}.json.gz"

    def __contains__(self, spec: str) -> bool:
        return self._path(spec).is_file()

    def put(self, spec: str, graph: OpGraph) -> None:
        payload = json.dumps({"spec": spec, "graph": graph.to_json()}, separators=(",", ":"))
        write_bytes_atomic(self._path(spec), gzip.compress(payload.encode(), mtime=0))

    def __getitem__(self, spec: str) -> OpGraph:
        path = self._path(spec)
        with paused_gc():
            try:
                with gzip.open(path, "rb") as f:
                    payload = json.loads(f.read())
            except FileNotFoundError as exc:
                raise KeyError(spec) from exc
            except (OSError, EOFError, json.JSONDecodeError) as exc:
                raise GraphError(f"{path}: corrupted graph file for {spec!r} ({exc}); delete it to rebuild") from exc
            if payload.get("spec") != spec:
                raise GraphError(f"{path}: holds {payload.get('spec')!r}, expected {spec!r}")
            return OpGraph.from_json(payload["graph"], source=str(path))

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json.gz"))
