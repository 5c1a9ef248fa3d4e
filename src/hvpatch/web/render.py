"""Page rendering: the Jinja2 templates shipped in the package, every value escaped.

Each page gets the caller, the session's CSRF token (for the forms), the messages waiting in the
session ("flash" messages of the last action) and a few filters for dates, durations and sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from hvpatch import __version__
from hvpatch.api.auth import principal_of
from hvpatch.services.users import allows

__all__ = ["flash", "render"]

FLASH = "flash"


def _when(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return str(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    if isinstance(value, date):
        return str(value.isoformat())
    return str(value)


def _duration(seconds: Any) -> str:
    s = float(seconds or 0)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _gib(mb: Any) -> str:
    return f"{float(mb or 0) / 1024:.0f} GiB"


_env = Environment(loader=PackageLoader("hvpatch.web", "templates"),
                   autoescape=select_autoescape(["html", "j2"]), trim_blocks=True,
                   lstrip_blocks=True, undefined=StrictUndefined)
_env.filters.update(when=_when, duration=_duration, gib=_gib)


def flash(request: Request, message: str, level: str = "ok") -> None:
    """Keep a message for the next page this session sees."""
    # assigned, not appended in place: the session is written back only when set
    request.session[FLASH] = [*request.session.get(FLASH, []), [level, message]]


def render(request: Request, template: str, context: Mapping[str, Any], *,
           status: int = 200) -> HTMLResponse:
    """The page ``template`` with ``context`` and the common values."""
    who = principal_of(request)
    messages = request.session.pop(FLASH, []) if "session" in request.scope else []
    page = _env.get_template(template).render(
        who=who, csrf=who.csrf if who else "", messages=messages, version=__version__,
        can=lambda role: who is not None and allows(who.user.role, role),
        path=request.url.path, **context)
    return HTMLResponse(page, status_code=status,
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})
