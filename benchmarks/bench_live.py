"""Live stories at scale: server cost of open tabs, and 200 tabs + 20 writers, old polling app vs the live loop.

    .venv/bin/python benchmarks/bench_live.py                 # full run (~15 minutes)
    .venv/bin/python benchmarks/bench_live.py --quick         # smoke run (~20 s per phase, a few minutes in all)
    .venv/bin/python benchmarks/bench_live.py --tabs 200 --writers 20 --duration 120 --postgres

Both apps run in the same run, each as its own server process (`app.py --model tiny`, its own temp
SQLite database, a free port):

- old: commit 9966435 (read from git into a temp folder, or --baseline DIR), where every tab asks
  the server through Gradio's queue every 2 s (a `gr.Timer` tick);
- new: this checkout, where every tab holds one Server-Sent Events stream (`/relay/live`) and one
  watcher thread per process pushes changes.

Phases: (1) the server with no client; (2) real Chromium tabs (Debian's /usr/bin/chromium through
playwright) left idle; (3) simulated idle tabs (new: N SSE streams; old: N pollers that load the
page through the queue, then run the timer's event every 2 s, on a ladder until it saturates);
(4) N simulated tabs + W writers adding paragraphs through the `/add_paragraph` endpoint (raw
Gradio queue calls), measuring the add's latency and the time until each tab on the story has the
paragraph (matched by a marker in its text); (5) with --postgres, the new app as 2 processes
behind nginx on PostgreSQL (tests/servers.py helpers), phases 1, 3 and 4 again.

Server CPU is read from /proc through psutil (user + system time of the server processes) and
printed as % of one core. The simulated clients run in this process on the same cores; the
machine's load average is printed at start and end. Compare old and new within one run (the
ratio column), not across machines or runs. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.cookiejar
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BASELINE_COMMIT = "9966435"  # the last commit before the live loop: every tab polls through a gr.Timer
POLL_EVERY_S = 2.0  # the old app's timer
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
MARKER = re.compile(r"bm\d+x\d+z")  # written into every benchmark paragraph; survives HTML escaping and JSON
TEXT = "바람이 멎자 골목은 조용해졌다. 그녀는 편지를 접어 주머니에 넣고 오래된 우체국 쪽으로 걸었다."
CHILD_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
             "PYTHONUNBUFFERED": "1"}


# --- servers ----------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_answering(url: str, proc: subprocess.Popen | None, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the app exited ({proc.returncode}):\n{log.read_text()[-2000:] if log else ''}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=3) as r:
                if r.status == 200:
                    return
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@dataclass
class Target:
    """One app under test: its URL (a proxy's, for several processes) and the processes whose CPU counts."""

    label: str
    url: str
    pids: list[int]  # app processes
    extra_pids: list[int] = field(default_factory=list)  # database server, proxy: reported apart
    config: dict = field(default_factory=dict)
    sticky: bool = False  # behind nginx: every simulated client keeps its own relay_upstream cookie

    def _procs(self, pids):
        out = []
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                p = psutil.Process(pid)
                out.append(p)
                out.extend(p.children(recursive=True))
        return out

    def cpu_s(self, extra: bool = False) -> float:
        total = 0.0
        for p in self._procs(self.extra_pids if extra else self.pids):
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss_mib(self) -> float:
        total = 0
        for p in self._procs(self.pids):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total / 2**20

    def fn(self, name: str) -> int:
        """The fn_index of a named API endpoint or of the dependency a trigger ("load", "tick") starts."""
        for d in self.config["dependencies"]:
            if d.get("api_name") == name:
                return d["id"]
        raise KeyError(f"{self.label}: no endpoint {name!r}")

    def inputs(self, fn: int) -> list:
        """What a browser sends for a dependency's inputs: null for session state, else the component's value."""
        comps = {c["id"]: c for c in self.config["components"]}
        dep = next(d for d in self.config["dependencies"] if d["id"] == fn)
        return [None if comps[i]["type"] in ("state", "browserstate", "api") else comps[i]["props"].get("value")
                for i in dep["inputs"]]


@contextlib.contextmanager
def app_server(label: str, folder: Path, workdir: Path):
    """`python app.py --model tiny` from `folder` on a free port with its own database; yields a Target."""
    port = free_port()
    log = workdir / f"{label}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "app.py", "--model", "tiny", "--host", "127.0.0.1", "--port", str(port),
                                 "--db", str(workdir / f"{label}.db")], cwd=folder, env={**os.environ, **CHILD_ENV},
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_answering(url, proc, 300, log)
        with urllib.request.urlopen(url + "config", timeout=30) as r:
            config = json.load(r)
        yield Target(label, url, [proc.pid], config=config)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def baseline_folder(arg: str | None, workdir: Path) -> Path:
    """The old app: --baseline DIR, or commit 9966435 extracted from git (no worktree, nothing in .git changes)."""
    if arg:
        return Path(arg)
    out = workdir / "baseline"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BASELINE_COMMIT], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def listening_pids(port: int) -> list[int]:
    return sorted({c.pid for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port and c.pid})


# --- Gradio's queue, spoken directly (what the browser and gradio_client do, without their overhead) ---


class Http:
    """One httpx client for every simulated browser; cookies are per simulated client, never shared."""

    def __init__(self):
        jar = http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        self.client = httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=2000),
                                        timeout=httpx.Timeout(60.0, connect=30.0), cookies=httpx.Cookies(jar))

    async def close(self):
        await self.client.aclose()


def client_headers(target: Target, key: str) -> dict:
    return {"Cookie": f"relay_upstream={key}"} if target.sticky else {}


async def gradio_call(h: Http, target: Target, fn: int, data: list, session: str, headers: dict,
                      query: str = "") -> tuple[bool, object, str | None]:
    """Join the queue with one event and read the session's stream until it completes: (ok, output data, error)."""
    body = {"data": data, "fn_index": fn, "session_hash": session, "event_data": None, "trigger_id": None}
    try:
        r = await h.client.post(f"{target.url}gradio_api/queue/join{query}", json=body, headers=headers)
        if r.status_code != 200:
            detail = r.text[:60].replace("\n", " ")
            return False, None, f"join HTTP {r.status_code} {detail}"
        event_id = r.json()["event_id"]
        async with h.client.stream("GET", f"{target.url}gradio_api/queue/data", params={"session_hash": session},
                                   headers=headers) as s:
            if s.status_code != 200:
                return False, None, f"queue/data HTTP {s.status_code}"
            async for line in s.aiter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                kind = msg.get("msg")
                if kind == "process_completed" and msg.get("event_id") == event_id:
                    out = msg.get("output") or {}
                    if msg.get("success"):
                        return True, out.get("data"), None
                    return False, None, f"event error: {str(out.get('error'))[:60]}"
                if kind == "unexpected_error":
                    return False, None, f"unexpected_error: {str(msg.get('message'))[:60]}"
                if kind == "close_stream":
                    break
        return False, None, "stream closed before the result"
    except httpx.HTTPError as e:
        return False, None, f"{type(e).__name__}"


def api_args(target: Target, endpoint: str, info: dict, **given) -> list:
    """Positional data for a named endpoint from keyword values (robust to added parameters with defaults)."""
    params = info["named_endpoints"][f"/{endpoint}"]["parameters"]
    return [given[p["parameter_name"]] if p["parameter_name"] in given else p.get("parameter_default") for p in params]


async def api_info(h: Http, target: Target) -> dict:
    r = await h.client.get(f"{target.url}gradio_api/info")
    r.raise_for_status()
    return r.json()


# --- simulated tabs and writers ----------------------------------------------------------------------


@dataclass
class Run:
    """Everything one phase measured on one target."""

    seen: dict = field(default_factory=dict)  # (tab, marker) -> monotonic time the tab first had it
    adds: list = field(default_factory=list)  # (marker, story, started, returned)
    add_lat: list = field(default_factory=list)
    poll_lat: list = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    ready: int = 0  # tabs that have their first full view
    stop: bool = False


def _see(run: Run, tab: int, text: str) -> None:
    now = time.monotonic()
    for m in MARKER.findall(text):
        run.seen.setdefault((tab, m), now)


async def new_tab(h: Http, target: Target, run: Run, tab: int, story: int) -> None:
    """A tab of the new app: one SSE stream; reconnects (and counts an error) if it breaks."""
    headers = client_headers(target, f"tab-{tab}")
    first = True
    while not run.stop:
        try:
            async with h.client.stream("GET", f"{target.url}relay/live", params={"story": story, "lang": "ko"},
                                       headers=headers, timeout=httpx.Timeout(None, connect=30.0)) as s:
                if s.status_code != 200:
                    run.errors[f"tab stream HTTP {s.status_code}"] += 1
                    await asyncio.sleep(2)
                    continue
                async for line in s.aiter_lines():
                    if line.startswith("data:"):
                        _see(run, tab, line)
                        if first:
                            first = False
                            run.ready += 1
            if not run.stop:
                run.errors["tab stream ended"] += 1
        except httpx.HTTPError as e:
            if not run.stop:
                run.errors[f"tab stream {type(e).__name__}"] += 1
                await asyncio.sleep(1)


async def old_tab(h: Http, target: Target, run: Run, tab: int, story: int) -> None:
    """A tab of the old app: the page's load event (opens ?story=ID), then the timer's event every 2 s.

    Like the browser's timer (trigger_mode "once"), a tick that comes while the previous poll is
    still running is dropped.
    """
    session = secrets.token_hex(6)
    headers = {**client_headers(target, f"tab-{tab}"), "Referer": f"{target.url}?story={story}"}
    load_fn = next(d["id"] for d in target.config["dependencies"] if [0, "load"] in d["targets"] and d["inputs"])
    poll_fn = next(d["id"] for d in target.config["dependencies"] if any(t[1] == "tick" for t in d["targets"]))
    while not run.stop:
        ok, out, err = await gradio_call(h, target, load_fn, target.inputs(load_fn), session, headers, f"?story={story}")
        if ok:
            break
        run.errors[f"page load: {err}"] += 1
        await asyncio.sleep(2)
    else:
        return
    _see(run, tab, json.dumps(out, ensure_ascii=False))
    run.ready += 1
    data = target.inputs(poll_fn)
    next_tick = time.monotonic() + random.uniform(0, POLL_EVERY_S)
    while not run.stop:
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
        if run.stop:
            break
        t0 = time.monotonic()
        ok, out, err = await gradio_call(h, target, poll_fn, data, session, headers)
        t1 = time.monotonic()
        if ok:
            run.poll_lat.append(t1 - t0)
            _see(run, tab, json.dumps(out, ensure_ascii=False))
        else:
            run.errors[f"poll: {err}"] += 1
        next_tick += POLL_EVERY_S
        while next_tick < t1:  # ticks missed while this poll was running
            next_tick += POLL_EVERY_S


async def writer(h: Http, target: Target, info: dict, run: Run, w: int, story: int, gap: tuple[float, float]) -> None:
    headers = client_headers(target, f"writer-{w}")
    session = secrets.token_hex(6)
    fn = target.fn("add_paragraph")
    n = 0
    await asyncio.sleep(random.uniform(0, gap[0]))
    while not run.stop:
        marker = f"bm{w}x{n}z"
        n += 1
        data = api_args(target, "add_paragraph", info, story_id=story, text=f"{marker} {TEXT}", author=f"작가{w}",
                        expected_head=None)
        t0 = time.monotonic()
        ok, _, err = await gradio_call(h, target, fn, data, session, headers)
        t1 = time.monotonic()
        if ok:
            run.add_lat.append(t1 - t0)
            run.adds.append((marker, story, t0, t1))
        else:
            run.errors[f"add_paragraph: {err}"] += 1
        await asyncio.sleep(random.uniform(*gap))


async def make_stories(h: Http, target: Target, info: dict, count: int) -> list[int]:
    """`count` stories (free turns, so one writer may add twice in a row), each with one paragraph."""
    ids = []
    session = secrets.token_hex(6)
    headers = client_headers(target, "setup")
    for i in range(count):
        ok, out, err = await gradio_call(h, target, target.fn("create_story"),
                                         api_args(target, "create_story", info, title=f"벤치 {i}", author="벤치",
                                                  turn_rule="free"), session, headers)
        if not ok:
            raise RuntimeError(f"{target.label}: create_story failed: {err}")
        sid = out[0]["id"]
        ok, _, err = await gradio_call(h, target, target.fn("add_paragraph"),
                                       api_args(target, "add_paragraph", info, story_id=sid,
                                                text=f"bm9999x{sid}z 첫 문단.", author="벤치"), session, headers)
        if not ok:
            raise RuntimeError(f"{target.label}: add_paragraph failed: {err}")
        ids.append(sid)
    return ids


# --- measuring -----------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


async def cpu_over(target: Target, seconds: float) -> tuple[float, float]:
    """Server CPU (% of one core) over `seconds`, and the database/proxy processes' share apart."""
    c0, e0, t0 = target.cpu_s(), target.cpu_s(extra=True), time.monotonic()
    await asyncio.sleep(seconds)
    dt = time.monotonic() - t0
    return 100 * (target.cpu_s() - c0) / dt, 100 * (target.cpu_s(extra=True) - e0) / dt


async def wait_ready(run: Run, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while run.ready < n and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return run.ready >= n


async def stop_all(run: Run, tasks: list[asyncio.Task]) -> None:
    run.stop = True
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def errors_text(errors: Counter) -> str:
    if not errors:
        return "0"
    total = sum(errors.values())
    top = "; ".join(f"{k} ×{v}" for k, v in errors.most_common(3))
    return f"{total} ({top})"


async def idle_tabs(h: Http, target: Target, stories: list[int], n: int, seconds: float, idle_cpu: float,
                    old: bool) -> dict:
    """n simulated idle tabs: server CPU per tab (above the no-client idle), errors, poll latency."""
    run = Run()
    tab = old_tab if old else new_tab
    tasks = [asyncio.create_task(tab(h, target, run, i, stories[i % len(stories)])) for i in range(n)]
    ready = await wait_ready(run, n, 60 + n * (0.5 if old else 0.05))
    await asyncio.sleep(3)
    errors_before = sum(run.errors.values())
    run.poll_lat.clear()
    cpu, _ = await cpu_over(target, seconds)
    result = {"n": n, "ready": run.ready, "cpu": cpu, "per_tab": (cpu - idle_cpu) / n, "all_ready": ready,
              "poll_p50": pct(run.poll_lat, 0.5), "poll_p95": pct(run.poll_lat, 0.95),
              "errors": Counter(run.errors), "errors_in_window": sum(run.errors.values()) - errors_before}
    await stop_all(run, tasks)
    return result


async def load(h: Http, target: Target, info: dict, stories: list[int], tabs: int, writers: int, seconds: float,
               gap: tuple[float, float], old: bool) -> dict:
    """`tabs` open tabs spread over the stories, `writers` writers adding paragraphs for `seconds`."""
    run = Run()
    tab = old_tab if old else new_tab
    watching = {}
    tasks = []
    for i in range(tabs):
        story = stories[i % len(stories)]
        watching.setdefault(story, []).append(i)
        tasks.append(asyncio.create_task(tab(h, target, run, i, story)))
    t_open = time.monotonic()
    await wait_ready(run, tabs, 60 + tabs * (0.5 if old else 0.05))
    open_s = time.monotonic() - t_open
    ready = run.ready
    run.poll_lat.clear()
    wtasks = [asyncio.create_task(writer(h, target, info, run, w, stories[w % len(stories)], gap)) for w in range(writers)]
    rss = [target.rss_mib()]
    c0, e0, t0 = target.cpu_s(), target.cpu_s(extra=True), time.monotonic()
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(1)
        rss.append(target.rss_mib())
    dt = time.monotonic() - t0
    cpu, extra = 100 * (target.cpu_s() - c0) / dt, 100 * (target.cpu_s(extra=True) - e0) / dt
    for t in wtasks:  # let adds in flight finish, then give the tabs time to receive the last ones
        t.cancel()
    await asyncio.gather(*wtasks, return_exceptions=True)
    await asyncio.sleep(10 if old else 5)
    await stop_all(run, tasks)
    lags, missed = [], 0
    for marker, story, _, returned in run.adds:
        for t in watching[story]:
            got = run.seen.get((t, marker))
            if got is None:
                missed += 1
            else:
                lags.append(max(0.0, got - returned))
    if missed:
        run.errors["missed updates (tab never got the paragraph)"] += missed
    return {"tabs": tabs, "ready": ready, "open_s": open_s, "adds": len(run.adds), "add_p50": pct(run.add_lat, 0.5),
            "add_p95": pct(run.add_lat, 0.95), "lag_p50": pct(lags, 0.5), "lag_p95": pct(lags, 0.95),
            "deliveries": len(lags), "missed": missed, "errors": run.errors, "cpu": cpu, "extra_cpu": extra,
            "rss": max(rss), "poll_p95": pct(run.poll_lat, 0.95)}


async def chromium_tabs(target: Target, stories: list[int], n: int, seconds: float, idle_cpu: float) -> dict:
    """n real Chromium tabs, each on a story, left idle: server CPU per tab above the no-client idle."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # One context per tab, as if each were a different person: a browser shares at most 6
            # connections per host among its tabs, and every tab of the new app holds one open.
            contexts, pages = [], []
            for i in range(n):
                context = await browser.new_context()
                contexts.append(context)
                if target.sticky:
                    await context.add_cookies([{"name": "relay_upstream", "value": f"chromium-{i}", "url": target.url}])
                page = await context.new_page()
                sid = stories[i % len(stories)]
                await page.goto(f"{target.url}?story={sid}", wait_until="domcontentloaded", timeout=120_000)
                await page.locator("#relay-timeline").get_by_text(f"bm9999x{sid}z").first.wait_for(timeout=120_000)
                pages.append(page)
            await asyncio.sleep(5)  # let the page's own start-up requests finish
            cpu, _ = await cpu_over(target, seconds)
            for context in contexts:
                await context.close()
        finally:
            await browser.close()
    return {"n": n, "cpu": cpu, "per_tab": (cpu - idle_cpu) / n}


# --- the run ------------------------------------------------------------------------------------------


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({model}), {mem:.0f} GiB, Python {platform.python_version()}"


def load_avg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def f_ms(s: float) -> str:
    return "—" if s != s else f"{s * 1000:,.0f} ms"


def f_s(s: float) -> str:
    return "—" if s != s else f"{s:.2f} s"


async def measure_target(h: Http, target: Target, args, old: bool, report: dict, browser: bool) -> None:
    col = report.setdefault(target.label, {})
    info = await api_info(h, target)
    stories = await make_stories(h, target, info, args.stories)
    await asyncio.sleep(2)
    idle, extra = await cpu_over(target, args.idle_seconds)
    col["idle"] = f"{idle:.2f} %" + (f" (+{extra:.2f} % db/proxy)" if target.extra_pids else "")
    print(f"  [{target.label}] no client: {idle:.2f} % of a core", flush=True)

    if browser and args.browser_tabs:
        try:
            r = await chromium_tabs(target, stories, args.browser_tabs, args.browser_seconds, idle)
            col["chromium"] = f"{r['per_tab']:.2f} % ({r['cpu']:.1f} % for {r['n']})"
            col["_chromium"] = r["per_tab"]
            print(f"  [{target.label}] {r['n']} Chromium tabs: {r['cpu']:.2f} % → {r['per_tab']:.3f} % per tab", flush=True)
        except Exception as e:  # noqa: BLE001 (a benchmark reports what broke and goes on)
            col["chromium"] = f"failed: {type(e).__name__}: {str(e)[:80]}"
            print(f"  [{target.label}] Chromium failed: {e}", flush=True)

    ladder = sorted({n for n in args.old_ladder if n < args.tabs} | {args.tabs}) if old else [args.tabs]
    rows = []
    for n in ladder:
        r = await idle_tabs(h, target, stories, n, args.idle_tab_seconds, idle, old)
        rows.append(r)
        print(f"  [{target.label}] {n} simulated tabs: ready {r['ready']}/{n}, {r['cpu']:.1f} % → "
              f"{r['per_tab']:.3f} % per tab, poll p95 {f_ms(r['poll_p95'])}, errors {errors_text(r['errors'])}", flush=True)
        if old and (not r["all_ready"] or r["errors"] or r["poll_p95"] > POLL_EVERY_S):
            break  # saturated: more tabs only measure a longer backlog
    best = rows[0] if old else rows[-1]
    col["sim"] = f"{best['per_tab']:.3f} % ({best['n']} tabs: {best['cpu']:.1f} %)"
    col["_sim"] = best["per_tab"]
    if old:
        col["ladder"] = "; ".join(f"{r['n']}: {r['cpu']:.0f} % cpu, ready {r['ready']}, poll p95 {f_ms(r['poll_p95'])}, "
                                  f"errors {sum(r['errors'].values())}" for r in rows)
    else:
        col["ladder"] = f"{rows[-1]['n']}: {rows[-1]['cpu']:.1f} % cpu, errors {sum(rows[-1]['errors'].values())}"

    r = await load(h, target, info, stories, args.tabs, args.writers, args.duration, tuple(args.gap), old)
    print(f"  [{target.label}] load: {json.dumps({k: v for k, v in r.items() if k != 'errors'}, default=str)}; "
          f"errors {errors_text(r['errors'])}", flush=True)
    col["ready"] = f"{r['ready']}/{r['tabs']} in {r['open_s']:.1f} s"
    col["adds"] = f"{r['adds']}"
    col["add"] = f"{f_ms(r['add_p50'])} / {f_ms(r['add_p95'])}"
    col["lag"] = f"{f_s(r['lag_p50'])} / {f_s(r['lag_p95'])}"
    col["_add95"], col["_lag95"] = r["add_p95"], r["lag_p95"]
    col["errors"] = errors_text(r["errors"])
    col["cpu"] = f"{r['cpu']:.0f} %" + (f" (+{r['extra_cpu']:.0f} % db/proxy)" if target.extra_pids else "")
    col["_cpu"] = r["cpu"]
    col["rss"] = f"{r['rss']:.0f} MiB"


ROWS = [
    ("idle", "server CPU, no client (% of a core)"),
    ("chromium", "per idle Chromium tab (% of a core)"),
    ("sim", "per idle simulated tab (% of a core)"),
    ("ladder", "simulated idle tabs: tabs → server CPU, errors"),
    ("ready", "load: tabs with their first view"),
    ("adds", "load: paragraphs added"),
    ("add", "load: add_paragraph p50 / p95"),
    ("lag", "load: add returned → tab has it, p50 / p95"),
    ("errors", "load: errors (HTTP, queue full, missed updates)"),
    ("cpu", "load: server CPU (% of a core)"),
    ("rss", "load: server RSS (peak)"),
]
RATIOS = {"chromium": "_chromium", "sim": "_sim", "add": "_add95", "lag": "_lag95", "cpu": "_cpu"}


def table(report: dict) -> str:
    labels = list(report)
    head = "| measure | " + " | ".join(labels) + (" | new / old |" if "old" in labels and "new" in labels else " |")
    lines = [head, "|---|" + "---:|" * (len(labels) + (1 if head.endswith("new / old |") else 0))]
    for key, name in ROWS:
        cells = [report[label].get(key, "—") for label in labels]
        line = f"| {name} | " + " | ".join(cells) + " |"
        if head.endswith("new / old |"):
            ratio = "—"
            k = RATIOS.get(key)
            old, new = report["old"].get(k), report["new"].get(k)
            if k and isinstance(old, float) and isinstance(new, float) and old > 0 and old == old and new == new:
                ratio = f"{new / old:.3f}×"
            line += f" {ratio} |"
        lines.append(line)
    return "\n".join(lines)


async def main_async(args) -> None:
    print(f"machine: {machine()}", flush=True)
    print(f"load average at start (1/5/15 min): {load_avg()}", flush=True)
    report: dict = {}
    with tempfile.TemporaryDirectory(prefix="relay-bench-live-") as tmp:
        workdir = Path(tmp)
        old_folder = baseline_folder(args.baseline, workdir)
        h = Http()
        try:
            if not args.skip_old:
                print(f"old app ({old_folder}):", flush=True)
                with app_server("old", old_folder, workdir) as target:
                    await measure_target(h, target, args, True, report, not args.skip_browser)
            print("new app (this checkout):", flush=True)
            with app_server("new", REPO, workdir) as target:
                await measure_target(h, target, args, False, report, not args.skip_browser)
            if args.postgres:
                print("new app, 2 processes behind nginx on PostgreSQL:", flush=True)
                try:
                    await postgres_run(h, args, report, workdir)
                except Exception as e:  # noqa: BLE001
                    print(f"  PostgreSQL run failed: {type(e).__name__}: {e}", flush=True)
        finally:
            await h.close()
    print()
    print(f"load average at end (1/5/15 min): {load_avg()}")
    print(f"{args.tabs} tabs over {args.stories} stories, {args.writers} writers (one paragraph every "
          f"{args.gap[0]:g}-{args.gap[1]:g} s), {args.duration:g} s; idle windows {args.idle_seconds:g} s / "
          f"{args.idle_tab_seconds:g} s; {args.browser_tabs} Chromium tabs for {args.browser_seconds:g} s")
    print()
    print(table(report))


async def postgres_run(h: Http, args, report: dict, workdir: Path) -> None:
    from tests.servers import app_processes, nginx_proxy, postgres_cluster

    pg_tmp = tempfile.mkdtemp(prefix="relay-bench-pg-")
    os.chmod(pg_tmp, 0o755)  # the cluster runs as `postgres` when we are root: it must enter this folder
    try:
        with postgres_cluster(pg_tmp) as url:
            pg_port = int(url.rsplit(":", 1)[1].split("/")[0])
            with app_processes(2, ["--model", "tiny", "--db", url], env=CHILD_ENV) as urls:
                ports = [int(u.rstrip("/").rsplit(":", 1)[1]) for u in urls]
                pids = [p for port in ports for p in listening_pids(port)]
                with nginx_proxy(ports, workdir) as proxy:
                    base = f"http://127.0.0.1:{proxy}/"
                    wait_answering(base, None, 60)
                    with urllib.request.urlopen(base + "config", timeout=30) as r:
                        config = json.load(r)
                    target = Target("new, 2 procs + nginx + PostgreSQL", base, pids,
                                    extra_pids=listening_pids(pg_port) + listening_pids(proxy), config=config,
                                    sticky=True)
                    await measure_target(h, target, args, False, report, not args.skip_browser)
    finally:
        shutil.rmtree(pg_tmp, ignore_errors=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: ~20 s per phase, 40 tabs, 5 writers, 2 Chromium tabs")
    p.add_argument("--tabs", type=int, default=200, help="simulated open tabs (idle phase and load)")
    p.add_argument("--writers", type=int, default=20, help="simulated writers during the load")
    p.add_argument("--stories", type=int, default=20, help="stories the tabs and writers spread over")
    p.add_argument("--duration", type=float, default=120, help="seconds of load")
    p.add_argument("--gap", type=float, nargs=2, default=(3.0, 6.0), help="seconds between one writer's adds (min max)")
    p.add_argument("--browser-tabs", type=int, default=6, help="real Chromium tabs (0: skip)")
    p.add_argument("--browser-seconds", type=float, default=60)
    p.add_argument("--idle-seconds", type=float, default=30, help="window for the no-client CPU")
    p.add_argument("--idle-tab-seconds", type=float, default=30, help="window for each simulated-idle-tabs step")
    p.add_argument("--old-ladder", type=int, nargs="*", default=[25, 50, 100],
                   help="simulated tab counts tried on the old app before --tabs (it stops once it saturates)")
    p.add_argument("--baseline", help=f"a checkout of the old app (default: commit {BASELINE_COMMIT} from git)")
    p.add_argument("--skip-old", action="store_true")
    p.add_argument("--skip-browser", action="store_true")
    p.add_argument("--postgres", action="store_true", help="also: 2 app processes behind nginx on PostgreSQL")
    args = p.parse_args(argv)
    if args.quick:
        args.tabs, args.writers, args.stories = min(args.tabs, 40), min(args.writers, 5), min(args.stories, 5)
        args.duration, args.browser_tabs, args.browser_seconds = 20, min(args.browser_tabs, 2), 10
        args.idle_seconds, args.idle_tab_seconds, args.old_ladder = 5, 8, [10]
    return args


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers this script started
    asyncio.run(main_async(parse_args()))
