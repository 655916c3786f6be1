"""Summaries (median over rounds, ratio to the first kernel), text table, JSON, PNG."""
from __future__ import annotations

import json
import statistics
import time

from .metrics import BY_KEY, METRICS, label


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
        rows.append([label(m, cfg), m.unit] + [_cell(summary[k][m.key], m.key) for k in kernels])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"(median of {cfg.rounds} round(s); ratios are relative to {kernels[0]}; "
                 "n/a = failed or unsupported, see JSON notes)")
    return "\n".join(lines)


def write_json(path: str, payload: dict) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=False, default=str)


def plottable(summary: dict, kernels: list[str]) -> list:
    """Metrics with at least one numeric value: a panel of only n/a would be empty."""
    return [m for m in METRICS
            if any(isinstance(summary[k].get(m.key, {}).get("value"), (int, float))
                   and not isinstance(summary[k].get(m.key, {}).get("value"), bool)
                   for k in kernels)]


def _base(kernel: str) -> str:
    return kernel.split(":", 1)[1] if kernel.startswith("remote:") else kernel


def title(cfg, kernels: list[str], started: float, server: str | None = None) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    where = f"; remote: = on {server}" if server and any(k.startswith("remote:") for k in kernels) else ""
    return (f"geokernel bench, {when}: {cfg.rounds} round(s), median per kernel; "
            f"kernels {', '.join(kernels)} (ratios vs {kernels[0]}){where}")


def plot(path: str, summary: dict, kernels: list[str], cfg, started: float,
         server: str | None = None) -> int:
    """One bar panel per metric that has data; returns the number of panels drawn."""
    import matplotlib  # lazy: only when --plot is given
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = plottable(summary, kernels)
    cols = min(4, max(1, len(metrics)))
    nrows = max(1, (len(metrics) + cols - 1) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.1 * nrows + 0.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    # a kernel and the same kernel behind a server share a colour (the remote bar is hatched)
    bases = list(dict.fromkeys(_base(k) for k in kernels))
    colour = {b: colors[i % len(colors)] for i, b in enumerate(bases)}
    for ax, m in zip(axes.flat, metrics):
        vals = [summary[k].get(m.key, {}).get("value") for k in kernels]
        heights = [v if isinstance(v, (int, float)) else 0 for v in vals]
        bars = ax.bar(range(len(kernels)), heights, color=[colour[_base(k)] for k in kernels],
                      edgecolor="black", linewidth=0.4)
        for bar, k in zip(bars, kernels):
            if k.startswith("remote:"):
                bar.set_hatch("//")  # behind a server: same colour family, hatched
        for i, (bar, k, v) in enumerate(zip(bars, kernels, vals)):
            # every bar says its value (a zero bar is invisible) and its ratio to the baseline
            r = summary[k].get(m.key, {}).get("ratio")
            text = "n/a" if v is None else m.fmt.format(v) + (m.unit if m.unit != "" else "")
            if v is not None and r is not None and i > 0:
                text += f"\n{r:.2f}x"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
        if not any(heights):
            ax.set_ylim(0, 1)  # all zero: keep the labels on a visible axis
        ax.set_xticks(range(len(kernels)), kernels, fontsize=7, rotation=15 if len(kernels) > 3 else 0)
        better = "lower" if m.lower_is_better else "higher"
        ax.set_title(f"{label(m, cfg)}\n[{m.unit or 'count'}, {better} is better]", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.margins(y=0.25)
    for ax in list(axes.flat)[len(metrics):]:
        fig.delaxes(ax)  # no empty panels
    fig.suptitle(title(cfg, kernels, started, server), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (3.1 * nrows + 0.6)))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(metrics)
