"""Cursor pagination: ``?limit=N&cursor=...`` in, ``{"items": [...], "next": cursor|null}`` out.

A cursor is opaque to clients (base64url of the last item's sort key); following ``next`` until
it is null visits every item exactly once, even while new items are added. Large lists
(findings, hosts, guests, audit entries, jobs, rollout steps) page in SQL by key; short ones
(sites, plans, ...) are read whole by their service and sliced here by the same rule.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from hvpatch.errors import InputError, Problem

__all__ = ["Page", "PageParams", "Paging", "page_of", "ranked_page", "slice_page"]

T = TypeVar("T")
K = TypeVar("K", int, str)


class Page(BaseModel, Generic[T]):
    """One page of a list; ``next`` is the cursor of the following page (null on the last)."""

    items: list[T]
    next: str | None


@dataclass(frozen=True, slots=True)
class PageParams:
    """The paging query parameters of a request."""

    cursor: str | None
    limit: int

    def after(self, kind: type[K]) -> K | None:
        """The key the cursor carries (None without a cursor); 422 for a cursor of the wrong
        kind or one this API did not give out."""
        if self.cursor is None:
            return None
        try:
            padded = self.cursor + "=" * (-len(self.cursor) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            key = data["k"] if isinstance(data, dict) else None
        except (ValueError, UnicodeError, binascii.Error, KeyError):
            key = None
        if type(key) is not kind:
            raise InputError("bad cursor", [Problem("cursor", "not a cursor of this list: "
                                                    "pass the `next` of the previous page")])
        return key


def _params(cursor: Annotated[str | None, Query(max_length=512, pattern=r"^[A-Za-z0-9_=-]*$",
                                                description="`next` of the previous page")
                              ] = None,
            limit: Annotated[int, Query(ge=1, le=1000, description="items per page")] = 100,
            ) -> PageParams:
    return PageParams(cursor, limit)


Paging = Annotated[PageParams, Depends(_params)]


def encode(key: int | str) -> str:
    """The opaque cursor of ``key``."""
    raw = json.dumps({"k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def page_of(rows: Sequence[Any], limit: int, key: Callable[[Any], int | str]) -> Page[Any]:
    """A page from ``rows`` fetched with ``limit + 1``: the extra row says there is more."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page[Any](items=items, next=encode(key(items[-1])) if more and items else None)


def slice_page(rows: Sequence[Any], paging: PageParams, key: Callable[[Any], K],
               kind: type[K]) -> Page[Any]:
    """A page of a whole list: the rows whose key follows the cursor's, in key order."""
    after = paging.after(kind)
    ordered = sorted(rows, key=key)
    if after is not None:
        ordered = [r for r in ordered if key(r) > after]
    return page_of(ordered, paging.limit, key)


def ranked_page(rows: Sequence[Any], paging: PageParams) -> Page[Any]:
    """A page of a list whose order means something (a ranking, newest first): by position."""
    after = paging.after(int)
    start = 0 if after is None else max(0, after + 1)
    chunk = [(start + i, row) for i, row in enumerate(rows[start:start + paging.limit + 1])]
    page = page_of(chunk, paging.limit, lambda pair: pair[0])
    return Page[Any](items=[row for _, row in page.items], next=page.next)
