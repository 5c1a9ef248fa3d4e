"""Run every benchmark: ``python -m bench`` (or ``make bench``).

``python -m bench`` runs them all in turn with their default (full) sizes;
``python -m bench NAME [ARGS...]`` runs one of them (``inventory``, ``feeds``, ``matching``,
``planning``, ``rollout``, ``api-load``) with its own arguments, e.g.
``python -m bench feeds --records 50000``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import (
    bench_api_load,
    bench_feeds,
    bench_inventory,
    bench_matching,
    bench_planning,
    bench_rollout,
)

BENCHMARKS: dict[str, Callable[[list[str] | None], None]] = {
    "inventory": bench_inventory.main,
    "feeds": bench_feeds.main,
    "matching": bench_matching.main,
    "planning": bench_planning.main,
    "rollout": bench_rollout.main,
    "api-load": bench_api_load.main,
}


def main() -> None:
    """Run the named benchmark with the remaining arguments, or every benchmark."""
    args = sys.argv[1:]
    if args and args[0] in BENCHMARKS:
        BENCHMARKS[args[0]](args[1:])
        return
    if args:  # options without a name: the inventory benchmark's, as before
        bench_inventory.main(args)
        return
    for name, run in BENCHMARKS.items():
        print(f"== {name}")
        run([])


if __name__ == "__main__":
    main()
