"""`python -m benchmarks [--quick] [NAME ...]`: run every benchmark module's `main(argv)`.

Each module in this package that defines `main(argv: list[str])` is a benchmark; `--quick` is
passed through to it. NAMEs (module names) pick some of them.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path


def benchmark_names() -> list[str]:
    """Modules of this package that define `main` (others are helpers, e.g. a trainer stub)."""
    here = Path(__file__).parent
    modules = (m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    return sorted(name for name in modules if "\ndef main(" in (here / f"{name}.py").read_text())


def main(argv: list[str] | None = None) -> int:
    names = benchmark_names()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer steps: a smoke run, not a measurement"
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"some of {names}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {names}")
    status = 0
    for name in args.names or names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name} ==", flush=True)
        status = max(status, module.main(["--quick"] if args.quick else []) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
