"""The deployment of deploy/README.md in a real browser: two app processes behind nginx on one database.

A Chromium tab is served, through the proxy, by process B; paragraphs written through process
A's API must appear in it without a reload, and what the tab writes must be visible to A. Runs
on a shared SQLite file and on a throwaway PostgreSQL cluster (tests/servers.py).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import pytest

pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
from playwright.sync_api import expect  # noqa: E402
from relay_page import RelayPage  # noqa: E402
from servers import (  # noqa: E402
    app_processes,
    cookie_for_upstream,
    nginx_proxy,
    port_of,
    postgres_cluster,
    skip_when_unavailable,
    store_on_postgres,
)

pytestmark = pytest.mark.browser

LIVE_TIMEOUT_MS = 10_000  # the live-update target is a 2 s p95; CI machines are slower and busier


@dataclass
class Deployment:
    """Two app processes on one database, and the proxy in front of them."""

    proxy: str  # http://127.0.0.1:PORT/
    a: str
    b: str
    db: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(request, chromium_path, tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"deploy-{request.param}")
    with skip_when_unavailable(), ExitStack() as running:
        if request.param == "postgresql":
            db = running.enter_context(postgres_cluster())
            store_on_postgres(db).close()  # skips while the store only knows SQLite; creates the tables once
        else:
            db = str(tmp / "relay.db")
        a, b = running.enter_context(app_processes(2, ["--model", str(tiny_model_dir), "--db", db], logs=tmp / "logs"))
        port = running.enter_context(nginx_proxy([port_of(a), port_of(b)], tmp))
        yield Deployment(proxy=f"http://127.0.0.1:{port}/", a=a, b=b, db=db)


def test_a_paragraph_written_through_process_a_appears_live_in_a_tab_that_process_b_serves(
        deployment, new_page, screenshots):
    from gradio_client import Client

    api_a = Client(deployment.a, verbose=False)
    key = api_a.predict(api_name="/writer_key")
    story = api_a.predict("두 프로세스의 밤", "민지", "free", key, api_name="/create_story")

    # Put the tab on process B: a relay_upstream cookie that the proxy routes there.
    page = new_page()
    sticky = cookie_for_upstream(port_of(deployment.proxy), port_of(deployment.b))
    page.context.add_cookies([{"name": "relay_upstream", "value": sticky, "url": deployment.proxy}])
    served_by = []
    page.on("response", lambda r: served_by.append(r.headers.get("x-relay-upstream"))
            if r.url.startswith(deployment.proxy) else None)

    tab = RelayPage(page, deployment.proxy).open(f"{deployment.proxy}?story={story['id']}")
    tab.sign_in("준호")
    expect(tab.header.locator(".relay-title")).to_contain_text("두 프로세스의 밤")
    expect(tab.paragraphs).to_have_count(0)
    page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads

    api_a.predict(story["id"], "A 프로세스에서 쓴 문단.", "민지", 0, key, None, api_name="/add_paragraph")
    expect(tab.paragraphs).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
    expect(tab.paragraphs.first.locator(".relay-text")).to_have_text("A 프로세스에서 쓴 문단.")
    expect(tab.paragraphs.first.locator(".relay-author")).to_have_text("민지")
    assert page.evaluate("() => window.__sameDocument === true")

    # And the other way: what the tab (on B) writes, A serves.
    tab.add("B 탭에서 이어 쓴 문단.")
    texts = [p["text"] for p in api_a.predict(story["id"], api_name="/timeline")]
    assert texts == ["A 프로세스에서 쓴 문단.", "B 탭에서 이어 쓴 문단."]

    page.screenshot(path=str(screenshots / "deploy-two-processes-behind-nginx.png"), full_page=True)
    # Every request of the tab, its queue joins and event streams included, went to process B.
    answered = [s for s in served_by if s]
    assert answered and all(s.endswith(f":{port_of(deployment.b)}") for s in answered), set(answered)
