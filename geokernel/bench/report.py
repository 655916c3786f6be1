"""Summaries (median over rounds, ratio to the first kernel), text table, JSON, PNG."""
from __future__ import annotations

import json
import statistics

from .metrics import BY_KEY, METRICS


def summarize(raw: dict, notes: dict, kernels: list[str]) -> dict:
    """{kernel: {metric: {"value", "values", "ratio", "notes"}}}; ratio vs kernels[0]."""
    out: dict = {}
    for k in kernels:
        out[k] = {}
        for key, values in raw[k].items():
            good = [v for v in values if v is not None]
            if not good:
                value = None
            elif all(isinstance(v, bool) for v in good):
                value = all(good) and len(good) == len(values)
            else:
                value = statistics.median(good)
            out[k][key] = {"value": value, "values": values, "ratio": None,
                           "notes": sorted(set(notes[k].get(key, [])))}
    base = out[kernels[0]] if kernels else {}
    for k in kernels:
        for key, entry in out[k].items():
            b = base.get(key, {}).get("value")
            v = entry["value"]
            if isinstance(v, (int, float)) and not isinstance(v, bool) and \
                    isinstance(b, (int, float)) and not isinstance(b, bool) and abs(b) > 1e-9:
                entry["ratio"] = v / b
    return out


def _cell(entry: dict, key: str) -> str:
    v = entry["value"]
    if v is None:
        return "n/a"
    m = BY_KEY.get(key)
    text = m.fmt.format(v) if m else str(v)
    if entry["ratio"] is not None:
        text += f" ({entry['ratio']:.2f}x)"
    return text


def table(summary: dict, kernels: list[str], cfg) -> str:
    rows = [["metric", "unit"] + kernels]
    for m in METRICS:
        if not any(m.key in summary[k] for k in kernels):
            continue
        label = m.label.replace(" N ", f" {cfg.lines} ").replace(" M ", f" {cfg.execs} ")
        rows.append([label, m.unit] + [_cell(summary[k][m.key], m.key) for k in kernels])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"(median of {cfg.rounds} round(s); ratios are relative to {kernels[0]}; "
                 "n/a = failed or unsupported, see JSON notes)")
    return "\n".join(lines)


def write_json(path: str, payload: dict) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=False, default=str)


def plot(path: str, summary: dict, kernels: list[str]) -> None:
    import matplotlib  # lazy: only when --plot is given
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if m.key != "print_complete"
               and any(isinstance(summary[k].get(m.key, {}).get("value"), (int, float))
                       for k in kernels)]
    cols = 4
    nrows = max(1, (len(metrics) + cols - 1) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3 * nrows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, m in zip(axes.flat, metrics):
        vals = [summary[k].get(m.key, {}).get("value") for k in kernels]
        heights = [v if isinstance(v, (int, float)) else 0 for v in vals]
        bars = ax.bar(range(len(kernels)), heights, color=colors[:len(kernels)])
        for bar, k, v in zip(bars, kernels, vals):
            r = summary[k].get(m.key, {}).get("ratio")
            label = "n/a" if v is None else (f"{r:.2f}x" if r is not None else "")
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(kernels)), kernels, fontsize=8)
        better = "lower" if m.lower_is_better else "higher"
        ax.set_title(f"{m.label}\n[{m.unit or 'count'}, {better} is better]", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
