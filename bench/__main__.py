"""Run every benchmark: ``python -m bench`` (or ``make bench``)."""

from __future__ import annotations

import sys

from bench import bench_inventory


def main() -> None:
    """Run the benchmarks in turn with their default sizes."""
    bench_inventory.main(sys.argv[1:])


if __name__ == "__main__":
    main()
