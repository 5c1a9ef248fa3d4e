"""Report renderers: a report dict (``hvpatch.services.reports``) as HTML, PDF, CSV or JSON.

Renderers take the plain dict and nothing else, so every format shows the same facts. HTML is
one self-contained page (inline CSS, charts embedded as PNG); PDF is laid out with reportlab;
CSV is the report's main table; JSON is the dict itself. Each renderer is imported when first
used, so commands that render nothing do not pay for reportlab or Jinja2 at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any, cast

__all__ = ["EXTENSIONS", "FORMATS", "render"]

#: format -> (module, function) of its renderer
_RENDERERS: dict[str, tuple[str, str]] = {
    "html": ("hvpatch.adapters.reports.html", "render_html"),
    "pdf": ("hvpatch.adapters.reports.pdf", "render_pdf"),
    "csv": ("hvpatch.adapters.reports.csv", "render_csv"),
    "json": ("hvpatch.adapters.reports.json", "render_json"),
}

#: the formats, in the order help texts list them
FORMATS: tuple[str, ...] = tuple(_RENDERERS)
#: file name extension per format
EXTENSIONS: dict[str, str] = {f: f for f in FORMATS}


def render(report: Mapping[str, Any], fmt: str) -> bytes:
    """``report`` rendered as ``fmt`` (one of :data:`FORMATS`)."""
    module, name = _RENDERERS[fmt]
    renderer = cast(Callable[[Mapping[str, Any]], bytes], getattr(import_module(module), name))
    return renderer(report)
