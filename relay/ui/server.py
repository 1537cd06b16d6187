"""Serving the page: Gradio mounted in a FastAPI app beside the live stream route, run by uvicorn.

    server = serve(demo, store, host="127.0.0.1", port=7860, block=False)
    print(server.url); ...; server.close()

Queue policy (README "Limits"): every Gradio event starts at once (no concurrency group makes a
cheap event wait behind a model job); the model's own queue is the engine's, and a writer may have
at most a few model jobs waiting or running (relay/limits.py). Tabs follow their story through
`/relay/live` (Server-Sent Events from relay/live.py), which never touches Gradio's queue.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from relay.limits import Rates, client_ip
from relay.live import MAX_SUBSCRIBERS, LiveHub
from relay.story_store import NotFound, StoryStore
from relay.ui.common import CACHE_CLEANUP, MAX_UPLOAD_SIZE, STATE_SESSION_CAPACITY
from relay.ui.controls import make_i18n
from relay.ui.demo import MAX_OLDER_PAGE, OLDER_PAGE, older_cards, story_parts
from relay.ui.history import CSS as HISTORY_CSS
from relay.ui.history import head_scripts
from relay.ui.http_guards import BodyCap, StreamsPerAddress
from relay.ui.render import CSS, CardCache
from relay.ui.token_route import add_token_route
from relay.ui.token_view import CSS as TOKEN_CSS
from relay.ui_text import say

QUEUE_MAX_SIZE = 2048  # events waiting at once in the whole server (a memory bound; nothing normally waits)
MAX_THREADS = 256  # worker threads for handlers (each streaming model turn holds one while it waits for text)
QUEUE_IDLE_SLEEP_S = 0.05  # Gradio's queue loop checks for new events this often when idle (its default, 1 ms, costs ~7% of a core)
LIVE_JS = (Path(__file__).with_name("live.js")).read_text(encoding="utf-8")
TOKEN_VIEW_JS = (Path(__file__).with_name("token_view.js")).read_text(encoding="utf-8")


@dataclass
class Server:
    """A running Relay server: its URL, the live hub, and how to stop it."""

    url: str
    hub: LiveHub
    _server: uvicorn.Server
    _thread: threading.Thread | None

    def close(self) -> None:
        self.hub.close()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def build_app(demo: gr.Blocks, store: StoryStore, **gradio_options) -> tuple[FastAPI, LiveHub]:
    """The FastAPI app: `/relay/live` (the story stream), `/relay/older` (earlier paragraphs) and the Gradio page at `/`."""
    cards = CardCache()  # rendered cards, shared by the live stream and the older pages (bounded)
    hub = LiveHub(store, lambda story_id, lang: story_parts(store, story_id, lang, cards))
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    streams = StreamsPerAddress(Rates.from_env().live_tabs_per_address)  # README "Limits"

    @app.get("/relay/live")
    async def live(request: Request, story: str = Query(...), lang: str = Query("ko"), writer: str = Query("")):
        """Server-Sent Events: the story's live state, then its changes as they happen.

        `writer`, the page's public writer id, only shows the writer among who is here (never a permission)."""
        if not story.isdigit() or not 0 < int(story) < 2**63:
            return JSONResponse({"error": "story must be a positive whole number"}, status_code=400)
        if hub.subscriber_count() >= MAX_SUBSCRIBERS:
            return JSONResponse({"error": "too many open tabs on this server; reload in a moment"}, status_code=503)
        address = client_ip(request)
        if not streams.take(address):
            return JSONResponse({"error": f"too many open tabs from your address (at most {streams.cap}); "
                                          "close some tabs"}, status_code=429)
        writer = writer if re.fullmatch(r"[0-9a-f]{16}", writer) else None
        return StreamingResponse(_guarded(hub, int(story), lang, lambda: streams.give_back(address), writer),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    add_token_route(app, store)  # an AI paragraph's token probabilities, on demand (relay/ui/token_route.py)

    @app.get("/relay/older")
    def older(story: str = Query(...), before: str = Query(...), lang: str = Query("ko"),
              limit: str = Query(str(OLDER_PAGE))):
        """JSON: the paragraphs before seq `before` as rendered cards, for a reader scrolling up."""
        problem = _older_problem(story, before, lang, limit)
        if problem:
            return JSONResponse({"error": problem}, status_code=400)
        try:
            page = older_cards(store, int(story), int(before), lang, cards, int(limit))
        except NotFound:
            return JSONResponse({"error": say(lang, "story_not_found", story=int(story))}, status_code=404)
        return JSONResponse(page, headers={"Cache-Control": "no-store"})

    demo.max_threads = MAX_THREADS  # before queue(): it sizes the queue's job slots and the thread limiter from it
    demo.queue(default_concurrency_limit=None, max_size=QUEUE_MAX_SIZE)
    _calm_idle_queue(demo)
    if demo.delete_cache is None:  # read when the server app is created (README "Limits")
        demo.delete_cache = CACHE_CLEANUP
    demo.state_session_capacity = STATE_SESSION_CAPACITY
    gradio_options.setdefault("ssr_mode", False)
    gradio_options["head"] = (f"<script>{LIVE_JS}</script><script>{TOKEN_VIEW_JS}</script>" + head_scripts()
                              + gradio_options.get("head", ""))
    app = gr.mount_gradio_app(app, demo, path="/", i18n=make_i18n(), css=CSS + HISTORY_CSS + TOKEN_CSS,
                              max_file_size=MAX_UPLOAD_SIZE, **gradio_options)
    app.add_middleware(BodyCap)  # every route, Gradio's included: large bodies are refused before they are read
    return app, hub


def _older_problem(story: str, before: str, lang: str, limit: str) -> str | None:
    """What is wrong with an `/relay/older` request's parameters (plain digits only), or None."""
    def number(text: str, below: int) -> bool:
        return text.isascii() and text.isdigit() and len(text) < 20 and 0 < int(text) < below

    if not number(story, 2**63):
        return "story must be a positive whole number"
    if not number(before, 2**31):
        return "before must be a paragraph number (1 or more)"
    if lang not in ("ko", "en"):
        return "lang must be ko or en"
    if not number(limit, MAX_OLDER_PAGE + 1):
        return f"limit must be a whole number from 1 to {MAX_OLDER_PAGE}"
    return None


async def _guarded(hub: LiveHub, story_id: int, lang: str, closed, writer: str | None = None):
    """The hub's stream, with an unknown story turned into one error event instead of a broken stream."""
    try:
        async for chunk in hub.stream(story_id, lang, writer):
            yield chunk
    except NotFound:
        message = say(lang if lang in ("ko", "en") else "ko", "story_not_found", story=story_id)
        yield f"data: {json.dumps({'kind': 'error', 'message': message}, ensure_ascii=False)}\n\n"
    finally:
        closed()


def _calm_idle_queue(demo: gr.Blocks) -> None:
    """Gradio's queue loop polls every 1 ms when it has nothing to do; at 50 ms an idle server sleeps.

    An event then waits at most 50 ms before it starts (Gradio's own setting on Windows). The progress
    loop serves gr.Progress, which Relay does not use. Feature-checked: a Gradio without these
    attributes keeps its own timing.
    """
    queue = getattr(demo, "_queue", None)
    if queue is not None and hasattr(queue, "sleep_when_free"):
        queue.sleep_when_free = QUEUE_IDLE_SLEEP_S
    if queue is not None and hasattr(queue, "progress_update_sleep_when_free"):
        queue.progress_update_sleep_when_free = 0.5


def serve(demo: gr.Blocks, store: StoryStore, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True,
          **gradio_options) -> Server:
    """Serve the page on host:port; with block=False, return once it answers (tests, benchmarks)."""
    app, hub = build_app(demo, store, **gradio_options)
    # proxy_headers=False: uvicorn would otherwise take X-Forwarded-For from any local connection as the
    # client's address; relay.limits.client_ip reads it only from the proxies the operator names.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_keep_alive=30,
                            timeout_graceful_shutdown=2, proxy_headers=False)
    server = uvicorn.Server(config)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    if block:
        print(f"Relay is running at {url}", flush=True)
        server.run()
        return Server(url=url, hub=hub, _server=server, _thread=None)
    thread = threading.Thread(target=server.run, name="relay-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.05)
    return Server(url=url, hub=hub, _server=server, _thread=thread)


def free_port() -> int:
    """A TCP port nobody listens on right now (for tests and benchmarks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
