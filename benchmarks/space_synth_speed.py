"""Spec -> OpGraph throughput of ``network_graph`` for space specs (the synthesizer path), one core.

Templates are loaded (or lowered and cached, on the first run) before timing; the
specs are seeded random ones, distinct from each other, so no graph cache helps.

Usage::

    python -m benchmarks.space_synth_speed --n 3000
"""

from __future__ import annotations

import argparse
import time

from benchmarks.space_synth_reference import random_specs
from tvm_ledg.networks import network_graph


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="specs per space")
    parser.add_argument("--spaces", default="nb201,fbnet,ofa")
    args = parser.parse_args(argv)
    for space in args.spaces.split(","):
        specs = random_specs(space, args.n, seed=1)
        network_graph(specs[0])  # templates in memory
        start = time.perf_counter()
        for spec in specs:
            network_graph(spec)
        print(f"{space:6s} {len(specs) / (time.perf_counter() - start):8.0f} specs/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
