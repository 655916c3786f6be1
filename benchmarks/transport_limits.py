"""Issue 12's numbers on a real kernel (default transport; GEOKERNEL_TRANSPORT=zmq for libzmq):

    python benchmarks/transport_limits.py flood   # heartbeat latency during an iopub subscription flood
    python benchmarks/transport_limits.py huge    # RSS after repeated huge-frame disconnects
    python benchmarks/transport_limits.py curve   # execute p50 and print 100k, with and without CURVE
    python benchmarks/transport_limits.py fd      # RSS peak during 200 MB written at fd level

Raw TCP peers and jupyter_client on 127.0.0.1 only; every kernel is shut down."""
import os, socket, struct, sys, threading, time, statistics
import jupyter_client, zmq, psutil
from geokernel.zmtp import framing as F

def start(name, **kw):
    km = jupyter_client.KernelManager(kernel_name=name, **kw)
    km.ip = "127.0.0.1"
    km.start_kernel()
    kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=60)
    return km, kc

def hs(km, ch, typ):
    s = socket.create_connection(("127.0.0.1", getattr(km, ch + "_port")), timeout=10)
    s.sendall(F.build_greeting(minor=1) + F.build_ready(typ, b""))
    return s

def hb_probe(km, stop, out):
    ctx = zmq.Context.instance(); s = ctx.socket(zmq.REQ); s.connect(f"tcp://127.0.0.1:{km.hb_port}")
    while not stop.is_set():
        t = time.perf_counter(); s.send(b"ping")
        if s.poll(20000): s.recv(); out.append(time.perf_counter() - t)
        else: out.append(20.0); break
        time.sleep(0.005)
    s.close(0)

def flood(n):
    km, kc = start("geokernel")
    try:
        lat = []; stop = threading.Event(); th = threading.Thread(target=hb_probe, args=(km, stop, lat)); th.start()
        time.sleep(0.3); base = len(lat)
        s = hs(km, "iopub", "SUB")
        t0 = time.perf_counter()
        s.sendall(b"".join(F.encode_command(b"SUBSCRIBE", b"topic-%016d" % i) for i in range(n)))
        time.sleep(2.0); stop.set(); th.join()
        during = lat[base:]
        print(f"flood {n} subs: hb max {max(during)*1e3:.1f} ms, p50 {statistics.median(during)*1e3:.2f} ms over {len(during)} pings")
        s.close()
    finally:
        kc.stop_channels(); km.shutdown_kernel(now=True)

def huge_frames(rounds):
    km, kc = start("geokernel")
    try:
        p = psutil.Process(km.provisioner.process.pid)
        r0 = p.memory_info().rss
        for i in range(rounds):
            s = hs(km, "shell", "DEALER")
            try:
                s.sendall(struct.pack(">BQ", F.LONG, 64 << 20) + b"y" * (8 << 20))  # 8 of a declared 64 MiB
            except OSError: pass
            s.close()
        time.sleep(1.0)
        kc.kernel_info(); kc.get_shell_msg(timeout=10)
        r1 = p.memory_info().rss
        print(f"{rounds} x (64 MiB declared, 8 MiB sent, disconnect): RSS {r0/2**20:.1f} -> {r1/2**20:.1f} MiB")
    finally:
        kc.stop_channels(); km.shutdown_kernel(now=True)

def roundtrip(name, **kw):
    km, kc = start(name, **kw)
    try:
        def ex(code):
            mid = kc.execute(code)
            while True:
                m = kc.get_iopub_msg(timeout=60)
                if m["parent_header"].get("msg_id") == mid and m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                    return
        for _ in range(20): ex("1")
        ts = []
        for _ in range(200):
            t = time.perf_counter(); ex("1"); ts.append(time.perf_counter() - t)
        t = time.perf_counter(); ex("for i in range(100000): print(i)"); pr = time.perf_counter() - t
        print(f"{name} {kw}: execute p50 {statistics.median(ts)*1e3:.2f} ms; print 100k lines {pr:.2f} s")
    finally:
        kc.stop_channels(); km.shutdown_kernel(now=True)

def fd_rss(name):
    km, kc = start(name)
    try:
        p = psutil.Process(km.provisioner.process.pid)
        base = p.memory_info().rss; peak = [base]; stop = threading.Event()

        def poll():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], p.memory_info().rss)
                except psutil.Error:
                    pass
                time.sleep(0.01)
        th = threading.Thread(target=poll); th.start()
        mid = kc.execute("import os; os.system('yes | head -c 200000000')")
        got = 0
        while True:
            m = kc.get_iopub_msg(timeout=300)
            if m["parent_header"].get("msg_id") != mid: continue
            if m["msg_type"] == "stream": got += len(m["content"]["text"])
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle": break
        stop.set(); th.join()
        print(f"{name}: 200 MB at fd level: received {got} chars, RSS baseline "
              f"{base/2**20:.0f} MiB, peak {peak[0]/2**20:.0f} MiB")
    finally:
        kc.stop_channels(); km.shutdown_kernel(now=True)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "flood":
        for n in (10000, 20000, 100000): flood(n)
    elif what == "huge":
        for n in (10, 50, 150): huge_frames(n)
    elif what == "fd":
        for name in ("geokernel", "python3"):
            fd_rss(name)
    elif what == "curve":
        for rep in range(2):
            roundtrip("geokernel")
            roundtrip("geokernel", transport_encryption="required")
            roundtrip("python3", transport_encryption="required")
            roundtrip("python3")
