"""``python -m benchmarks``: run every comparison and write the results file.

    make bench                      # CPU: book/_data/benchmarks-cpu.json
    python -m benchmarks --device cuda   # GPU: bf16, compile, channels-last;
                                         # book/_data/benchmarks-gpu.json

The benchmarks page (book/benchmarks.md) renders the latest results files.
A correctness check that fails (codes, tokens or distances that differ) is
written into the file and makes the command exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch

from t2i.checkpoints import atomic_write_text

from . import references
from .cases import Options, all_cases
from .chapters import chapter_times
from .harness import machine

RESULTS = Path("book/_data")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="results file (default: book/_data/benchmarks-<cpu|gpu>.json)",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed repeats per figure"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: seconds, for the tests"
    )
    parser.add_argument(
        "--fast",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast, torch.compile and channels-last for both sides (default: on a GPU)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["vq", "vqgan", "sampling", "dvae"],
        help="run these comparisons only (the results file then holds only them)",
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: torch's choice)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(
            "--device cuda, but torch sees no GPU; leave --device out to use the CPU"
        )
    return args


def run(
    options: Options, build: Path = Path("_build"), only: list[str] | None = None
) -> dict:
    """Every comparison, the chapters' times, and what they ran on."""
    started = time.perf_counter()
    comparisons, errors = [], []
    for name, case in all_cases(options):
        if only and name not in only:
            continue
        try:
            comparison = case()
        except Exception:  # noqa: BLE001 (one broken comparison must not lose the others)
            traceback.print_exc()
            errors.append(f"{name}: {traceback.format_exc(limit=1).strip()}")
            continue
        print(f"{comparison.title} [{comparison.configuration}]", flush=True)
        for row in comparison.rows:
            figure = row.figure["median"] if row.figure else row.note
            print(
                f"  {row.implementation}: {figure} {comparison.unit if row.figure else ''}",
                flush=True,
            )
        for check in comparison.checks:
            print(f"  check: {check}", flush=True)
        comparisons.append(comparison.as_dict())
    return {
        "machine": machine(options.torch_device),
        "options": {
            "repeats": options.repeats,
            "fast": options.fast,
            "quick": options.quick,
            "only": only,
        },
        "references": {
            references.PACKAGES[name]: references.version(name)
            for name in references.PACKAGES
        },
        "comparisons": comparisons,
        "errors": errors,
        "chapters": chapter_times(build),
        "seconds": time.perf_counter() - started,
    }


def failed_checks(results: dict) -> list[str]:
    """Checks that failed, and comparisons that broke off with an error."""
    return results["errors"] + [
        c
        for comparison in results["comparisons"]
        for c in comparison["checks"]
        if "FAILED" in c
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = args.device.startswith("cuda")
    fast = gpu if args.fast is None else args.fast
    options = Options(
        device=args.device, quick=args.quick, repeats=args.repeats, fast=fast
    )
    results = run(options, only=args.only)
    out = args.out or RESULTS / f"benchmarks-{'gpu' if gpu else 'cpu'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(results, indent=1) + "\n", out)
    print(f"wrote {out} ({results['seconds']:.0f} s)")
    failed = failed_checks(results)
    for check in failed:
        print(f"check failed: {check}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
