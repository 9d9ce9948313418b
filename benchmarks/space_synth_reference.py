"""Reference content hashes of random space specs, lowered through TVM, for ``test_space_synth.py``.

The synthesizer (``tvm_ledg.spaces.synth``) must give the same operator graph as
torch.fx + TVM lowering; lowering hundreds of networks in the test suite would
take too long, so this script lowers a seeded sample once and appends
``{"spec": ..., "hash": ...}`` lines to a JSONL file. It resumes: specs already
in the file are skipped, so it can be interrupted and restarted.

Usage::

    python -m benchmarks.space_synth_reference --per-space 200 \
        --out tests/tvm_ledg/data/space_synth_hashes.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from pathlib import Path

from tvm_ledg.spaces import fbnet, nb201, ofa

SEED = 0


def random_specs(space: str, n: int, seed: int = SEED) -> list[str]:
    """``n`` seeded random specs of ``space`` (nb201, fbnet or ofa), canonical text form."""
    rng = random.Random(f"{space}:{seed}")
    out = []
    for _ in range(n):
        if space == nb201.NAME:
            edges = tuple(tuple(rng.choice(nb201.OPS) for _ in range(j)) for j in (1, 2, 3))
            out.append(f"nb201:{nb201.NB201Cell(edges).to_text()}")
        elif space == fbnet.NAME:
            ops = tuple(rng.randrange(len(fbnet.OPS)) for _ in range(fbnet.NUM_LAYERS))
            out.append(f"fbnet:{fbnet.FBNetArch(ops).to_text()}")
        elif space == ofa.NAME:
            n_blocks = ofa.NUM_STAGES * ofa.BLOCKS_PER_STAGE
            arch = ofa.OFAArch(
                ks=tuple(rng.choice(ofa.KERNEL_SIZES) for _ in range(n_blocks)),
                e=tuple(rng.choice(ofa.EXPAND_RATIOS) for _ in range(n_blocks)),
                d=tuple(rng.choice(ofa.DEPTHS) for _ in range(ofa.NUM_STAGES)),
                r=rng.choice(ofa.RESOLUTIONS),
            )
            out.append(f"ofa:{arch.to_text()}")
        else:
            raise ValueError(f"no random specs for space {space!r}")
    return out


def nb201_corner_specs(n_mixed: int = 25, seed: int = SEED) -> list[str]:
    """Cells with many equal edges (one op everywhere, or a mix of two), where TVM merges equal nodes."""
    cells = [nb201.NB201Cell(tuple((op,) * j for j in (1, 2, 3))) for op in nb201.OPS]
    rng = random.Random(f"nb201-corner:{seed}")
    for _ in range(n_mixed):
        ops = rng.sample(nb201.OPS, 2)
        cells.append(nb201.NB201Cell(tuple(tuple(rng.choice(ops) for _ in range(j)) for j in (1, 2, 3))))
    return [f"nb201:{cell.to_text()}" for cell in cells]


def lowered_hash(spec: str) -> str:
    """Content hash of ``spec`` lowered through torch.fx + TVM (never the synthesizer)."""
    from tvm_ledg.lowering import to_op_graph
    from tvm_ledg.networks import load_network

    return to_op_graph(load_network(spec), name=spec).content_hash()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-space", type=int, default=200)
    parser.add_argument("--spaces", default="nb201,fbnet,ofa")
    parser.add_argument("--out", type=Path, default=Path("tests/tvm_ledg/data/space_synth_hashes.jsonl"))
    args = parser.parse_args(argv)
    done = set()
    if args.out.exists():
        done = {json.loads(line)["spec"] for line in args.out.read_text().splitlines() if line.strip()}
    lists = [random_specs(space, args.per_space) for space in args.spaces.split(",")]
    if nb201.NAME in args.spaces.split(","):
        lists.append(nb201_corner_specs())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        for group in itertools.zip_longest(*lists):  # interleaved: every space has some if stopped early
            for spec in filter(None, group):
                if spec in done:
                    continue
                start = time.perf_counter()
                f.write(json.dumps({"spec": spec, "hash": lowered_hash(spec)}) + "\n")
                f.flush()
                print(f"{time.perf_counter() - start:5.1f} s  {spec[:60]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
