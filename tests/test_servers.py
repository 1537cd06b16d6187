"""The real-server helpers of tests/servers.py do what other tests rely on.

PostgreSQL answers on its URL; nginx with deploy/nginx.conf keeps a client on one upstream,
spreads new clients, streams without buffering; app processes answer through the proxy and
Gradio's queue (join + event stream) works across it.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from servers import (REPO, ServerUnavailable, app_processes, free_port, nginx_proxy, port_of, postgres_cluster, psql,
                     skip_when_unavailable)


def test_a_throwaway_postgres_cluster_answers_on_localhost_and_is_gone_afterwards():
    with skip_when_unavailable(), postgres_cluster() as url:
        parts = urlsplit(url)
        assert parts.scheme == "postgresql" and parts.hostname == "127.0.0.1" and parts.path == "/relay"
        assert psql(url, "SELECT 1") == "1"
        assert psql(url, "SELECT current_database() || ' ' || current_setting('listen_addresses')") == "relay 127.0.0.1"
        psql(url, "CREATE TABLE t (x text); INSERT INTO t VALUES ('밤이 깊었다')")
        assert psql(url, "SELECT x FROM t") == "밤이 깊었다"  # UTF-8 end to end
        data_dir = psql(url, "SHOW data_directory")
    assert not os.path.exists(data_dir)
    with pytest.raises(RuntimeError):
        psql(url, "SELECT 1")


# --- nginx in front of plain HTTP servers ---------------------------------------------------------


class _Upstream:
    """A tiny HTTP server that says who it is, plus /stream that holds its second chunk until released."""

    def __init__(self, name: str):
        self.name = name
        self.release = threading.Event()
        self.hits = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                upstream.hits += 1
                if self.path == "/stream":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self._chunk(f"data: first from {upstream.name}\n\n")
                    upstream.release.wait(20)
                    self._chunk("data: second\n\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                body = upstream.name.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _chunk(self, text: str):
                data = text.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    upstreams = [_Upstream("a"), _Upstream("b")]
    try:
        with skip_when_unavailable(), nginx_proxy([u.port for u in upstreams], tmp_path_factory.mktemp("nginx")) as port:
            yield port, upstreams
    finally:
        for u in upstreams:
            u.close()


def _get(port: int, path: str = "/", cookie: str | None = None) -> tuple[str, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        return response.read().decode(), response.getheader("Set-Cookie")
    finally:
        conn.close()


def test_the_proxy_keeps_one_client_on_one_upstream_by_its_cookie(proxied):
    port, _ = proxied
    first, set_cookie = _get(port)
    assert set_cookie and set_cookie.startswith("relay_upstream=") and "HttpOnly" in set_cookie
    cookie = set_cookie.split(";", 1)[0]
    for _ in range(10):
        name, again = _get(port, cookie=cookie)
        assert name == first
        assert again is None  # the cookie is set once, not on every response


def test_the_proxy_spreads_new_clients_over_every_upstream(proxied):
    # Every client here comes from 127.0.0.1: an address hash would send them all to one upstream.
    port, upstreams = proxied
    seen = {_get(port)[0] for _ in range(40)}
    assert seen == {u.name for u in upstreams}


def test_the_proxy_passes_a_stream_through_before_it_ends(proxied):
    # proxy_buffering off: the first event reaches the client while the upstream still holds the
    # second one back, as the model's words must while it writes.
    port, upstreams = proxied
    name, set_cookie = _get(port)
    cookie = set_cookie.split(";", 1)[0]
    upstream = next(u for u in upstreams if u.name == name)
    upstream.release.clear()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/stream", headers={"Cookie": cookie})
        response = conn.getresponse()
        assert response.status == 200
        assert response.readline().decode() == f"data: first from {name}\n"  # 10 s timeout if buffered
        upstream.release.set()
        assert "data: second" in response.read().decode()
    finally:
        upstream.release.set()
        conn.close()


# --- the app itself, two processes behind the proxy -----------------------------------------------


def test_two_app_processes_behind_the_proxy_share_one_database_and_gradio_queue_works_through_it(
        tiny_model_dir, tmp_path):
    from gradio_client import Client

    db = tmp_path / "shared.db"
    args = ["--model", str(tiny_model_dir), "--db", str(db)]
    with skip_when_unavailable(), app_processes(2, args) as (a, b), \
            nginx_proxy([port_of(a), port_of(b)], tmp_path) as port:
        proxy = Client(f"http://127.0.0.1:{port}/", verbose=False)
        assert any(name.startswith("relay_upstream") for name in proxy.cookies)  # kept for the queue's stream
        key = proxy.predict(api_name="/writer_key")
        story = proxy.predict("프록시 너머", "민지", "free", key, api_name="/create_story")
        proxy.predict(story["id"], "밤이 깊었다.", "민지", 0, key, None, api_name="/add_paragraph")
        # A streaming job: joins Gradio's queue, then reads the event stream, both through nginx.
        job = proxy.submit(story["id"], "민지", {"max_new_tokens": 12, "seed": 7}, None, key,
                           api_name="/continue_story")
        final = job.result(timeout=120)
        assert final["done"] and final["candidate_id"]
        proxy.predict(final["candidate_id"], "민지", None, final["expected_head"], key, api_name="/accept")
        # Each process, asked directly, sees what was written through the proxy (whichever served it).
        for direct in (a, b):
            texts = [p["text"] for p in Client(direct, verbose=False).predict(story["id"], api_name="/timeline")]
            assert texts[0] == "밤이 깊었다." and len(texts) == 2


def test_run_local_starts_k_app_processes_behind_nginx_and_stops_them_all(tiny_model_dir, tmp_path):
    if not any(os.access(p, os.X_OK) for p in ("/usr/sbin/nginx", "/usr/bin/nginx")):
        with skip_when_unavailable():
            raise ServerUnavailable("nginx is not installed (apt-get install nginx)")
    proxy_port, base_port = free_port(), free_port()
    env = {**os.environ, "PYTHON": sys.executable, "RUN_DIR": str(tmp_path / "run"), "PORT": str(proxy_port),
           "BASE_PORT": str(base_port), "RELAY_DB": str(tmp_path / "relay.db")}
    out = tmp_path / "run-local.out"
    with open(out, "wb") as sink:
        script = subprocess.Popen(["bash", "deploy/run-local.sh", "2", "--model", str(tiny_model_dir)], cwd=REPO,
                                  env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while "Relay: http" not in out.read_text():
            assert script.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.25)
        body, set_cookie = _get(proxy_port)
        assert "<html" in body.lower() and set_cookie.startswith("relay_upstream=")
        from gradio_client import Client

        local = Client(f"http://127.0.0.1:{proxy_port}/", verbose=False)
        story = local.predict("로컬", "민지", "free", local.predict(api_name="/writer_key"), api_name="/create_story")
        for port in (base_port, base_port + 1):  # both processes share RELAY_DB
            stories = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(api_name="/list_stories")
            assert story["id"] in [s["id"] for s in stories]
    finally:
        script.send_signal(signal.SIGTERM)
        script.wait(timeout=30)
    children = [int(p) for p in re.findall(r"\(pid (\d+),", out.read_text())]
    assert len(children) == 2
    for pid in children:  # Ctrl-C / SIGTERM stops every app process it started
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
