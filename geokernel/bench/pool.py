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
FIRST = "pri"  # a first completion: names and builtins (jedi's costly first inference)


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


IDLE_BEFORE_TAB = 3.0  # seconds between the first cell and the first completion


def _execute(kc, code: str, timeout: float) -> None:
    msg_id = kc.execute(code)
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    if reply["content"].get("status") != "ok":
        raise RuntimeError(f"execute failed: {reply['content']}")


def _complete_ms(kc, code: str, timeout: float) -> float:
    t0 = time.perf_counter()
    reply = kc.complete(code, reply=True, timeout=timeout)
    ms = (time.perf_counter() - t0) * 1000
    if reply["content"].get("status") != "ok":
        raise RuntimeError(f"complete_request failed: {reply['content']}")
    return ms


def _prestart(name: str) -> float | None:
    """For a pooled kernelspec: start its zygote ahead of time (as a server would at start-up)
    and return how long that took; the kernels' start-up is then the steady state."""
    from jupyter_client.kernelspec import KernelSpecManager

    from ..pool import client as pool

    spec = KernelSpecManager().get_kernel_spec(name)
    provisioner = spec.metadata.get("kernel_provisioner", {}).get("provisioner_name")
    if provisioner != "geokernel-pool":
        return None
    python = sys.executable if spec.argv[0] in ("python", "python3") else spec.argv[0]
    t0 = time.perf_counter()
    pool.prestart(python, {**os.environ, **(spec.env or {})})
    return (time.perf_counter() - t0) * 1000


def _memory(started, zygotes_before) -> tuple[list, list]:
    from ..pool import client as pool

    kernel_pids = [p for km, _ in started for p in _tree(km.provisioner.pid)]
    zygote_pids = [z.pid for z in pool.zygotes() if z.pid not in zygotes_before]
    return [smaps_rollup_kb(p) for p in kernel_pids], [smaps_rollup_kb(p) for p in zygote_pids]


def _memory_figures(kernels_mem, zygote_mem, n: int, suffix: str) -> dict:
    pss_total = sum(m.get("Pss", 0) for m in kernels_mem + zygote_mem) / 1024
    rss = [m.get("Rss", 0) / 1024 for m in kernels_mem]
    per_kernel = pss_total / n
    return {f"pss_total{suffix}_mb": pss_total, f"pss_per_kernel{suffix}_mb": per_kernel,
            f"rss_per_kernel{suffix}_mb": statistics.mean(rss) if rss else None,
            f"zygote_pss{suffix}_mb": (sum(m.get("Pss", 0) for m in zygote_mem) / 1024
                                       if zygote_mem else None),
            f"fit_512mib{suffix}": int(LIMIT_MIB // per_kernel) if per_kernel else None}


def measure(name: str, n: int, settle: float = 2.0, timeout: float = 60.0, fresh: int = 3,
            idle_before_tab: float = IDLE_BEFORE_TAB, progress=lambda text: None) -> dict:
    """Start `n` kernels of kernelspec `name` one after another and keep them; measure their
    memory idle (never asked anything); in `fresh` of them run a cell, wait IDLE_BEFORE_TAB
    seconds and time the first completion (a user who types before pressing Tab); ask all for
    6 completions each and measure the memory again; then start `fresh` more, one at a time,
    each asked for a completion right after ready."""
    from ..pool import client as pool

    started, ready, first_idle, median, first_fresh = [], [], [], [], []
    zygotes_before = {z.pid for z in pool.zygotes()}
    out = {"n": n, "zygote_start_ms": _prestart(name)}
    try:
        for i in range(n):
            t0 = time.perf_counter()
            started.append(_start(name, timeout))
            ready.append((time.perf_counter() - t0) * 1000)
            if (i + 1) % 5 == 0 or i + 1 == n:
                progress(f"    {name}: {i + 1}/{n} started (last ready in {ready[-1]:.0f} ms)")
        time.sleep(settle)  # let start-up settle, as on an idle hub
        out.update(_memory_figures(*_memory(started, zygotes_before), n, "_idle"))
        # a user opens the notebook, runs a cell, types a moment, presses Tab
        for _, kc in started[:fresh]:
            _execute(kc, "import os", timeout)
            time.sleep(idle_before_tab)
            first_idle.append(_complete_ms(kc, FIRST, timeout))
        for _, kc in started:
            median.append(statistics.median(
                [_complete_ms(kc, code, timeout) for code in COMPLETIONS]))
        time.sleep(settle)
        out.update(_memory_figures(*_memory(started, zygotes_before), n, ""))
    finally:
        _stop_all(started)
    for _ in range(fresh):
        one = [_start(name, timeout)]
        try:
            first_fresh.append(_complete_ms(one[0][1], FIRST, timeout))
        finally:
            _stop_all(one)
    out.update({"start_ready_ms": statistics.median(ready),
                "complete_first_ms": statistics.median(first_fresh) if first_fresh else None,
                "complete_first_idle_ms": statistics.median(first_idle),
                "complete_ms": statistics.median(median),
                "_ready_ms": ready, "_first_idle_ms": first_idle, "_first_fresh_ms": first_fresh})
    return out


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
    ("zygote_start_ms", "zygote start + warm-up (once, ahead of the kernels)", "ms", "{:.0f}"),
    ("start_ready_ms", "start -> ready through jupyter_client (median of {n})", "ms", "{:.0f}"),
    ("complete_first_ms", "first completion, asked right after ready (median)", "ms",
     "{:.0f}"),
    ("complete_first_idle_ms", "first completion, 3 s (quick: 1.5 s) after the first cell",
     "ms", "{:.0f}"),
    ("complete_ms", "completion latency (median of 6, median over kernels)", "ms", "{:.1f}"),
    ("pss_total_idle_mb", "idle: PSS of all {n} kernels (+ zygote), summed", "MiB", "{:.0f}"),
    ("pss_per_kernel_idle_mb", "idle: PSS per kernel (sum / {n})", "MiB", "{:.1f}"),
    ("rss_per_kernel_idle_mb", "idle: RSS per kernel process (mean)", "MiB", "{:.1f}"),
    ("zygote_pss_idle_mb", "idle: zygote PSS (in the sum)", "MiB", "{:.1f}"),
    ("fit_512mib_idle", "idle: kernels that fit in 512 MiB (by PSS)", "", "{:.0f}"),
    ("pss_total_mb", "after completions: PSS of all {n} (+ zygote)", "MiB", "{:.0f}"),
    ("pss_per_kernel_mb", "after completions: PSS per kernel", "MiB", "{:.1f}"),
    ("rss_per_kernel_mb", "after completions: RSS per kernel process", "MiB", "{:.1f}"),
    ("fit_512mib", "after completions: kernels that fit in 512 MiB", "", "{:.0f}"),
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
    lines.append(f"({n} kernels of each kind, started one after another; ratios vs "
                 f"{kernels[0]})")
    for suffix, when in (("_idle", "idle"), ("", "after completions")):
        b = base.get(f"rss_per_kernel{suffix}_mb")
        for k in kernels[1:]:
            pss = results.get(k, {}).get(f"pss_per_kernel{suffix}_mb")
            if b and pss:
                lines.append(f"{when}: {k} PSS per kernel = {pss / b:.2f}x {kernels[0]}'s RSS "
                             "per kernel")
    return "\n".join(lines)


def run(kernels: list[str], n: int, settle: float, progress, quick: bool = False) -> dict:
    from ..pool import client as pool

    results = {}
    try:
        for name in kernels:
            progress(f"[pool] {n} x {name} ...")
            t0 = time.monotonic()
            try:
                extra = {"fresh": 1, "idle_before_tab": 1.5} if quick else {}
                results[name] = measure(name, n, settle, progress=progress, **extra)
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
    results = run(kernels, args.pool, 2.0 if not args.quick else 0.5, progress, args.quick)
    print(table(results, kernels, args.pool))
    if args.fill_mib:
        from ..pool import cgroup
        from .pool_fill import fill

        ok, where = cgroup.available()
        if not ok:
            progress(f"--fill-mib: no writable memory cgroup here ({where})")
        else:
            for name in kernels:
                progress(f"[fill] {name} in {args.fill_mib} MiB ...")
                try:
                    results.setdefault(name, {})["fill"] = fill(name, args.fill_mib, progress)
                except Exception as e:
                    results.setdefault(name, {})["fill"] = {"error": f"{type(e).__name__}: {e}"}
            print(f"\nkernels running and answering in a real {args.fill_mib} MiB memory cgroup "
                  "(each ran a cell and a completion):")
            for name in kernels:
                f = results[name]["fill"]
                print(f"  {name:16} {f.get('fit', 'n/a')}  ({f.get('why') or f.get('error')}; "
                      f"peak {f.get('peak_mib', 0):.0f} MiB)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": {"started": t0, "duration_s": time.time() - t0,
                                "python": sys.version.split()[0], "platform": platform.platform(),
                                "cpus": os.cpu_count(), "n": args.pool},
                       "kernels": kernels, "baseline": kernels[0], "results": results},
                      f, indent=1)
        progress(f"wrote {args.json}")
    return 0 if all("error" not in r for r in results.values()) else 1
