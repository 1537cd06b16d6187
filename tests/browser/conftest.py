"""Browser fixtures: the app served in this process on a free port, and Debian's Chromium driven by Playwright.

The app runs with a tiny random model and its own database. Browser tests skip (with the reason)
when /usr/bin/chromium is absent; CI installs it through .ci/run. Never `playwright install` here:
the Debian build is the browser under test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.tiny import build_tiny_adapter

CHROMIUM = Path(os.environ.get("RELAY_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"


@dataclass
class ServedApp:
    """A running Relay app: its URL and the story store behind it (shared with every browser)."""

    url: str
    store: object


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's Chromium; browser tests skip when it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium fonts-noto-cjk; "
                    f".ci/run does this)")
    pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
    return CHROMIUM


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    """One tiny-model engine shared by every app the browser tests start."""
    from relay.engine import Engine

    return Engine.from_pretrained(model=str(tiny_model_dir))


def _serve(engine, db: Path):
    import app
    from relay.story_store import StoryStore
    from relay.ui.server import free_port, serve

    store = StoryStore(db)
    # The story list is never empty, so a page has finished loading once a story link shows.
    store.create_story("입구", "관리자", turn_rule="free")
    demo = app.build_demo(engine, store, tiny=True)
    server = serve(demo, store, host="127.0.0.1", port=free_port(), block=False)
    return server, ServedApp(url=server.url, store=store)


@pytest.fixture(scope="session")
def relay_app(chromium_path, tiny_engine, tmp_path_factory):
    """The app as every browser sees it: each open tab follows its story live."""
    server, served = _serve(tiny_engine, tmp_path_factory.mktemp("browser-db") / "relay.db")
    yield served
    server.close()


@pytest.fixture(scope="session")
def adapter_app(chromium_path, tiny_model_dir, tmp_path_factory):
    """The app on an engine started with one LoRA adapter, "style", so the model/adapter picker shows."""
    from relay.engine import Engine

    folder = build_tiny_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "style")
    engine = Engine.from_pretrained(model=str(tiny_model_dir), adapters={"style": str(folder)})
    server, served = _serve(engine, tmp_path_factory.mktemp("browser-db-adapter") / "relay.db")
    yield served
    server.close()


@pytest.fixture(scope="session")
def chromium(chromium_path):
    """A headless Chromium for the whole session."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium):
    """Factory: a page in a fresh browser context (its own localStorage, like another person's browser)."""
    contexts = []

    def make(locale: str = "ko-KR"):
        context = chromium.new_context(locale=locale, viewport={"width": 1280, "height": 1400})
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """artifacts/screenshots/ in the repo (git-ignored); CI keeps it as a test artifact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
