"""The one place where errors become exit codes and messages on stderr.

=====  ===========================================================
code   meaning
=====  ===========================================================
0      success
1      a hvpatch error that fits no class below
2      bad input: a file, field, argument or name (InputError, NotFoundError)
3      the store cannot be used (StoreError), or another engine drives the rollout
       (LeaseHeld): try again once it has finished or its lease has expired
4      an advisory feed failed (FeedError)
5      no safe plan exists (PlanError)
6      a hypervisor driver failed (DriverError)
70     a bug in hvpatch (an unexpected exception); please report it
=====  ===========================================================
"""

from __future__ import annotations

from rich.console import Console

from hvpatch.errors import (
    DriverError,
    FeedError,
    HvpatchError,
    InputError,
    NotFoundError,
    PlanError,
    StoreError,
)
from hvpatch.orchestration.lease import LeaseHeld

EXIT_CODES: tuple[tuple[type[HvpatchError], int], ...] = (
    (InputError, 2),
    (NotFoundError, 2),
    (StoreError, 3),
    (LeaseHeld, 3),
    (FeedError, 4),
    (PlanError, 5),
    (DriverError, 6),
    (HvpatchError, 1),
)
EXIT_BUG = 70


def exit_code_for(exc: HvpatchError) -> int:
    """The exit code of a hvpatch error (most specific class wins)."""
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1


def report(exc: HvpatchError, console: Console) -> int:
    """Print ``exc`` for a person and return its exit code."""
    message = str(exc.args[0] if exc.args else exc)
    console.print("[bold red]error:[/] ", end="", markup=True)
    console.print(message, markup=False, highlight=False, soft_wrap=True)
    for problem in getattr(exc, "problems", ()):
        console.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
    return exit_code_for(exc)
