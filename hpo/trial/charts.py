"""Small self-contained SVG charts: count matrices and line plots.

The dashboard shows SVG artifacts inline, and drawing them needs only numpy: no browser
(kaleido needs a Chrome on every worker, and seconds to start it) and no 4.6 MB of plotly.js
per trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import numpy as np

PALETTE = (
    "#636efa",
    "#ef553b",
    "#00cc96",
    "#ab63fa",
    "#ffa15a",
    "#19d3f3",
    "#ff6692",
    "#b6e880",
    "#ff97ff",
    "#fecb52",
)
FONT = 'font-family="Helvetica, Arial, sans-serif"'
CHAR_W = 6.5  # rough width of one 11 px character, for margins


@dataclass(frozen=True)
class Matrix:
    """Counts with true classes as rows and predictions as columns."""

    title: str
    counts: np.ndarray
    rows: list[str]
    cols: list[str]


@dataclass(frozen=True)
class Line:
    name: str
    x: np.ndarray
    y: np.ndarray


def _svg(width: float, height: float, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" {FONT} font-size="11">'
        f'<rect width="100%" height="100%" fill="white"/>{"".join(body)}</svg>\n'
    )


def _text(x: float, y: float, s: str, anchor: str = "middle", **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(s)}</text>'


def matrices_svg(title: str, matrices: list[Matrix], columns: int = 4) -> str:
    """A grid of count matrices, each cell shaded by its share of the row (the true class)."""
    n = max(len(m.rows) for m in matrices)
    cell = 44 if n <= 2 else 52
    left = 28 + CHAR_W * max(len(r) for m in matrices for r in m.rows)
    bottom = 48 + (_slanted(max(len(c) for m in matrices for c in m.cols)) if n > 2 else 0)
    panel_w, panel_h = left + n * cell + 16, 22 + n * cell + bottom
    columns = min(columns, len(matrices))
    grid_rows = -(-len(matrices) // columns)
    body = [_text(columns * panel_w / 2, 20, title, font_size="14", font_weight="bold")]
    for i, m in enumerate(matrices):
        x0, y0 = (i % columns) * panel_w, 32 + (i // columns) * panel_h
        body += _matrix(m, x0, y0, left, cell)
    return _svg(columns * panel_w, 32 + grid_rows * panel_h, body)


def _matrix(m: Matrix, x0: float, y0: float, left: float, cell: int) -> list[str]:
    k = len(m.rows)
    top = y0 + 22
    body = [_text(x0 + left + k * cell / 2, y0 + 14, m.title, font_weight="bold")]
    shares = m.counts / np.maximum(m.counts.sum(axis=1, keepdims=True), 1)
    for r in range(k):
        body.append(_text(x0 + left - 6, top + (r + 0.5) * cell + 4, m.rows[r], anchor="end"))
        for c in range(k):
            x, y = x0 + left + c * cell, top + r * cell
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell}" height="{cell}" fill="{_blue(shares[r, c])}" stroke="white"/>'
            )
            color = "white" if shares[r, c] > 0.55 else "#222"
            body.append(
                _text(x + cell / 2, y + cell / 2 + 4, str(int(m.counts[r, c])), fill=color)
            )
    labels_y = top + k * cell + 14
    for c in range(k):
        x = x0 + left + (c + 0.5) * cell
        if k > 2:
            body.append(
                _text(
                    x,
                    labels_y - 6,
                    m.cols[c],
                    anchor="end",
                    transform=f"rotate(-40 {x:.1f} {labels_y - 6:.1f})",
                )
            )
        else:
            body.append(_text(x, labels_y, m.cols[c]))
    body.append(
        _text(
            x0 + left + k * cell / 2,
            labels_y + (16 if k <= 2 else 14 + _slanted(max(map(len, m.cols)))),
            "predicted",
            fill="#666",
        )
    )
    body.append(
        _text(
            x0 + 10,
            top + k * cell / 2,
            "true",
            transform=f"rotate(-90 {x0 + 10:.1f} {top + k * cell / 2:.1f})",
            fill="#666",
        )
    )
    return body


def _slanted(n_chars: int) -> float:
    """Height of a column label of n characters written at 40 degrees."""
    return 0.65 * CHAR_W * n_chars


def _blue(share: float) -> str:
    """White (0) to plotly blue (1)."""
    lo, hi = np.array([247, 251, 255]), np.array([8, 48, 107])
    r, g, b = (lo + (hi - lo) * float(np.clip(share, 0, 1))).astype(int)
    return f"rgb({r},{g},{b})"


def lines_svg(
    title: str, lines: list[Line], xlabel: str, ylabel: str, width: int = 560, height: int = 400
) -> str:
    """Lines on a unit square (precision, recall, rates), with a legend on the right."""
    left, right, top, bottom = 52, 16 + CHAR_W * max(len(line.name) for line in lines) + 28, 36, 44
    pw, ph = width - left - 16, height - top - bottom
    body = [_text(left + pw / 2, 20, title, font_size="14", font_weight="bold")]
    for t in np.linspace(0, 1, 6):
        gx, gy = left + t * pw, top + (1 - t) * ph
        body.append(
            f'<line x1="{gx:.1f}" y1="{top}" x2="{gx:.1f}" y2="{top + ph}" stroke="#e5e5e5"/>'
        )
        body.append(
            f'<line x1="{left}" y1="{gy:.1f}" x2="{left + pw}" y2="{gy:.1f}" stroke="#e5e5e5"/>'
        )
        body.append(_text(gx, top + ph + 14, f"{t:.1f}"))
        body.append(_text(left - 6, gy + 4, f"{t:.1f}", anchor="end"))
    body.append(
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>'
    )
    body.append(_text(left + pw / 2, height - 8, xlabel))
    body.append(_text(14, top + ph / 2, ylabel, transform=f"rotate(-90 14 {top + ph / 2:.1f})"))
    for i, line in enumerate(lines):
        color = PALETTE[i % len(PALETTE)]
        keep = np.unique(np.linspace(0, len(line.x) - 1, min(len(line.x), 300)).astype(int))
        xs, ys = np.clip(line.x[keep], 0, 1), np.clip(line.y[keep], 0, 1)
        points = " ".join(
            f"{left + x * pw:.1f},{top + (1 - y) * ph:.1f}" for x, y in zip(xs, ys, strict=True)
        )
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.6"/>'
        )
        ly = top + 8 + i * 16
        body.append(
            f'<line x1="{width + 10}" y1="{ly:.1f}" x2="{width + 30}" y2="{ly:.1f}" stroke="{color}" stroke-width="3"/>'
        )
        body.append(_text(width + 36, ly + 4, line.name, anchor="start"))
    return _svg(width + right, height, body)
