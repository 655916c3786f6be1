"""`geokernel bench`: compare kernels side by side (start-up, memory, latency, throughput).

Imported only when the subcommand runs. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time

DEFAULT_KERNELS = "geokernel,python3,xpython"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="geokernel bench", description=__doc__.splitlines()[0])
    p.add_argument("--kernels", default=DEFAULT_KERNELS,
                   help="comma-separated kernelspec names; the first is the ratio baseline "
                        f"(default {DEFAULT_KERNELS}); missing ones are skipped")
    p.add_argument("--rounds", type=int, default=None, help="rounds per kernel (default 3, quick 1)")
    p.add_argument("--quick", action="store_true",
                   help="small counts (20 executes, 10k lines, 200 executes for RSS)")
    p.add_argument("--exec-n", type=int, help="executes of `pass` for round-trip percentiles")
    p.add_argument("--lines", type=int, help="lines printed by the print scenario")
    p.add_argument("--comm-n", type=int, help="comm round trips")
    p.add_argument("--execs", type=int, help="executes before the second RSS reading")
    p.add_argument("--json", metavar="FILE", help="write all results as JSON")
    p.add_argument("--plot", metavar="FILE", help="draw a PNG chart (matplotlib, Agg)")
    p.add_argument("-v", "--verbose", action="store_true", help="client debug logging")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.ERROR,
                        stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from ..client import list_kernelspecs
    from . import report
    from .runner import Config, Runner, progress

    cfg = Config.quick() if args.quick else Config()
    for opt in ("rounds", "exec_n", "lines", "comm_n", "execs"):
        if getattr(args, opt) is not None:
            setattr(cfg, opt, getattr(args, opt))
    wanted = [k.strip() for k in args.kernels.split(",") if k.strip()]
    installed = {s.name: s for s in list_kernelspecs()}
    kernels = [k for k in wanted if k in installed]
    skipped = {k: "kernelspec not installed" for k in wanted if k not in installed}
    for k in skipped:
        progress(f"skipping {k}: kernelspec not installed (see `jupyter kernelspec list`)")
    if not kernels:
        progress("no kernel to benchmark")
        return 2

    t0 = time.time()
    runner = Runner(kernels, cfg)
    runner.run()
    summary = report.summarize(runner.raw, runner.notes, kernels)
    print(report.table(summary, kernels, cfg))
    if args.json:
        report.write_json(args.json, {
            "meta": {"started": t0, "duration_s": time.time() - t0,
                     "python": sys.version.split()[0], "platform": platform.platform(),
                     "cpus": os.cpu_count(), "config": vars(cfg),
                     "argv": {k: installed[k].argv for k in kernels}},
            "kernels": kernels, "baseline": kernels[0], "skipped": skipped,
            "scenarios": ["startup"] + [s[0] for s in _scenarios()],
            "results": summary})
        progress(f"wrote {args.json}")
    if args.plot:
        report.plot(args.plot, summary, kernels)
        progress(f"wrote {args.plot}")
    return 0


def _scenarios():
    from .scenarios import SCENARIOS
    return SCENARIOS
