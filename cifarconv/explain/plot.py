"""``--plot``: a tiny instance of the layer drawn cell by cell, or a model's layers as bars.

The layer picture (`layer_figure`) draws `tiny(layer)` -- the layer's own kernel, stride,
padding and dilation, on one or two channels of a small input, batch 1:

- the padded input, each element coloured and labelled by its index c*H*W + y*W + x;
- the column matrix, each cell coloured and labelled as the input element it copies
  (`column_sources`), padding cells grey;
- the weight matrix, C_out x C_in/g*kH*kW, its rows by group;
- the forward GEMM of one group, drawn to scale, with M, N and K on it.

The model picture (`model_figure`): per layer (times its count) the FLOPs of a pass,
and the bytes of its forward pass with explicit im2col and with implicit GEMM, log scale.
"""

from __future__ import annotations

import colorsys
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ..perf.layer import ConvLayer  # noqa: E402

DPI = 100
PAD_COLOUR = (0.78, 0.78, 0.78)  # padding: zeros that are not in the input
GROUP_COLOURS = ((0.80, 0.88, 1.00), (1.00, 0.86, 0.72))
TICK_FONT = 7
TITLE_FONT = 8
MIN_CELL, MAX_CELL = 0.24, 0.3  # inches per matrix cell; labels are a third of it
TAPS_FOR_TWO_CHANNELS = 9  # a larger kernel is drawn on one channel (groups 1), to keep the picture legible


# ---------------------------------------------------------------- what is drawn

def tiny(layer: ConvLayer) -> ConvLayer:
    """A small copy of ``layer``: its kernel, stride, padding and dilation, groups 1 or 2, batch 1.

    Groups 1 stays 1, on two input channels (one if the layer has one, or if its kernel
    has more than 9 taps); more groups become 2, one input channel each.  Each group
    keeps at most 2 output channels.  The input is 4x4, up to 6x6 for a kernel that spans
    more than 5, or as small as the dilated kernel fits where even that is too small for
    it.  No bias: it is not in the GEMM.
    """
    groups = 1 if layer.groups == 1 else 2
    taps = layer.kernel[0] * layer.kernel[1]
    c_in = 2 if groups == 2 else (1 if layer.c_in == 1 or taps > TAPS_FOR_TWO_CHANNELS else 2)
    c_out = groups * min(layer.c_out // layer.groups, 2)
    extent = [layer.dilation[i] * (layer.kernel[i] - 1) + 1 for i in range(2)]  # the dilated kernel
    need = [extent[i] - 2 * layer.padding[i] - layer.extra_padding[i] for i in range(2)]  # to fit, padded
    hw = tuple(max(need[i], min(6, max(4, extent[i] - 1))) for i in range(2))
    return replace(layer, c_in=c_in, c_out=c_out, groups=groups, bias=False, hw=hw)


def column_sources(t: ConvLayer) -> np.ndarray:
    """Image 0's column matrix (C_in*kH*kW x OH*OW) as indices into the input, -1 for padding.

    Row r = (c*kH + i)*kW + j is input channel c seen through kernel tap (i, j); column
    l = oy*OW + ox is output position (oy, ox).  The cell copies input pixel
    y = oy*sH + i*dH - pH, x = ox*sW + j*dW - pW (top / left padding pH, pW), which is
    element c*H*W + y*W + x of the input; off the input (0 <= y < H, 0 <= x < W fails)
    it copies a padding zero.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = t.kernel, t.stride, t.padding, t.dilation
    h, w = t.hw
    oh, ow = t.out_hw()
    c, i, j, oy, ox = np.meshgrid(np.arange(t.c_in), np.arange(kh), np.arange(kw), np.arange(oh), np.arange(ow),
                                  indexing="ij")
    y = oy * sh + i * dh - ph
    x = ox * sw + j * dw - pw
    inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    return np.where(inside, (c * h + y) * w + x, -1).reshape(t.c_in * kh * kw, oh * ow)


def element_colour(index: int) -> tuple[float, float, float]:
    """A pastel colour per input element; neighbours differ (golden-ratio steps of hue)."""
    return colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.45, 1.0)


def colours_of(sources: np.ndarray) -> np.ndarray:
    out = np.empty((*sources.shape, 3))
    for index, value in np.ndenumerate(sources):
        out[index] = PAD_COLOUR if value < 0 else element_colour(int(value))
    return out


# ---------------------------------------------------------------- drawing helpers

def draw_cells(ax, colours: np.ndarray, labels: np.ndarray | None, fontsize: float) -> None:
    """One square per matrix cell (row r, column c at x=c, y=r), white grid lines, a label per cell."""
    rows, cols = colours.shape[:2]
    ax.imshow(colours, interpolation="nearest", aspect="equal")
    ax.set_xticks(np.arange(-0.5, cols), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    ax.tick_params(which="major", labelsize=TICK_FONT, length=2, pad=1)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if labels is not None:
        for (r, c), label in np.ndenumerate(labels):
            if label >= 0:
                ax.text(c, r, str(label), ha="center", va="center", fontsize=fontsize, gid="cell")


def text_inches(text: str, fontsize: float) -> float:
    """About how wide a line of text is (DejaVu Sans averages under 0.6 em per character)."""
    return len(text) * fontsize * 0.6 / 72


def tick_room(labels: list[str]) -> float:
    """Inches that tick labels need beside (y) or below (x, turned upright) their axes."""
    return max((text_inches(label, TICK_FONT) for label in labels), default=0.0) + 0.15


class Layout:
    """Axes placed in inches: rows of panels stacked in columns, with room for titles and tick labels.

    A row is one or more panels side by side, of one height, each with the same margins
    (left, right, bottom) and the row's title above it; a row is at least as wide as its
    title, with the panels centred under it.
    """

    def __init__(self):
        self.rows = []  # (column, names, widths, height, (left, right, bottom), titles)

    def add(self, column: int, names: list[str], widths: list[float], height: float, margins: tuple,
            titles: list[str]) -> None:
        self.rows.append((column, names, widths, height, margins, titles))

    @staticmethod
    def _size(row) -> tuple[float, float, float]:
        """(width, height, title height) of a row, margins and titles included."""
        _, _, widths, height, (left, right, bottom), titles = row
        title_w = max(text_inches(line, TITLE_FONT) for t in titles for line in t.split("\n"))
        panels_w = sum(w + left + right for w in widths)
        title_h = max(t.count("\n") + 1 for t in titles) * TITLE_FONT * 1.25 / 72 + 0.1
        return max(panels_w, title_w * len(widths) + 0.1), height + bottom + title_h, title_h

    def build(self, title: str, gap: float = 0.35, edge: float = 0.2):
        columns = sorted({row[0] for row in self.rows})
        widths = {c: max(self._size(r)[0] for r in self.rows if r[0] == c) for c in columns}
        heights = {c: sum(self._size(r)[1] for r in self.rows if r[0] == c) for c in columns}
        title_height = (title.count("\n") + 1) * 10 * 1.3 / 72 + 0.3
        fig_w = 2 * edge + sum(widths.values()) + gap * (len(columns) - 1)
        fig_h = title_height + max(heights.values()) + edge
        fig = plt.figure(figsize=(fig_w, fig_h), dpi=DPI)
        fig.text(0.5, 1 - 0.12 / fig_h, title, ha="center", va="top", fontsize=10)
        axes, x = {}, edge
        for c in columns:
            y = fig_h - title_height
            for row in (r for r in self.rows if r[0] == c):
                _, names, row_widths, h, (left, right, bottom), titles = row
                row_w, _, title_h = self._size(row)
                slot = row_w / len(names)  # each panel centred in an equal share of the row
                y -= title_h + h
                for i, (name, w, panel_title) in enumerate(zip(names, row_widths, titles)):
                    x_panel = x + i * slot + left + (slot - left - right - w) / 2
                    ax = fig.add_axes((x_panel / fig_w, y / fig_h, w / fig_w, h / fig_h), label=name)
                    ax.set_title(panel_title, fontsize=TITLE_FONT)
                    axes[name] = ax
                y -= bottom
            x += widths[c] + gap
        return fig, axes


# ---------------------------------------------------------------- the layer picture

def layer_figure(layer: ConvLayer, batch: int):
    """The figure for ``layer`` (its tiny instance); its axes are labelled input<c>, columns, weight, gemm."""
    t = tiny(layer)
    sources = column_sources(t)
    (kh, kw), (h, w), (oh, ow) = t.kernel, t.hw, t.out_hw()
    (ph, pw), (eh, ew) = t.padding, t.extra_padding
    rows, positions = sources.shape
    k_group, m_group = rows // t.groups, t.c_out // t.groups
    cell = max(MIN_CELL, min(MAX_CELL, 7.0 / max(rows, positions)))
    font = cell * 72 * 0.33
    weight_cell = min(cell, max(0.13, 5.0 / k_group))
    grid_h, grid_w = h + 2 * ph + eh, w + 2 * pw + ew

    row_labels = [f"c{c} ({i},{j})" for c in range(t.c_in) for i in range(kh) for j in range(kw)]
    position_labels = [f"{oy},{ox}" for oy in range(oh) for ox in range(ow)]
    weight_labels = [f"c{c} ({i},{j})" for c in range(t.c_in // t.groups) for i in range(kh) for j in range(kw)]
    pad_text = "" if (ph, pw, eh, ew) == (0, 0, 0, 0) else f", padded {ph}" + (f"x{pw}" if pw != ph else "")
    if (eh, ew) != (0, 0):
        pad_text += f" (+{eh} bottom, +{ew} right)"
    titles = {
        "input": [f"input channel {c}\n{h}x{w}{pad_text}" for c in range(t.c_in)],
        "columns": f"column matrix cols: {rows} x {positions} (C_in*kH*kW x OH*OW)\n"
                   "row: channel c, kernel tap (i,j)\ncolumn: output position oy,ox\n"
                   "cell: the input element it copies\ngrey: padding",
        "weight": f"weight W: {t.c_out} x {k_group}\n(C_out x C_in/g*kH*kW)"
                  + ("\nblue: group 0, orange: group 1" if t.groups > 1 else ""),
        "gemm": "forward, to scale:\ny (M x N) = W (M x K) @ cols (K x N)\n"
                + (f"one GEMM per group, x{t.groups}" if t.groups > 1 else "one GEMM"),
    }
    lay = Layout()
    lay.add(0, [f"input{c}" for c in range(t.c_in)], [grid_w * cell] * t.c_in, grid_h * cell, (0.1, 0.1, 0.15),
            titles["input"])
    lay.add(0, ["weight"], [k_group * weight_cell], t.c_out * weight_cell,
            (tick_room([f"o{t.c_out}"]), 0.1, tick_room(weight_labels)), [titles["weight"]])
    gemm_w, gemm_h, gemm_unit = gemm_size(m_group, positions, k_group, max(3.0, k_group * weight_cell))
    lay.add(0, ["gemm"], [gemm_w], gemm_h, (0.1, 0.1, 0.1), [titles["gemm"]])
    lay.add(1, ["columns"], [positions * cell], rows * cell, (tick_room(row_labels), 0.1, tick_room(position_labels)),
            [titles["columns"]])
    fwd = layer.gemms(batch)["fwd"]
    fig, axes = lay.build(f"conv {layer.name} as GEMMs, drawn for a tiny instance: {t.name}, batch 1\n"
                          f"(the full layer at batch {batch}: M = {fwd.m:,}, N = {fwd.n:,}, K = {fwd.k:,}, "
                          f"x{layer.groups} group{'s' if layer.groups > 1 else ''})")

    # The padded input, one channel per axes, each element labelled by its index c*H*W + y*W + x.
    for c in range(t.c_in):
        yy, xx = np.meshgrid(np.arange(grid_h) - ph, np.arange(grid_w) - pw, indexing="ij")
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        index = np.where(inside, (c * h + yy) * w + xx, -1)
        ax = axes[f"input{c}"]
        draw_cells(ax, colours_of(index), index, font)
        ax.set_xticks([])
        ax.set_yticks([])

    ax = axes["columns"]
    draw_cells(ax, colours_of(sources), sources, font)
    ax.set_yticks(range(rows), row_labels)
    ax.set_xticks(range(positions), position_labels, rotation=90)
    for g in range(1, t.groups):
        ax.axhline(g * k_group - 0.5, color="black", linewidth=2)

    ax = axes["weight"]
    draw_cells(ax, np.array([[GROUP_COLOURS[o // m_group]] * k_group for o in range(t.c_out)]), None, font)
    ax.set_yticks(range(t.c_out), [f"o{o}" for o in range(t.c_out)])
    ax.set_xticks(range(k_group), weight_labels, rotation=90)

    draw_gemm(axes["gemm"], m_group, positions, k_group, gemm_unit)
    return fig


GEMM_LABEL_ROOM = 0.5  # inches beside the rectangles for the M and K labels and the names


def gemm_gap(m: int, n: int, k: int) -> float:
    return max(1.5, 0.08 * (k + n))


def gemm_size(m: int, n: int, k: int, width: float) -> tuple[float, float, float]:
    """(width, height, inches per element) of the GEMM panel: at most ``width`` wide and 3.2 inches tall."""
    gap = gemm_gap(m, n, k)
    unit = min((width - 2 * GEMM_LABEL_ROOM) / (k + gap + n), 3.2 / (m + gap + k))
    return unit * (k + gap + n) + 2 * GEMM_LABEL_ROOM, unit * (m + gap + k) + 2 * GEMM_LABEL_ROOM, unit


def draw_gemm(ax, m: int, n: int, k: int, unit: float) -> None:
    """y (M x N) = W (M x K) @ cols (K x N) as rectangles to scale (``unit`` inches per element).

    cols sits above y, W to y's left, so K runs along W's width and cols' height.  A name
    goes inside its rectangle where it fits, else beside it.
    """
    gap = gemm_gap(m, n, k)
    room = GEMM_LABEL_ROOM / unit  # the label room in elements
    ax.set_xlim(-room, k + gap + n + room)
    ax.set_ylim(-room, m + gap + k + room)
    ax.axis("off")
    x_right, y_top = k + gap, m + gap
    font, pad = 8, 0.08 / unit
    for (x, y, w, h), colour, name in (((0, 0, k, m), GROUP_COLOURS[0], "W"),
                                       ((x_right, y_top, n, k), (0.99, 0.86, 0.94), "cols"),
                                       ((x_right, 0, n, m), (0.85, 0.95, 0.80), "y")):
        ax.add_patch(Rectangle((x, y), w, h, facecolor=colour, edgecolor="black", linewidth=1))
        if w * unit > text_inches(name, font) + 0.1 and h * unit > font * 1.4 / 72:
            ax.text(x + w / 2, y + h / 2, name, ha="center", va="center", fontsize=font)
        elif name == "cols":  # beside it, right of the column
            ax.text(x + w + pad, y + h / 2, name, ha="left", va="center", fontsize=font)
        else:  # W and y: below, where M x ... is thin
            ax.text(x + w / 2, y - pad, name, ha="center", va="top", fontsize=font)
    ax.text(x_right + n / 2, y_top + k + pad, f"N = {n}", ha="center", va="bottom", fontsize=font)
    ax.text(x_right - pad, y_top + k / 2, f"K = {k}", ha="right", va="center", fontsize=font, rotation=90)
    ax.text(-pad, m / 2, f"M = {m}", ha="right", va="center", fontsize=font, rotation=90)
    ax.text(k / 2, m + pad, f"K = {k}", ha="center", va="bottom", fontsize=font)


# ---------------------------------------------------------------- the model picture

def model_figure(records: list[dict]):
    """Bars per layer (times its count): FLOPs of a pass; bytes of the forward pass in both designs; log scale."""
    first = records[0]
    names = [f"{r['layer']} x{r['count']}" for r in records]
    xs = np.arange(len(records))
    fig, (ax_f, ax_b) = plt.subplots(2, 1, figsize=(max(7.0, 1.0 + 0.7 * len(records)), 7.5), dpi=DPI, sharex=True)
    flops = [r["count"] * r["flops"]["fwd"] for r in records]
    ax_f.bar(xs, flops, 0.6, color="C0")
    ax_f.set_ylabel("FLOPs of one pass")
    ax_f.set_title("FLOPs of each pass (forward, grad input and grad weight do the same)", fontsize=9)
    width, values = 0.38, []
    for i, (design, label) in enumerate((("im2col", "explicit im2col"), ("implicit", "implicit GEMM"))):
        values += [r["count"] * r["bytes"][design]["fwd"] for r in records]
        ax_b.bar(xs + (i - 0.5) * width, values[-len(records):], width, color=f"C{i + 1}", label=label)
    ax_b.set_ylabel("bytes of the forward pass")
    ax_b.set_title("bytes the forward pass moves: explicit im2col (columns written and read) vs implicit GEMM",
                   fontsize=9)
    ax_b.legend(fontsize=8)
    for ax, v in ((ax_f, flops), (ax_b, values)):
        ax.set_yscale("log")
        ax.set_ylim(min(v) / 3, max(v) * 2)  # the smallest bar stays visible
        ax.grid(axis="y", alpha=0.3)
    ax_b.set_xticks(xs, names, rotation=35, ha="right", fontsize=8)
    fig.suptitle(f"{first['model']}: every conv layer times its count n, batch {first['batch_size']}, "
                 f"{first['dtype']}", fontsize=10)
    fig.tight_layout()
    return fig


def write(path: Path, records: list[dict], layers: list[tuple[ConvLayer, int]], totals: dict | None):
    """Draw the model's bars (``totals`` given) or the first layer's picture; returns the PNG's (width, height)."""
    fig = model_figure(records) if totals is not None else layer_figure(layers[0][0], records[0]["batch_size"])
    fig.savefig(path, dpi=DPI)
    size = tuple(int(round(v * DPI)) for v in fig.get_size_inches())
    plt.close(fig)
    return size
