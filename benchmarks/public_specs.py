"""Write the list of public-data architectures the shipped checkpoint and the benchmarks use.

All 1,999 OneProxy architectures, 3,001 more NAS-Bench-201 cells and 1,200 of
HELP's 5,000 OFA configs, drawn with a fixed seed (lowering all 20,625 would
take about 4 hours on 2 cores). Usage::

    python -m benchmarks.public_specs > specs_public.txt
    tvm-ledg graphs @specs_public.txt --store .cache/graphs --workers 2
"""

from __future__ import annotations

import sys

import numpy as np

from cost_model.data import load_all, load_device


def main(seed: int = 0) -> None:
    tables = load_all()
    oneproxy = sorted({a for t in tables if t.source == "oneproxy" for a in t.archs})
    taken = set(oneproxy)
    rest = [a for a in load_device("help-nb201", "pixel3").archs if a not in taken]
    rng = np.random.default_rng(seed)
    extra = [rest[i] for i in rng.permutation(len(rest))[:3001]]
    ofa = list(next(t for t in tables if t.source == "help-ofa").archs)
    ofa_sample = [ofa[i] for i in rng.permutation(len(ofa))[:1200]]
    sys.stdout.write("\n".join(oneproxy + extra + ofa_sample) + "\n")


if __name__ == "__main__":
    main()
