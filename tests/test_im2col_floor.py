"""benchmarks/floor.py: the explicit-im2col floor of each pass, and its place in the records."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
import conv_bench  # noqa: E402
import floor  # noqa: E402
import layers  # noqa: E402
from report import COLUMNS, table_rows  # noqa: E402
from settings import Settings  # noqa: E402
from cifarconv.perf import roofline  # noqa: E402


def test_column_bytes():
    batch, layer = layers.parse_shape("2,64,32,32,128,3,2")  # 16x16 output pixels, 64 x 3 x 3 taps
    assert floor.column_bytes(layer, batch, 4) == 4 * 2 * 16 * 16 * 64 * 9
    _, strided_1x1 = layers.parse_shape("2,64,32,32,128,1,2")
    assert floor.column_bytes(strided_1x1, batch, 2) == 2 * 2 * 16 * 16 * 64
    _, pointwise = layers.parse_shape("2,64,32,32,128,1,1")  # the input is its own column matrix
    assert floor.column_bytes(pointwise, batch, 4) == 0


def test_floor_is_column_traffic_plus_gemm():
    # 1 GB written and read at 2 GB/s (counting both) is 1 s, plus the GEMM's 5 ms
    assert floor.im2col_floor_ms(10**9, 2.0, 5.0) == pytest.approx(1005.0)
    assert floor.im2col_floor_ms(0, 2.0, 5.0) == pytest.approx(5.0)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("groups", [1, 2])
def test_gemm_shapes_are_the_passes(groups, channels_last):
    layer = layers.ConvLayer(4, 6, (3, 3), (2, 2), (1, 1), (1, 1), groups, False, (7, 7))
    p, m, k = 2 * 4 * 4, 6 // groups, 4 // groups * 9
    fns = floor.gemm_functions(layer, 2, torch.float32, torch.device("cpu"), channels_last)
    shapes = {name: tuple(fn().shape) for name, fn in fns.items()}
    lead = () if groups == 1 else (groups,)
    if channels_last:  # pixel-major: output pixels are rows
        assert shapes == {"fwd": (*lead, p, m), "dgrad": (*lead, p, k), "wgrad": (*lead, m, k)}
    else:  # channel-major: output pixels are columns
        assert shapes == {"fwd": (*lead, m, p), "dgrad": (*lead, k, p), "wgrad": (*lead, m, k)}


def test_records_carry_the_floor_and_the_ratio_to_it():
    """One small layer through the benchmark: every pass has its floor, at least the column
    traffic, and ms / floor; the sum record adds the passes' floors."""
    batch, layer = layers.parse_shape("2,8,8,8,8,3")
    s = Settings(torch.device("cpu"), torch.float32, False, batch, warmup=1, reps=3, quick=True)
    roof = roofline.Roofline(peak_tflops=1.0, bandwidth_gbs=10.0, matmul_n=1, copy_bytes=1)
    records = conv_bench.bench_layer("shape", layer, 1, ["torch", "custom"], s, roof)
    traffic_ms = 2 * floor.column_bytes(layer, batch, 4) / 10e9 * 1e3
    for r in records:
        assert r["error"] is None
        if r["pass"] == "sum":
            passes = [q for q in records if q["backend"] == r["backend"] and q["pass"] in floor.PASSES]
            assert r["im2col_floor_ms"] == pytest.approx(sum(q["im2col_floor_ms"] for q in passes))
        else:
            assert r["im2col_floor_ms"] > traffic_ms
        assert r["ratio_to_im2col_floor"] == pytest.approx(r["ms"] / r["im2col_floor_ms"])
    table = "\n".join(table_rows(records))
    assert "im2col" in COLUMNS and f"{records[0]['ratio_to_im2col_floor']:8.2f}" in table
