"""`geokernel bench --pool N`: what a hub with many kernels pays. N kernels of each kind are
started one after another through jupyter_client's KernelManager (so geokernel-pool really goes
through its provisioner and zygote), each asked for completions right after it is ready, then
all are kept alive together and their memory is summed.

Memory is PSS (proportional set size, /proc/PID/smaps_rollup): a page shared by k processes
counts 1/k in each, so the sum over all kernels (+ the zygote) is what they really occupy;
RSS counts shared pages once per process and would count the zygote's pages N times."""
from __future__ import annotations

import os
import statistics
import sys
import time

DEFAULT_POOL_KERNELS = "python3,geokernel,geokernel-pool"
LIMIT_MIB = 512  # the container size the "fit" row answers for
COMPLETIONS = ("import o", "pri") * 3  # as the completion scenario of the main bench


def smaps_rollup_kb(pid: int) -> dict:
    """{"Rss": kB, "Pss": kB, ...} of one process (empty if it is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[-1] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return out


def _tree(pid: int) -> list[int]:
    try:
        import psutil

        return [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except Exception:
        return [pid]


def _wait_ready(kc, timeout: float) -> None:
    """jupyter_client's wait_for_ready without its final 0.2 s of listening for iopub silence
    (a fixed cost for every kernel): a kernel_info_reply, then any iopub message (its status
    or iopub_welcome: the iopub channel is connected)."""
    from queue import Empty

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg_id = kc.kernel_info()
        try:
            while True:
                reply = kc.get_shell_msg(timeout=1)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            kc.get_iopub_msg(timeout=0.2)
            return
        except Empty:
            continue
    raise TimeoutError(f"kernel not ready within {timeout} s")


def _start(name: str, timeout: float):
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=name, ip="127.0.0.1")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        _wait_ready(kc, timeout)
    except Exception:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise
    return km, kc


def _complete_ms(kc, code: str, timeout: float) -> float:
    t0 = time.perf_counter()
    reply = kc.complete(code, reply=True, timeout=timeout)
    ms = (time.perf_counter() - t0) * 1000
    if reply["content"].get("status") != "ok":
        raise RuntimeError(f"complete_request failed: {reply['content']}")
    return ms


def measure(name: str, n: int, settle: float = 2.0, timeout: float = 60.0,
            progress=lambda text: None) -> dict:
    """Start `n` kernels of kernelspec `name` one after another; returns the figures."""
    started, ready, first, median = [], [], [], []
    from ..pool import client as pool

    zygotes_before = {z.pid for z in pool.zygotes()}
    try:
        for i in range(n):
            t0 = time.perf_counter()
            km, kc = _start(name, timeout)
            ready.append((time.perf_counter() - t0) * 1000)
            started.append((km, kc))
            times = [_complete_ms(kc, code, timeout) for code in COMPLETIONS]
            first.append(times[0])
            median.append(statistics.median(times))
            if (i + 1) % 5 == 0 or i + 1 == n:
                progress(f"    {name}: {i + 1}/{n} started (last ready in {ready[-1]:.0f} ms)")
        time.sleep(settle)  # let start-up garbage settle, as an idle hub would
        kernel_pids = [p for km, _ in started for p in _tree(km.provisioner.pid)]
        zygote_pids = [z.pid for z in pool.zygotes() if z.pid not in zygotes_before]
        kernels_mem = [smaps_rollup_kb(p) for p in kernel_pids]
        zygote_mem = [smaps_rollup_kb(p) for p in zygote_pids]
    finally:
        _stop_all(started)
    pss_total = (sum(m.get("Pss", 0) for m in kernels_mem + zygote_mem)) / 1024
    rss_kernels = [m.get("Rss", 0) / 1024 for m in kernels_mem]
    per_kernel = pss_total / n
    return {
        "start_ready_ms": statistics.median(ready),
        "complete_first_ms": statistics.median(first),
        "complete_ms": statistics.median(median),
        "pss_total_mb": pss_total,
        "pss_per_kernel_mb": per_kernel,
        "rss_per_kernel_mb": statistics.mean(rss_kernels) if rss_kernels else None,
        "zygote_pss_mb": sum(m.get("Pss", 0) for m in zygote_mem) / 1024 if zygote_pids else None,
        "fit_512mib": int(LIMIT_MIB // per_kernel) if per_kernel else None,
        "n": n,
        "_ready_ms": ready, "_first_ms": first,
    }


def _stop_all(started) -> None:
    for km, kc in started:
        kc.stop_channels()
        try:
            km.request_shutdown()
        except Exception:
            pass
    for km, _ in started:
        try:
            km.finish_shutdown(waittime=5)
            km.cleanup_resources()
        except Exception:
            pass


ROWS = [  # key, label, unit, format
    ("start_ready_ms", "start -> ready through jupyter_client (median)", "ms", "{:.0f}"),
    ("complete_first_ms", "first completion after start (median over kernels)", "ms", "{:.0f}"),
    ("complete_ms", "completion latency (median of 6, median over kernels)", "ms", "{:.1f}"),
    ("pss_total_mb", "PSS of all {n} kernels (+ zygote), summed", "MiB", "{:.0f}"),
    ("pss_per_kernel_mb", "PSS per kernel (sum / {n})", "MiB", "{:.1f}"),
    ("rss_per_kernel_mb", "RSS per kernel process (mean)", "MiB", "{:.1f}"),
    ("zygote_pss_mb", "zygote PSS (in the sum)", "MiB", "{:.1f}"),
    ("fit_512mib", "kernels that fit in 512 MiB (by PSS per kernel)", "", "{:.0f}"),
]


def table(results: dict, kernels: list[str], n: int) -> str:
    base = results.get(kernels[0], {})
    rows = [["metric", "unit"] + kernels]
    for key, text, unit, fmt in ROWS:
        cells = []
        for k in kernels:
            v = results.get(k, {}).get(key)
            if v is None:
                cells.append("n/a")
                continue
            cell = fmt.format(v)
            b = base.get(key)
            if k != kernels[0] and isinstance(b, (int, float)) and b:
                cell += f" ({v / b:.2f}x)"
            cells.append(cell)
        rows.append([text.format(n=n), unit] + cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    ratio = ""
    b = base.get("rss_per_kernel_mb")
    for k in kernels[1:]:
        pss = results.get(k, {}).get("pss_per_kernel_mb")
        if b and pss:
            ratio += f"; {k} PSS per kernel = {pss / b:.2f}x {kernels[0]}'s RSS per kernel"
    lines.append(f"({n} kernels of each kind, started one after another; ratios vs "
                 f"{kernels[0]}{ratio})")
    return "\n".join(lines)


def run(kernels: list[str], n: int, settle: float, progress) -> dict:
    from ..pool import client as pool

    results = {}
    try:
        for name in kernels:
            progress(f"[pool] {n} x {name} ...")
            t0 = time.monotonic()
            try:
                results[name] = measure(name, n, settle, progress=progress)
            except Exception as e:  # a missing or broken kernel must not stop the others
                progress(f"    {name}: FAILED ({type(e).__name__}: {e})")
                results[name] = {"error": f"{type(e).__name__}: {e}"}
            progress(f"    {name}: {time.monotonic() - t0:.0f}s")
    finally:
        pool.shutdown_all()
    return results


def main(args, progress) -> int:
    import json
    import platform

    kernels = [k.strip() for k in (args.kernels or DEFAULT_POOL_KERNELS).split(",") if k.strip()]
    t0 = time.time()
    results = run(kernels, args.pool, 2.0 if not args.quick else 0.5, progress)
    print(table(results, kernels, args.pool))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": {"started": t0, "duration_s": time.time() - t0,
                                "python": sys.version.split()[0], "platform": platform.platform(),
                                "cpus": os.cpu_count(), "n": args.pool},
                       "kernels": kernels, "baseline": kernels[0], "results": results},
                      f, indent=1)
        progress(f"wrote {args.json}")
    return 0 if all("error" not in r for r in results.values()) else 1
