"""The figures of each layer, as one JSON-ready record, and a model's totals.

Every number comes from `cifarconv.perf.layer.ConvLayer` (the benchmark's arithmetic):
its GEMMs, FLOPs and the bytes of both designs; with a roofline, their time floors.
The text output (`text`) and ``--json`` print these same records.
"""

from __future__ import annotations

from math import prod

import torch

from ..perf.layer import DESIGNS, PASSES, ConvLayer
from ..perf.roofline import Roofline


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def record(layer: ConvLayer, count: int, batch: int, dtype: torch.dtype, roof: Roofline | None,
           model: str | None = None) -> dict:
    """One layer's figures at this batch size and dtype (``count``: how often the model runs it)."""
    shapes = layer.shapes(batch)
    gemms = layer.gemms(batch)
    flops = {p: gemms[p].flops for p in PASSES}
    nbytes = layer.bytes(batch, dtype.itemsize)
    columns = layer.columns_shape(batch)
    rec = {
        "model": model, "layer": layer.name, "count": count, "batch_size": batch, "dtype": dtype_name(dtype),
        "conv": {"in_channels": layer.c_in, "out_channels": layer.c_out, "kernel_size": list(layer.kernel),
                 "stride": list(layer.stride), "padding": list(layer.padding),
                 "extra_padding": list(layer.extra_padding), "dilation": list(layer.dilation),
                 "groups": layer.groups, "bias": layer.bias},
        **{name: list(shape) for name, shape in shapes.items()},  # input, weight, output
        "gemms": {p: {"M": g.m, "N": g.n, "K": g.k, "groups": g.groups} for p, g in gemms.items()},
        "flops": flops,
        "columns": {"shape": list(columns), "bytes": prod(columns) * dtype.itemsize,
                    "times_input": prod(columns) / prod(shapes["input"])},
        "bytes": nbytes,
        "intensity": {d: {p: flops[p] / nbytes[d][p] for p in PASSES} for d in DESIGNS},
        "roofline_ms": None,  # with a roofline: max(FLOPs / peak, bytes / bandwidth) per design and pass
        "roofline_bound": None,  # which of the two sets it: "compute" or "memory"
    }
    if roof is not None:
        rec["roofline_ms"] = {d: {p: roof.floor_ms(flops[p], nbytes[d][p]) for p in PASSES} for d in DESIGNS}
        rec["roofline_bound"] = {d: {p: "compute" if roof.floor_ms(flops[p], 0) >= roof.floor_ms(0, nbytes[d][p])
                                     else "memory" for p in PASSES} for d in DESIGNS}
    return rec


def totals(records: list[dict]) -> dict:
    """Per pass: the model's FLOPs, bytes and time floors (each layer times its count), and which layer leads.

    ``dominant[pass][measure]`` names the layer with the largest share of that pass's
    ``flops``, ``bytes_<design>`` or (with a roofline) ``ms_<design>``, counts included.
    """
    def weighted(get):
        return {p: [r["count"] * get(r, p) for r in records] for p in PASSES}

    measures = {"flops": weighted(lambda r, p: r["flops"][p])}
    for d in DESIGNS:
        measures[f"bytes_{d}"] = weighted(lambda r, p, d=d: r["bytes"][d][p])
    if all(r["roofline_ms"] is not None for r in records):
        for d in DESIGNS:
            measures[f"ms_{d}"] = weighted(lambda r, p, d=d: r["roofline_ms"][d][p])
    sums = {m: {p: sum(v[p]) for p in PASSES} for m, v in measures.items()}
    dominant = {}
    for p in PASSES:
        dominant[p] = {}
        for m, values in measures.items():
            i = max(range(len(records)), key=lambda i: values[p][i])
            dominant[p][m] = {"layer": records[i]["layer"], "count": records[i]["count"],
                              "share": values[p][i] / sums[m][p] if sums[m][p] else 0.0}
    result = {
        "convs": sum(r["count"] for r in records),
        "flops": sums["flops"],
        "bytes": {d: sums[f"bytes_{d}"] for d in DESIGNS},
        "intensity": {d: {p: sums["flops"][p] / sums[f"bytes_{d}"][p] for p in PASSES} for d in DESIGNS},
        "roofline_ms": {d: sums[f"ms_{d}"] for d in DESIGNS} if "ms_im2col" in sums else None,
        "dominant": dominant,
    }
    return result
