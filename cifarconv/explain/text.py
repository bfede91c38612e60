"""The figures as text: one layer in full, or a model as one row per layer, its totals and who dominates."""

from __future__ import annotations

from ..perf.layer import DESIGNS, PASS_NAMES, PASSES

GEMM_LINES = {  # pass: (C, A, B, what follows)
    "fwd": ("y", "W", "cols", "+ bias" ),
    "dgrad": ("dcols", "W^T", "dy", "then dx = col2im(dcols)"),
    "wgrad": ("dW", "dy", "cols^T", "and db = sum of dy"),
}
DESIGN_NAMES = {"im2col": "explicit im2col", "implicit": "implicit GEMM"}


def si(value: float, unit: str = "") -> str:
    """3 significant digits with a k / M / G / T prefix: ``si(55296, "FLOP")`` is ``55.3 kFLOP``."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def shape(values) -> str:
    return "x".join(str(v) for v in values)


def conv_call(rec: dict) -> str:
    c = rec["conv"]
    padding = "'same'" if any(c["extra_padding"]) else tuple(c["padding"])
    return (f"nn.Conv2d({c['in_channels']}, {c['out_channels']}, kernel_size={tuple(c['kernel_size'])}, "
            f"stride={tuple(c['stride'])}, padding={padding}, dilation={tuple(c['dilation'])}, "
            f"groups={c['groups']}, bias={c['bias']})")


def roofline_line(roof_json: dict | None, source: str) -> str:
    if roof_json is None:
        return "roofline: none (--device measures one; --peak-tflops and --bandwidth-gbs give a known one)"
    sizes = ""
    if roof_json["matmul_n"]:
        sizes = f" ({roof_json['matmul_n']}^3 matmul, {roof_json['copy_bytes'] / 2**21:.0f} MiB copy)"
    return (f"roofline ({source}): peak {ratio(roof_json['peak_tflops'])} TFLOP/s, bandwidth "
            f"{ratio(roof_json['bandwidth_gbs'])} GB/s{sizes}; time floor = max(FLOPs / peak, bytes / bandwidth)")


def proof_lines(proof: dict, indent: str = "  ") -> list[str]:
    verdict = "ok" if proof["ok"] else "DIFFERS"
    relative = proof["conv_max_diff"] / proof["conv_max_abs"] if proof["conv_max_abs"] else 0.0
    return [
        f"{indent}columns  cifarconv.unfold(backend={proof['backend']!r}) vs F.unfold:  "
        f"max |diff| {proof['unfold_max_diff']:.1e}" + (" (exact)" if proof["unfold_max_diff"] == 0 else ""),
        f"{indent}forward  columns @ weight per group vs F.conv2d:  max |diff| {proof['conv_max_diff']:.1e} "
        f"= {relative:.1e} of max |y| (allowed {proof['tolerance']:.0e})  {verdict}",
    ]


def timed(rec: dict, design: str, p: str) -> str:
    """A time floor and what sets it: compute (FLOPs / peak) or memory (bytes / bandwidth)."""
    return f"{rec['roofline_ms'][design][p]:.3g} ({rec['roofline_bound'][design][p]})"


def layer_text(rec: dict, roof_text: str) -> str:
    g = rec["conv"]["groups"]
    columns = rec["columns"]
    with_time = rec["roofline_ms"] is not None
    lines = [
        f"conv {rec['layer']}: {conv_call(rec)}",
        f"input {shape(rec['input'])} (N, C_in, H, W), {rec['dtype']}",
        f"output {shape(rec['output'])} (N, C_out, OH, OW);  weight {shape(rec['weight'])}",
        "",
        f"GEMMs, one per group (x{g}), each C (M x N) = A (M x K) @ B (K x N), summed over K:",
        f"  {'pass':12s} {'C':>5s} = {'A':4s} @ {'B':7s} {'M':>9s} {'N':>10s} {'K':>9s} {'FLOPs':>11s}",
    ]
    for p in PASSES:
        c, a, b, then = GEMM_LINES[p]
        gemm = rec["gemms"][p]
        if not rec["conv"]["bias"]:
            then = then.removesuffix("+ bias").removesuffix("and db = sum of dy")
        lines.append(f"  {PASS_NAMES[p]:12s} {c:>5s} = {a:4s} @ {b:7s} {gemm['M']:9,d} {gemm['N']:10,d} "
                     f"{gemm['K']:9,d} {si(rec['flops'][p], 'FLOP'):>11s}  {then}".rstrip())
    lines += [
        "",
        f"column matrix: {shape(columns['shape'][1:])} per group x{g} (C_in/g*kH*kW x N*OH*OW), "
        f"{si(columns['bytes'], 'B')} in {rec['dtype']}, {columns['times_input']:.3g}x the input",
        "",
        "bytes per pass, each tensor moved once (explicit im2col also writes and reads the column matrix once);",
        "intensity = FLOPs / bytes" + ("; time floor from the roofline:" if with_time else ":"),
        f"  {'pass':12s} {'im2col':>10s} {'implicit':>10s} {'FLOP/B im2col':>14s} {'implicit':>9s}"
        + (f" {'ms floor im2col':>16s} {'implicit':>16s}" if with_time else ""),
    ]
    for p in PASSES:
        row = (f"  {PASS_NAMES[p]:12s} {si(rec['bytes']['im2col'][p], 'B'):>10s} "
               f"{si(rec['bytes']['implicit'][p], 'B'):>10s} {ratio(rec['intensity']['im2col'][p]):>14s} "
               f"{ratio(rec['intensity']['implicit'][p]):>9s}")
        if with_time:
            row += "".join(f" {timed(rec, d, p):>{w}s}" for d, w in (("im2col", 16), ("implicit", 16)))
        lines.append(row)
    proof = rec["proof"]
    lines += ["", roof_text, "",
              f"proof (backend {proof['backend']} on {proof['device']}, {rec['dtype']}, random {shape(proof['input'])} "
              "input" + (f", on the smaller {proof['layer']}" if proof["layer"] != rec["layer"] else "") + "):",
              *proof_lines(proof)]
    return "\n".join(lines)


def ratio(value: float) -> str:
    """An intensity: 3 significant digits, whole numbers from 100 up (no exponents)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


MODEL_LEGEND = """\
GEMMs per group, C (M x N) = A (M x K) @ B (K x N):
  forward      M = C_out/g        N = N*OH*OW        K = C_in/g*kH*kW
  grad input   M = C_in/g*kH*kW   N = N*OH*OW        K = C_out/g
  grad weight  M = C_out/g        N = C_in/g*kH*kW   K = N*OH*OW
FLOPs: of each pass (the three do the same); cols: the column matrix, x in: its size / the input's;
bytes, FLOP/B and ms: the forward pass, explicit im2col and implicit GEMM (grad input and grad weight
differ from it only by a bias; --json has every pass)"""


def table(columns: list[tuple[str, str, int]], rows: list[list[str]]) -> list[str]:
    """Right-aligned columns (the first left-aligned) under a two-line header: (group, name, width) each."""
    def line(cells):
        return " ".join(f"{c:{'<' if i == 0 else '>'}{w}s}" for i, (c, (_, _, w)) in enumerate(zip(cells, columns)))
    groups, i = [], 0
    while i < len(columns):  # a group's name centred over its columns
        j = i
        while j + 1 < len(columns) and columns[j + 1][0] == columns[i][0]:
            j += 1
        width = sum(w for _, _, w in columns[i:j + 1]) + (j - i)
        groups.append(f"{columns[i][0]:^{width}s}")
        i = j + 1
    return [" ".join(groups).rstrip(), line([name for _, name, _ in columns])] + [line(r) for r in rows]


def model_text(records: list[dict], totals: dict, roof_text: str) -> str:
    first = records[0]
    with_time = totals["roofline_ms"] is not None
    lines = [f"{first['model']}: {totals['convs']} convs ({len(records)} distinct), batch {first['batch_size']}, "
             f"{first['dtype']}", MODEL_LEGEND, ""]
    name_width = max(len(r["layer"]) for r in records)
    columns = [("", "layer", name_width), ("", "n", 2), ("", "output", 10), ("GEMM sizes", "g", 2),
               ("GEMM sizes", "C_out/g", 7), ("GEMM sizes", "C_in/g*kk", 9), ("GEMM sizes", "N*OH*OW", 8),
               ("", "FLOPs", 6), ("column matrix", "bytes", 7), ("column matrix", "x in", 5),
               ("bytes", "im2col", 7), ("bytes", "implicit", 8), ("FLOP/B", "im2col", 6), ("FLOP/B", "implicit", 8)]
    if with_time:
        columns += [("ms floor", "im2col", 7), ("ms floor", "implicit", 8)]
    rows = []
    for r in records:
        g = r["gemms"]["fwd"]
        row = [r["layer"], str(r["count"]), shape(r["output"][1:]), str(g["groups"]), str(g["M"]), str(g["K"]),
               str(g["N"]), si(r["flops"]["fwd"]), si(r["columns"]["bytes"], "B"), f"{r['columns']['times_input']:.3g}",
               si(r["bytes"]["im2col"]["fwd"], "B"), si(r["bytes"]["implicit"]["fwd"], "B"),
               ratio(r["intensity"]["im2col"]["fwd"]), ratio(r["intensity"]["implicit"]["fwd"])]
        if with_time:
            row += [f"{r['roofline_ms'][d]['fwd']:.3g}" for d in DESIGNS]
        rows.append(row)
    lines += table(columns, rows)

    lines += ["", f"totals over the {totals['convs']} convs (each layer times its count n):"]
    columns = [("", "pass", 12), ("", "FLOPs", 10), ("bytes", "im2col", 8), ("bytes", "implicit", 8),
               ("FLOP/B", "im2col", 6), ("FLOP/B", "implicit", 8)]
    if with_time:
        columns += [("ms floor", "im2col", 8), ("ms floor", "implicit", 8)]
    rows = []
    for p in PASSES:
        row = [PASS_NAMES[p], si(totals["flops"][p], "FLOP"), si(totals["bytes"]["im2col"][p], "B"),
               si(totals["bytes"]["implicit"][p], "B"), ratio(totals["intensity"]["im2col"][p]),
               ratio(totals["intensity"]["implicit"][p])]
        if with_time:
            row += [f"{totals['roofline_ms'][d][p]:.3g}" for d in DESIGNS]
        rows.append(row)
    lines += ["  " + line for line in table(columns, rows)]

    lines += ["", "the layer that dominates each pass (its share of the pass, counts included):"]
    labels = {"flops": "FLOPs", **{f"bytes_{d}": f"{d} bytes" for d in DESIGNS},
              **({f"ms_{d}": f"{d} time" for d in DESIGNS} if with_time else {})}

    def leaders(p):
        return tuple(f"{label}: {totals['dominant'][p][m]['layer']} x{totals['dominant'][p][m]['count']} "
                     f"({100 * totals['dominant'][p][m]['share']:.0f} %)" for m, label in labels.items())
    by_leaders: dict[tuple, list[str]] = {}  # passes with the same leaders share one entry
    for p in PASSES:
        by_leaders.setdefault(leaders(p), []).append(PASS_NAMES[p])
    for parts, passes in by_leaders.items():
        lines.append(f"  {', '.join(passes)}:")
        lines += [f"    {part}" for part in parts]

    lines += ["", roof_text, "",
              f"proof per layer (backend {first['proof']['backend']} on {first['proof']['device']}, "
              f"{first['dtype']}, random input of batch {first['proof']['input'][0]}): max |diff| of the columns "
              "from F.unfold, and of columns @ weight from F.conv2d / max |y|:"]
    for r in records:
        pr = r["proof"]
        relative = pr["conv_max_diff"] / pr["conv_max_abs"] if pr["conv_max_abs"] else 0.0
        lines.append(f"  {r['layer']:{name_width}s} columns {pr['unfold_max_diff']:.1e}   forward {relative:.1e} "
                     f"(allowed {pr['tolerance']:.0e})  {'ok' if pr['ok'] else 'DIFFERS'}"
                     + (f"  (on {shape(pr['input'])})" if pr["layer"] != r["layer"] else ""))
    return "\n".join(lines)
