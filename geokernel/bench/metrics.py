"""What each metric means, its unit, which scenario yields it, and which way is better."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str
    label: str  # may name Config fields in braces: "print {lines} lines"
    unit: str
    scenario: str
    lower_is_better: bool = True
    fmt: str = "{:.3g}"


METRICS = [
    Metric("startup_s", "start-up to first kernel_info_reply", "s", "startup"),
    Metric("ready_s", "start_kernel() until ready (reply + iopub)", "s", "startup"),
    Metric("first_exec_s", "start_kernel() until the first execute result", "s", "startup"),
    Metric("idle_rss_mb", "idle RSS (after {settle}s idle)", "MiB", "idle"),
    Metric("threads", "OS threads", "", "idle", fmt="{:.0f}"),
    Metric("idle_cpu_pct", "idle CPU (over {idle_window}s)", "%", "idle", fmt="{:.2f}"),
    Metric("exec_p50_ms", "execute round trip p50 ({exec_n} x pass)", "ms", "execute_rtt"),
    Metric("exec_p99_ms", "execute round trip p99 ({exec_n} x pass)", "ms", "execute_rtt"),
    Metric("print_s", "print {lines} lines: wall time", "s", "print_lines"),
    Metric("print_msgs", "print {lines} lines: stream messages", "", "print_lines", fmt="{:.0f}"),
    Metric("print_complete", "print {lines} lines: all in order", "", "print_lines", fmt="{}"),
    Metric("comm_rt_per_s", "comm round trips ({comm_n} echoes)", "/s", "comms", lower_is_better=False, fmt="{:.0f}"),
    Metric("complete_ms", "completion latency (median of 6)", "ms", "completion"),
    Metric("complete_first_ms", "completion latency (first of 6)", "ms", "completion"),
    Metric("interrupt_ms", "interrupt busy loop -> reply+idle", "ms", "interrupt"),
    Metric("hb_idle_ms", "heartbeat latency, idle", "ms", "heartbeat"),
    Metric("hb_busy_ms", "heartbeat latency, busy loop (cap {hb_cap}s)", "ms", "heartbeat"),
    Metric("rss_after_execs_mb", "RSS after {execs} executes", "MiB", "rss_after_execs"),
    Metric("rss_growth_mb", "RSS growth over {execs} executes", "MiB", "rss_after_execs"),
]

BY_KEY = {m.key: m for m in METRICS}


def label(m: Metric, cfg) -> str:
    """The metric's label with the run's real parameters filled in ({lines}, {execs}, ...)."""
    try:
        return m.label.format(**vars(cfg))
    except (KeyError, IndexError, ValueError):
        return m.label
