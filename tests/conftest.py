"""Shared fixtures: every test gets its own database; tiny models are built once per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RELAY_SHARED", REPO.parent / "shared"))
KOGPT2_DIR = SHARED / "kogpt2"
CORPUS_DIR = SHARED / "corpus" / "koconovel"

# Tests never reach the Hugging Face Hub, even by accident.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Converted models (the openvino backend's cache) go to one temp folder per test run, not ./relay-data.
os.environ.setdefault("RELAY_CACHE", tempfile.mkdtemp(prefix="relay-test-cache-"))


@pytest.fixture(scope="session")
def relay_cache() -> Path:
    """The folder converted models go to for this test run (set above, before any module imports the engine)."""
    return Path(os.environ["RELAY_CACHE"])


@pytest.fixture(autouse=True)
def relay_db(tmp_path, monkeypatch):
    """Point the story store at a database in this test's temp dir."""
    path = tmp_path / "relay-test.db"
    monkeypatch.setenv("RELAY_DB", str(path))
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random GPT-2 with a small Korean BPE tokenizer, saved like a Hub model."""
    from relay.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def kogpt2_dir() -> Path:
    """The real KoGPT-2 tokenizer.json and config.json from ../shared (skips when absent)."""
    if not (KOGPT2_DIR / "tokenizer.json").exists():
        pytest.skip(f"needs the real KoGPT-2 tokenizer at {KOGPT2_DIR} (../shared is not beside the repo)")
    return KOGPT2_DIR


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The 40 public-domain KoCoNovel texts from ../shared (skips when absent)."""
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"needs the KoCoNovel corpus at {CORPUS_DIR} (../shared is not beside the repo)")
    return CORPUS_DIR


@pytest.fixture(scope="session")
def kogpt2_tiny_model_dir(tmp_path_factory, kogpt2_dir) -> Path:
    """A tiny random GPT-2 with the real KoGPT-2 tokenizer and vocabulary (51,200 ids)."""
    from relay.tiny import build_tiny_model

    return build_tiny_model(
        tmp_path_factory.mktemp("kogpt2-tiny"),
        tokenizer_file=kogpt2_dir / "tokenizer.json",
        n_embd=32,
        n_head=2,
        n_positions=1024,
    )


# --- the story store on both backends ---------------------------------------------------------

PG_SKIP_REASON = (
    "PostgreSQL tests need RELAY_TEST_PG_URL (a server where the test user may CREATE DATABASE) or"
    " PostgreSQL's server binaries to start a throwaway cluster (Debian: apt-get install postgresql)"
)


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: a store test about SQLite itself (files, pragmas, old schemas)")


class TestDatabase:
    """One empty story database for one test: `target` is what StoryStore() takes (also in $RELAY_DB)."""

    __test__ = False  # not a test class

    def __init__(self, backend: str, target):
        self.backend = backend
        self.target = target

    def execute(self, sql: str, params: dict | None = None) -> list:
        """Run raw SQL (":name" parameters) outside the store, e.g. to age a row; returns the last rows.

        Several statements separated by ";" run in one transaction.
        """
        import sqlalchemy as sa

        url = self.target if self.backend == "postgresql" else f"sqlite:///{self.target}"
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            rows: list = []
            with engine.begin() as conn:
                for statement in filter(str.strip, sql.split(";")):
                    result = conn.execute(sa.text(statement), params or {})
                    rows = result.fetchall() if result.returns_rows else []
            return rows
        finally:
            engine.dispose()


class PostgresServer:
    """A PostgreSQL server for the tests: $RELAY_TEST_PG_URL, or a throwaway cluster in a temp dir."""

    def __init__(self, admin_url: str, cleanup):
        self.admin_url = admin_url
        self._cleanup = cleanup
        self._count = 0
        self._created: list[str] = []
        self._shared: str | None = None

    def new_schema(self) -> str:
        """A fresh, empty schema in one shared test database; its URL puts it first on search_path.

        Much cheaper than a database per test (no 8 MB template copy to make and remove).
        """
        import psycopg

        if self._shared is None:
            self._shared = self.new_database()
        self._count += 1
        name = f"t{self._count}"
        with psycopg.connect(self._shared, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self._shared}?options=-csearch_path%3D{name}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its postgresql:// URL."""
        import psycopg

        self._count += 1
        name = f"relay_test_{os.getpid()}_{self._count}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'')
        self._created.append(name)
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{name}"

    def close(self) -> None:
        import psycopg

        if self._cleanup is None:  # someone else's server: drop what the tests made
            try:
                with psycopg.connect(self.admin_url, autocommit=True) as conn:
                    for name in self._created:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error:
                pass
        else:
            self._cleanup()


def _start_throwaway_cluster(durable: bool = False) -> PostgresServer:
    """A throwaway cluster from tests/servers.py (on 127.0.0.1, as `postgres` when we are root).

    `durable=False` (tests) turns fsync off; benchmarks pass True to measure real commits.
    """
    from contextlib import ExitStack

    from servers import ServerUnavailable, postgres_cluster

    running = ExitStack()
    try:
        url = running.enter_context(postgres_cluster(durable=durable))
    except ServerUnavailable as exc:
        running.close()
        if os.environ.get("RELAY_REQUIRE_SERVERS") == "1":  # CI: a missing PostgreSQL is a broken install
            raise
        pytest.skip(f"{PG_SKIP_REASON} ({exc})")
    base, _, _ = url.rpartition("/")
    return PostgresServer(f"{base}/postgres", running.close)


@pytest.fixture(scope="session")
def pg_server():
    """The PostgreSQL server the store tests use (skips with a reason when there is none)."""
    url = os.environ.get("RELAY_TEST_PG_URL", "").strip()
    if url:
        server = PostgresServer(url, None)
    else:
        server = _start_throwaway_cluster()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, relay_db, monkeypatch) -> TestDatabase:
    """An empty story database on each backend, also set as $RELAY_DB so StoryStore() opens it."""
    if request.param == "sqlite":
        return TestDatabase("sqlite", relay_db)
    if request.node.get_closest_marker("sqlite_only"):
        pytest.skip("about SQLite itself")
    url = request.getfixturevalue("pg_server").new_schema()
    monkeypatch.setenv("RELAY_DB", url)
    return TestDatabase("postgresql", url)
