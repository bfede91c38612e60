"""python -m cifarconv.explain: GEMM shapes and FLOPs, bytes of both designs, the column picture, --plot, bad input.

Every expected figure is worked out by hand here, from the layer's sizes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest
import torch
import torch.nn.functional as F

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cifarconv.explain import plot  # noqa: E402
from cifarconv.explain.cli import MODELS, main  # noqa: E402  (the trainer's models, imported once, there)
from cifarconv.explain.figures import record  # noqa: E402
from cifarconv.perf.extract import distinct, layers_of  # noqa: E402
from cifarconv.perf.layer import ConvLayer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def explain_json(argv: list[str], capsys) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["layers"][0]


# (flags, output shape, per pass (M, N, K), groups, FLOPs of each pass), all by hand.
# M, N, K of C (M x N) = A (M x K) @ B (K x N): forward (C_out/g, P, K_c), grad input (K_c, P, C_out/g),
# grad weight (C_out/g, K_c, P), with K_c = C_in/g * kH * kW and P = N * OH * OW.
LAYERS = {
    # 8 -> 16 in 4 groups: C_out/g = 4, K_c = 2*3*3 = 18; OH = OW = 10 (padding 1), P = 2*10*10 = 200.
    "grouped": (["--in-channels", "8", "--out-channels", "16", "--groups", "4", "--input", "2,8,10,10"],
                [2, 16, 10, 10], {"fwd": (4, 200, 18), "dgrad": (18, 200, 4), "wgrad": (4, 18, 200)}, 4,
                2 * 4 * 4 * 200 * 18),
    # dilation 2: the 3x3 kernel spans 5, OH = OW = 9 - 5 + 1 = 5, P = 25; K_c = 3*3*3 = 27.
    "dilated": (["--in-channels", "3", "--dilation", "2", "--padding", "0", "--input", "1,3,9,9"],
                [1, 8, 5, 5], {"fwd": (8, 25, 27), "dgrad": (27, 25, 8), "wgrad": (8, 27, 25)}, 1,
                2 * 8 * 25 * 27),
    # stride 2: OH = OW = (8 + 2 - 3) // 2 + 1 = 4, P = 4*4*4 = 64; K_c = 16*9 = 144.
    "strided": (["--in-channels", "16", "--out-channels", "32", "--stride", "2", "--input", "4,16,8,8"],
                [4, 32, 4, 4], {"fwd": (32, 64, 144), "dgrad": (144, 64, 32), "wgrad": (32, 144, 64)}, 1,
                2 * 32 * 64 * 144),
    # 1x1: the columns are the input itself, K_c = 64, P = 2*4*4 = 32.
    "1x1": (["--in-channels", "64", "--out-channels", "128", "--kernel-size", "1", "--padding", "0",
             "--input", "2,64,4,4"],
            [2, 128, 4, 4], {"fwd": (128, 32, 64), "dgrad": (64, 32, 128), "wgrad": (128, 64, 32)}, 1,
            2 * 128 * 32 * 64),
    # depthwise: 32 groups of one channel, C_out/g = 1, K_c = 9, P = 6*6 = 36.
    "depthwise": (["--in-channels", "32", "--out-channels", "32", "--groups", "32", "--input", "1,32,6,6"],
                  [1, 32, 6, 6], {"fwd": (1, 36, 9), "dgrad": (9, 36, 1), "wgrad": (1, 9, 36)}, 32,
                  2 * 32 * 1 * 36 * 9),
}


@pytest.mark.parametrize("name", LAYERS)
def test_gemm_shapes_and_flops(name, capsys):
    argv, output, gemms, groups, flops = LAYERS[name]
    rec = explain_json(argv, capsys)
    assert rec["output"] == output
    assert {p: (g["M"], g["N"], g["K"]) for p, g in rec["gemms"].items()} == gemms
    assert {g["groups"] for g in rec["gemms"].values()} == {groups}
    assert rec["flops"] == {"fwd": flops, "dgrad": flops, "wgrad": flops}
    assert rec["proof"]["ok"] and rec["proof"]["unfold_max_diff"] == 0


def test_default_layer_as_text(capsys):
    """No arguments: nn.Conv2d(3, 8, 3, padding=1) on 2x3x8x8, K_c = 27, P = 2*8*8 = 128; and a usage line."""
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "output 2x8x8x8" in out
    for row in (r"forward\s+y = W\s+@ cols\s+8\s+128\s+27\s+55.3 kFLOP",  # 2*8*128*27 = 55,296
                r"grad input\s+dcols = W\^T\s+@ dy\s+27\s+128\s+8\s+55.3 kFLOP",
                r"grad weight\s+dW = dy\s+@ cols\^T\s+8\s+27\s+128\s+55.3 kFLOP"):
        assert re.search(row, out), row
    assert re.search(r"forward .* vs F.conv2d: .* ok", out)
    assert out.rstrip().splitlines()[-1].startswith("usage: python -m cifarconv.explain")


def test_bytes_of_both_designs_resnet18_layer():
    """ResNet-18's 64->128 3x3 stride-2 conv at batch 512 in bfloat16 (2 bytes), found by the model's hooks."""
    found = distinct(layers_of(MODELS["resnet18"](), torch.zeros(1, 3, 32, 32)))
    layers = {layer.name: layer for layer, _ in found}
    rec = record(layers["64->128 k3 s2 32x32"], 1, 512, torch.bfloat16, None)
    x = 512 * 64 * 32 * 32  # 33,554,432 input elements
    w = 128 * 64 * 3 * 3  # 73,728
    y = 512 * 128 * 16 * 16  # 16,777,216 (stride 2: 16x16)
    cols = 64 * 3 * 3 * 512 * 16 * 16  # 576 rows x 131,072 output positions = 75,497,472
    implicit = 2 * (x + w + y)  # 100,810,752 bytes: each pass reads two of x, w, y and writes the third
    im2col = implicit + 2 * 2 * cols  # + the column matrix written once and read once: 402,800,640
    assert rec["bytes"] == {"implicit": {"fwd": implicit, "dgrad": implicit, "wgrad": implicit},
                            "im2col": {"fwd": im2col, "dgrad": im2col, "wgrad": im2col}}
    assert (implicit, im2col) == (100_810_752, 402_800_640)
    assert rec["columns"]["bytes"] == 2 * cols and rec["columns"]["times_input"] == 9 * 16 * 16 / (32 * 32)
    assert rec["intensity"]["implicit"]["fwd"] == pytest.approx(2 * 128 * 131072 * 576 / implicit)


PICTURED = {  # layers whose tiny instance the mapping test checks
    "stride 2, padding 1": ConvLayer(3, 8, (3, 3), (2, 2), (1, 1), (1, 1), 1, False, (16, 16)),
    "dilation 2": ConvLayer(3, 8, (3, 3), (1, 1), (2, 2), (2, 2), 1, False, (16, 16)),
    "groups 4": ConvLayer(8, 8, (3, 3), (1, 1), (1, 1), (1, 1), 4, True, (8, 8)),
    "1x3, no padding": ConvLayer(2, 4, (1, 3), (1, 1), (0, 0), (1, 1), 1, False, (8, 8)),
    "7x7 stride 2": ConvLayer(3, 64, (7, 7), (2, 2), (3, 3), (1, 1), 1, False, (32, 32)),
    "same, even kernel": ConvLayer(3, 8, (2, 2), (1, 1), (0, 0), (1, 1), 1, True, (8, 8), extra_padding=(1, 1)),
}


def cells(ax) -> tuple:
    """(colours (rows, cols, 3), {(row, col): label}) of a panel drawn by plot.draw_cells."""
    colours = ax.get_images()[0].get_array()
    labels = {(round(t.get_position()[1]), round(t.get_position()[0])): int(t.get_text())
              for t in ax.texts if t.get_gid() == "cell"}
    return colours, labels


@pytest.mark.parametrize("name", PICTURED)
def test_column_picture_maps_cells_like_unfold(name):
    layer = PICTURED[name]
    t = plot.tiny(layer)
    assert (t.kernel, t.stride, t.padding, t.dilation) == (layer.kernel, layer.stride, layer.padding, layer.dilation)
    assert 1 <= t.c_in <= 2 and all(4 <= s <= 6 for s in t.hw) and t.groups == min(layer.groups, 2)

    # What F.unfold copies from an input whose elements hold their own index + 1 (padding reads 0).
    c, (h, w), (eh, ew) = t.c_in, t.hw, t.extra_padding
    index_input = F.pad(torch.arange(1, c * h * w + 1, dtype=torch.float64).view(1, c, h, w), (0, ew, 0, eh))
    want = (F.unfold(index_input, t.kernel, t.dilation, t.padding, t.stride)[0] - 1).long()

    fig = plot.layer_figure(layer, batch=2)
    axes = {ax.get_label(): ax for ax in fig.axes}
    colours, labels = cells(axes["columns"])
    assert colours.shape[:2] == tuple(want.shape)
    assert labels == {(r, l): int(want[r, l]) for r in range(want.shape[0]) for l in range(want.shape[1])
                      if want[r, l] >= 0}  # every labelled cell, and only those, names what F.unfold copies
    inputs = [cells(axes[f"input{ch}"]) for ch in range(c)]
    ph, pw = t.padding
    for (r, l), source in ((rl, int(v)) for rl, v in zip(torch.cartesian_prod(*map(torch.arange, want.shape)).tolist(),
                                                           want.flatten())):
        colour = tuple(colours[r, l])
        if source < 0:
            assert colour == pytest.approx(plot.PAD_COLOUR), (r, l)
            continue
        ch, y, x = source // (h * w), source // w % h, source % w
        in_colours, in_labels = inputs[ch]
        assert in_labels[y + ph, x + pw] == source  # the input panel labels the same element there
        assert colour == pytest.approx(tuple(in_colours[y + ph, x + pw])) != pytest.approx(plot.PAD_COLOUR)
    plt.close(fig)


def test_plot_writes_a_png_of_the_expected_size(tmp_path, capsys):
    """The module entry point (one subprocess) draws the default layer; --model draws bars (in-process)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    layer_png = tmp_path / "layer.png"
    proc = subprocess.run([sys.executable, "-m", "cifarconv.explain", "--plot", str(layer_png)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    default = ConvLayer(3, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1, True, (8, 8))  # nn.Conv2d(3, 8, 3, padding=1)
    fig = plot.layer_figure(default, batch=2)
    width, height = (round(v * plot.DPI) for v in fig.get_size_inches())
    plt.close(fig)
    assert f"wrote {layer_png} ({width} x {height} px)" in proc.stdout
    assert plt.imread(layer_png).shape == (height, width, 4)
    assert 600 <= width <= 2000 and 500 <= height <= 1500  # about 12 x 9 inches at 100 dpi: legible, not huge

    model_png = tmp_path / "model.png"
    assert main(["--model", "resnet9", "--batch-size", "8", "--plot", str(model_png)]) == 0
    size = re.search(r"wrote .*model.png \((\d+) x (\d+) px\)", capsys.readouterr().out)
    assert plt.imread(model_png).shape == (int(size[2]), int(size[1]), 4)


@pytest.mark.parametrize("argv, message", [
    (["--kernel-size", "7", "--padding", "0", "--input", "1,3,5,5"],
     "--kernel-size 7 (with --dilation 1) spans 7x7, larger than the 5x5 input padded by --padding 0 (5x5)"),
    (["--kernel-size", "3", "--dilation", "3", "--padding", "1", "--input", "1,3,4,4"],
     "spans 7x7, larger than the 4x4 input padded by --padding 1 (6x6)"),
    (["--in-channels", "6", "--groups", "4"], "--groups 4 must divide both the input channels (6) and --out-channels"),
    (["--out-channels", "10", "--groups", "3", "--in-channels", "3"], "--groups 3 must divide both"),
    (["--stride", "0"], "--stride must be >= 1 in each dimension, got '0'"),
    (["--stride", "2,0"], "--stride must be >= 1 in each dimension, got '2,0'"),
    (["--input", "2,3,8"], "--input wants N,C,H,W (four integers, e.g. 2,3,8,8), got '2,3,8'"),
    (["--input", "2,3,a,8"], "--input wants N,C,H,W"),
    (["--input", "2,3,0,8"], "--input N,C,H,W must all be >= 1"),
])
def test_bad_input_is_one_line_and_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # argparse: the usage, then one error line
    assert last.startswith("python -m cifarconv.explain: error: ") and message in last
    assert "Traceback" not in err
