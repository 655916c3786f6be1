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
PLOT_ESTIMATE_S = 5.0  # importing matplotlib and drawing ~18 panels on a busy machine
DEFAULT_WITH_SERVER = "geokernel,remote:geokernel,python3,remote:python3"

EPILOG = """\
kernels behind a Jupyter Server or Enterprise Gateway:
  --server URL (with its base URL) and --token T (default $JUPYTER_TOKEN) start kernels
  there through the REST API and drive them over the kernel websocket. Name them
  remote:NAME in --kernels (NAME = a kernelspec on that server), side by side with local
  ones, e.g. --kernels geokernel,remote:geokernel. Default with --server:
  %s.
  For remote kernels idle RSS/CPU/threads, RSS after M executes and the heartbeat are
  n/a (no local process; the heartbeat is not exposed); every other figure includes the
  server's websocket hop.

output: progress on stderr (an estimate first, then one line per step and a line every
  10 s while a step runs), the table on stdout, --json / --plot files.
  --quick takes well under a minute for geokernel,python3.
""" % DEFAULT_WITH_SERVER


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="geokernel bench", description=__doc__.splitlines()[0],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kernels", default=None,
                   help="comma-separated kernelspec names, remote:NAME for a kernel on --server; "
                        f"the first is the ratio baseline (default {DEFAULT_KERNELS}); "
                        "missing ones are skipped")
    p.add_argument("--server", metavar="URL", help="Jupyter Server / Enterprise Gateway URL")
    p.add_argument("--token", metavar="T", default=os.environ.get("JUPYTER_TOKEN"),
                   help="the server's token (default $JUPYTER_TOKEN; never written to the JSON)")
    p.add_argument("--rounds", type=int, default=None, help="rounds per kernel (default 3, quick 1)")
    p.add_argument("--quick", action="store_true",
                   help="small counts (20 executes, 10k lines, 200 executes for RSS)")
    p.add_argument("--exec-n", type=int, help="executes of `pass` for round-trip percentiles")
    p.add_argument("--lines", type=int, help="lines printed by the print scenario")
    p.add_argument("--comm-n", type=int, help="comm round trips")
    p.add_argument("--execs", type=int, help="executes before the second RSS reading")
    p.add_argument("--json", metavar="FILE", help="write all results as JSON")
    p.add_argument("--plot", metavar="FILE", help="draw a PNG chart (matplotlib, Agg)")
    p.add_argument("--pool", type=int, metavar="N",
                   help="instead of the scenarios: start N kernels of each kind one after "
                        "another through jupyter_client and report start-to-ready, completion "
                        "and summed PSS (default kernels "
                        "python3,geokernel,geokernel-pool; see bench/pool.py)")
    p.add_argument("--fill-mib", type=int, metavar="M",
                   help="with --pool: also start kernels of each kind in a real memory cgroup "
                        "of M MiB until one is OOM-killed (needs a writable memory cgroup)")
    p.add_argument("-v", "--verbose", action="store_true", help="client debug logging")
    return p.parse_args(argv)


def _available(wanted: list[str], server) -> tuple[list[str], dict, dict]:
    """(kernels to run, {skipped: why}, {kernel: argv}) for local and remote names."""
    from ..client import ClientError, list_kernelspecs
    from .runner import REMOTE_PREFIX, is_remote, progress

    installed = {s.name: s.argv for s in list_kernelspecs()}
    remote: dict = {}
    if server is not None and any(is_remote(k) for k in wanted):
        try:
            remote = {REMOTE_PREFIX + n: spec.get("argv", []) for n, spec in server.kernelspecs().items()}
        except (ClientError, OSError) as e:
            progress(f"cannot list kernelspecs on {server.url.url}: {e}")
    argvs, skipped = {}, {}
    for k in wanted:
        if is_remote(k):
            if server is None:
                skipped[k] = "remote kernel but no --server"
            elif k not in remote:
                skipped[k] = f"no kernelspec {k[len(REMOTE_PREFIX):]!r} on {server.url.url}"
            else:
                argvs[k] = remote[k]
        elif k in installed:
            argvs[k] = installed[k]
        else:
            skipped[k] = "kernelspec not installed (see `jupyter kernelspec list`)"
    for k, why in skipped.items():
        progress(f"skipping {k}: {why}")
    return [k for k in wanted if k in argvs], skipped, argvs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.ERROR,
                        stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from . import report
    from .runner import Config, Runner, progress
    from .scenarios import SCENARIOS

    if args.pool is not None:
        if args.pool < 1:
            progress("geokernel bench: --pool needs N >= 1")
            return 2
        from . import pool

        return pool.main(args, progress)
    cfg = Config.quick() if args.quick else Config()
    for opt in ("rounds", "exec_n", "lines", "comm_n", "execs"):
        if getattr(args, opt) is not None:
            setattr(cfg, opt, getattr(args, opt))
    server = None
    if args.server:
        from ..client.remote import RemoteServer
        server = RemoteServer(args.server, args.token)
    spec = args.kernels or (DEFAULT_WITH_SERVER if server else DEFAULT_KERNELS)
    wanted = [k.strip() for k in spec.split(",") if k.strip()]
    kernels, skipped, argvs = _available(wanted, server)
    if not kernels:
        progress("no kernel to benchmark")
        return 2

    t0 = time.time()
    runner = Runner(kernels, cfg, server=server)
    estimate = runner.estimate() + (PLOT_ESTIMATE_S if args.plot else 0)
    progress(f"benchmarking {', '.join(kernels)}: {cfg.rounds} round(s) x "
             f"{1 + len(SCENARIOS)} steps; estimated {estimate:.0f}s "
             f"(~{estimate / 60:.1f} min), progress below")
    runner.run()
    summary = report.summarize(runner.raw, runner.notes, kernels)
    print(report.table(summary, kernels, cfg))
    if args.json:
        report.write_json(args.json, {
            "meta": {"started": t0, "duration_s": time.time() - t0, "estimate_s": estimate,
                     "python": sys.version.split()[0], "platform": platform.platform(),
                     "cpus": os.cpu_count(), "config": vars(cfg), "argv": argvs,
                     "server": server.url.url if server else None},
            "kernels": kernels, "baseline": kernels[0], "skipped": skipped,
            "scenarios": ["startup"] + [s.name for s in SCENARIOS],
            "results": summary})
        progress(f"wrote {args.json}")
    if args.plot:
        progress(f"drawing {args.plot} ...")
        panels = report.plot(args.plot, summary, kernels, cfg, t0,
                             server.url.url if server else None)
        progress(f"wrote {args.plot} ({panels} panels)")
    progress(f"done in {time.time() - t0:.0f}s (estimated {estimate:.0f}s)")
    return 0
