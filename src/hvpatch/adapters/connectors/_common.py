"""What every inventory connector reads the same way: the tenant a guest without tenant
information goes to, and a guest's criticality from the text a platform keeps it in."""

from __future__ import annotations

from collections.abc import Mapping

from hvpatch.domain.fleet import Criticality
from hvpatch.errors import InputError, Problem

__all__ = ["DEFAULT_TENANT", "criticality", "default_tenant"]

#: where guests without tenant information go (``--option default_tenant=...`` changes it)
DEFAULT_TENANT = "unassigned"


def default_tenant(options: Mapping[str, str]) -> str:
    """The connection's default tenant."""
    return options.get("default_tenant", DEFAULT_TENANT)


def criticality(value: str, *, error: str, location: str) -> Criticality:
    """``value`` (any case, surrounding blanks ignored) as a criticality; otherwise
    :class:`InputError` ``error`` naming ``location`` and the values expected."""
    try:
        return Criticality(value.strip().lower())
    except ValueError:
        raise InputError(error, [Problem(location, f"criticality {value!r}: expected one of "
                                         f"{', '.join(c.value for c in Criticality)}")]) from None
