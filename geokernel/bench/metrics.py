"""What each metric means, its unit, which scenario yields it, and which way is better."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    scenario: str
    lower_is_better: bool = True
    fmt: str = "{:.3g}"


METRICS = [
    Metric("startup_s", "start-up to first kernel_info_reply", "s", "startup"),
    Metric("ready_s", "start_kernel() until ready (reply + iopub)", "s", "startup"),
    Metric("first_exec_s", "start_kernel() until the first execute result", "s", "startup"),
    Metric("idle_rss_mb", "idle RSS", "MiB", "idle"),
    Metric("threads", "OS threads", "", "idle", fmt="{:.0f}"),
    Metric("idle_cpu_pct", "idle CPU", "%", "idle", fmt="{:.2f}"),
    Metric("exec_p50_ms", "execute round trip p50", "ms", "execute_rtt"),
    Metric("exec_p99_ms", "execute round trip p99", "ms", "execute_rtt"),
    Metric("print_s", "print N lines wall time", "s", "print_lines"),
    Metric("print_msgs", "print N lines: stream messages", "", "print_lines", fmt="{:.0f}"),
    Metric("print_complete", "print N lines: all lines in order", "", "print_lines", fmt="{}"),
    Metric("comm_rt_per_s", "comm round trips", "/s", "comms", lower_is_better=False, fmt="{:.0f}"),
    Metric("complete_ms", "completion latency (median)", "ms", "completion"),
    Metric("complete_first_ms", "completion latency (first)", "ms", "completion"),
    Metric("interrupt_ms", "interrupt busy loop -> reply+idle", "ms", "interrupt"),
    Metric("hb_idle_ms", "heartbeat latency, idle", "ms", "heartbeat"),
    Metric("hb_busy_ms", "heartbeat latency, busy loop", "ms", "heartbeat"),
    Metric("rss_after_execs_mb", "RSS after M executes", "MiB", "rss_after_execs"),
    Metric("rss_growth_mb", "RSS growth over M executes", "MiB", "rss_after_execs"),
]

BY_KEY = {m.key: m for m in METRICS}
