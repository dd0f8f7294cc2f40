"""``python -m benchmarks.memory CASE IMPLEMENTATION OPTIONS``: in a fresh
process, build one side of a comparison, take one or two training steps, and print
the MiB they added to the peak resident set (see benchmarks.harness)."""

from __future__ import annotations

import json
import sys

from .cases import Options, vq_calls, vqgan_steps
from .harness import peak_rss_mb, reset_peak_rss

# training steps to take: a second one holds the optimiser's state as well
STEPS = {"vq": 1, "vqgan": 2}
SETUPS = {
    "vq": lambda options, size, only: vq_calls(options, tuple(size), only),
    "vqgan": lambda options, size, only: vqgan_steps(options, only),
}


def main(case: str, implementation: str, options: str, size: str) -> None:
    built = SETUPS[case](
        Options(**json.loads(options)), json.loads(size), implementation
    )
    step = built["steps"][implementation]
    before = reset_peak_rss()
    for _ in range(STEPS[case]):
        step()
    print(json.dumps({"added_mb": peak_rss_mb() - before}))


if __name__ == "__main__":
    main(*sys.argv[1:])
