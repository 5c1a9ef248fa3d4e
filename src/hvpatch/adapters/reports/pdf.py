"""Render a report as a PDF (reportlab platypus): title, verdicts, facts, charts, tables.

Landscape A4 so wide evidence tables fit; every table repeats its header on each page, cells
wrap, and each page carries the report's title and its page number. The charts are the same
PNGs the HTML page embeds.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from hvpatch import __version__
from hvpatch.adapters.reports.html import chart_png
from hvpatch.adapters.reports.layout import layout
from hvpatch.adapters.reports.model import Document
from hvpatch.adapters.reports.model import Table as ReportTable

__all__ = ["render_pdf"]

_PAGE = landscape(A4)
_MARGIN = 12 * mm
_WIDTH = _PAGE[0] - 2 * _MARGIN
_GRID = colors.HexColor("#d9dee3")
_HEAD = colors.HexColor("#f1f4f7")
_MARKS = {"missed": "#c62828", "failed": "#c62828", "rolled-back": "#c62828",
          "end-of-life": "#c62828", "halted": "#c62828", "Act": "#c62828",
          "met": "#2f7d32", "done": "#2f7d32", "completed": "#2f7d32", "supported": "#2f7d32",
          "approved": "#2f7d32", "pending": "#b26a00", "security-only": "#b26a00",
          "Attend": "#b26a00"}
#: the standard PDF fonts cover Latin-1 and a little more; these are spelled out instead
_ASCII = str.maketrans({"→": "->", "≤": "<=", "≥": ">=", "×": "x", "…": "..."})

_styles = getSampleStyleSheet()
_TITLE = ParagraphStyle("title", parent=_styles["Title"], alignment=0, fontSize=18,
                        spaceAfter=2)
_H2 = ParagraphStyle("h2", parent=_styles["Heading2"], fontSize=12, spaceBefore=10,
                     spaceAfter=4, keepWithNext=1)
_BODY = ParagraphStyle("body", parent=_styles["BodyText"], fontSize=8.5, leading=11)
_META = ParagraphStyle("meta", parent=_BODY, textColor=colors.HexColor("#616e7c"))
_CELL = ParagraphStyle("cell", parent=_BODY, fontSize=6.5, leading=8)
_HEADCELL = ParagraphStyle("headcell", parent=_CELL, fontName="Helvetica-Bold")


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text.translate(_ASCII)), style)


#: points per character of a 6.5 pt Helvetica cell (a little over the average glyph width)
_CHAR_PT = 3.6
_PAD_PT = 3.0


def _widths(table: ReportTable, cells: list[list[str]]) -> list[float]:
    """Column widths that fill the page: each column its content's natural width (wide text
    columns capped), grown or shrunk in proportion, never below a readable minimum."""
    natural = []
    for i, col in enumerate(table.columns):
        words = [round(len(w) * 1.2) for w in col.header.split()]  # bold
        longest = max([max(words, default=1), *(len(r[i]) for r in cells[:300])])
        chars = min(longest, 80 if col.wide else 26)
        natural.append(chars * _CHAR_PT + 2 * _PAD_PT)
    total = sum(natural)
    if total <= _WIDTH:  # room to spare: give it to the wide columns, else to all
        wide = [i for i, c in enumerate(table.columns) if c.wide]
        grow = wide or list(range(len(natural)))
        extra = (_WIDTH - total) / len(grow)
        return [w + (extra if i in grow else 0) for i, w in enumerate(natural)]
    # too wide: narrow the wide text columns first (they wrap best), then every column
    floor = 28 * _CHAR_PT + 2 * _PAD_PT
    spare = sum(w - floor for w, c in zip(natural, table.columns, strict=True)
                if c.wide and w > floor)
    cut = min(spare, total - _WIDTH)
    if cut > 0:
        natural = [w - cut * (w - floor) / spare if c.wide and w > floor else w
                   for w, c in zip(natural, table.columns, strict=True)]
        total = sum(natural)
    return [w * min(1.0, _WIDTH / total) for w in natural]


def _table(table: ReportTable) -> list[Flowable]:
    cells = table.cells()
    title = _p(f"{table.title} ({len(cells)})", _H2)
    if not cells:
        return [KeepTogether([title, _p(table.empty, _META)])]
    widths = _widths(table, cells)
    # a Paragraph wraps but costs ~100x a plain string: only cells too long for their column
    fits = [int((w - 2 * _PAD_PT) / _CHAR_PT) for w in widths]
    data: list[list[Any]] = [[_p(h, _HEADCELL) for h in table.header()]]
    data += [[_p(c, _CELL) if len(c) > fit else c.translate(_ASCII)
              for c, fit in zip(row, fits, strict=True)] for row in cells]
    t = Table(data, colWidths=widths, repeatRows=1)
    style: list[tuple[Any, ...]] = [
        ("FONT", (0, 1), (-1, -1), _CELL.fontName, _CELL.fontSize, _CELL.leading),
        ("GRID", (0, 0), (-1, -1), 0.4, _GRID), ("BACKGROUND", (0, 0), (-1, 0), _HEAD),
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5), ("LEFTPADDING", (0, 0), (-1, -1), _PAD_PT),
        ("RIGHTPADDING", (0, 0), (-1, -1), _PAD_PT)]
    for i, mark in enumerate(table.marks(), start=1):
        colour = _MARKS.get(mark)
        if colour:
            style.append(("LINEBEFORE", (0, i), (0, i), 3, colors.HexColor(colour)))
    t.setStyle(TableStyle(style))
    out: list[Flowable] = [title]
    if table.note:
        out.append(_p(table.note, _META))
    return [*out, t]


#: the tallest a chart may be drawn (points), so it shares its page with the summary
_CHART_MAX_H = 270.0


def _charts(doc: Document) -> list[Flowable]:
    """The charts, two per row, each half the page wide at most."""
    if not doc.charts:
        return []
    images = []
    for chart in doc.charts:
        png = chart_png(chart, width_in=8.0)
        w, h = ImageReader(io.BytesIO(png)).getSize()
        width = min(_WIDTH / 2 - 4 * mm, _CHART_MAX_H * w / h)
        images.append(Image(io.BytesIO(png), width=width, height=width * h / w))
    rows = [images[i:i + 2] for i in range(0, len(images), 2)]
    return [Spacer(1, 3 * mm), Table(rows, hAlign="LEFT")]


def _facts(doc: Document) -> Flowable:
    t = Table([[_p(k, _META), _p(v, _BODY)] for k, v in doc.facts], hAlign="LEFT",
              colWidths=[70 * mm, _WIDTH - 70 * mm])
    t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                           ("TOPPADDING", (0, 0), (-1, -1), 1),
                           ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    return t


def render_pdf(report: Mapping[str, Any]) -> bytes:
    """The report as PDF bytes."""
    doc = layout(report)
    buf = io.BytesIO()
    pdf = SimpleDocTemplate(buf, pagesize=_PAGE, leftMargin=_MARGIN, rightMargin=_MARGIN,
                            topMargin=_MARGIN, bottomMargin=_MARGIN + 4 * mm,
                            title=doc.title, author=f"hvpatch {__version__}",
                            subject=f"hvpatch {report.get('kind', '')} report",
                            creator=f"hvpatch {__version__}")

    def footer(canvas: Canvas, _doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.HexColor("#616e7c"))
        canvas.drawString(_MARGIN, _MARGIN / 2, f"{doc.title} · generated "
                          f"{report.get('generated', '')[:16].replace('T', ' ')} UTC · hvpatch")
        canvas.drawRightString(_PAGE[0] - _MARGIN, _MARGIN / 2, f"page {canvas.getPageNumber()}")
        canvas.restoreState()

    story: list[Flowable] = [_p(doc.title, _TITLE),
                             _p(" · ".join(f"{k}: {v}" for k, v in doc.meta), _META)]
    if doc.intro:
        story.append(_p(doc.intro, _META))
    for ok, text in doc.verdicts:
        story.append(Paragraph(f'<font color="{"#2f7d32" if ok else "#c62828"}"><b>'
                               f"{escape(text.translate(_ASCII))}</b></font>", _BODY))
    story += [_p("Summary", _H2), _facts(doc), *_charts(doc)]
    for table in doc.all_tables():
        story += _table(table)
    pdf.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()
