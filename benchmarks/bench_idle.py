"""Idle server CPU with no client connected: the old polling app and the live app side by side.

    .venv/bin/python benchmarks/bench_idle.py [SECONDS] [BASELINE_CHECKOUT]

BASELINE_CHECKOUT is a checkout of the app before the live loop (default ../wt-baseline; make one with
`git worktree add ../wt-baseline 9966435`). Both run `app.py --model tiny` on their own database.
"""
import os, socket, subprocess, sys, tempfile, time
import psutil
def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
procs = {}
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
baseline = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(repo), "wt-baseline")
py = sys.executable
for name, cwd in (("old", baseline), ("new", repo)):
    p = port(); db = tempfile.mktemp(suffix=".db")
    env = {**os.environ, "RELAY_CACHE": tempfile.mkdtemp()}
    procs[name] = (subprocess.Popen([py, "app.py", "--model", "tiny", "--port", str(p), "--db", db], cwd=cwd, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), p)
import urllib.request
for name, (proc, p) in procs.items():
    for _ in range(240):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{p}/", timeout=2); break
        except Exception:
            time.sleep(0.5)
time.sleep(10)
cpu0 = {n: psutil.Process(pr.pid).cpu_times() for n, (pr, _) in procs.items()}
t0 = time.monotonic(); load0 = os.getloadavg()
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 60)
dt = time.monotonic() - t0
for n, (pr, _) in procs.items():
    c = psutil.Process(pr.pid).cpu_times(); c0 = cpu0[n]
    print(f"{n}: {100 * ((c.user - c0.user) + (c.system - c0.system)) / dt:.2f} % of a core over {dt:.0f} s")
print("load average", load0, os.getloadavg())
for pr, _ in procs.values():
    pr.terminate()
