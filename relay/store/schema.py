"""Where the story store's data lives: the database URL, the engine, the tables, the migrations.

One code path for both backends (SQLAlchemy Core 2): a file path means SQLite (the embedded
default), a `postgresql://` URL means PostgreSQL through psycopg 3. The schema evolves through
the Alembic revisions in `relay/store/migrations/versions/` (m001, m002, m003, ...), applied when
a store opens. Databases written before Alembic recorded the same steps in a `_migrations`
table (`m001_initial`, `m002_ai_turns_and_candidates`, ...); they are stamped at the matching
revision and upgraded in place.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from relay.store.errors import StoryError

DEFAULT_DB = Path("relay-data") / "relay.db"
BUSY_TIMEOUT_MS = 10_000
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Names the pre-Alembic `_migrations` table used for the revisions it applied.
LEGACY_MIGRATIONS = {
    "m001_initial": "m001",
    "m002_ai_turns_and_candidates": "m002",
    "m003_live_turns_and_change_feed": "m003",
}
PG_CHANNEL = "relay_changes"  # LISTEN/NOTIFY channel of the change feed
_PG_MIGRATION_LOCK = 0x52454C4159  # "RELAY": pg_advisory_xact_lock key for migrations

# The schema at the newest revision, for queries. Migrations never import this: each revision
# describes its own step.
metadata = sa.MetaData()
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

stories = sa.Table(
    "stories", metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("turn_rule", sa.Text, nullable=False),
    sa.Column("settings", sa.Text, nullable=False),
    sa.Column("forked_from_story", sa.BigInteger),
    sa.Column("forked_from_paragraph", sa.BigInteger),
    sa.Column("paragraph_count", sa.Integer, nullable=False),
    sa.Column("last_activity", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("change_seq", sa.BigInteger, nullable=False),
    sa.Column("ai_turn_id", sa.Text),
    sa.Column("creator_id", sa.Text),
    sa.Column("origin", sa.Text),  # JSON: where an imported story came from (m006); NULL otherwise
)
paragraphs = sa.Table(
    "paragraphs", metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("story_id", sa.BigInteger, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("edited", sa.Integer, nullable=False),
    sa.Column("meta", sa.Text, nullable=False),
    sa.Column("deleted", sa.Integer, nullable=False),
    sa.Column("writer_id", sa.Text),
    sa.Column("client_id", sa.Text),
    sa.Column("hidden", sa.Integer, nullable=False, server_default="0"),
    sa.Column("undone_by", sa.Text),
    sa.Column("undone_by_id", sa.Text),
    sa.Column("undone_at", sa.Text),
    sa.Column("head_after_undo", sa.BigInteger),
)
paragraph_versions = sa.Table(
    "paragraph_versions", metadata,
    sa.Column("paragraph_id", sa.BigInteger, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("editor", sa.Text, nullable=False),
    sa.Column("editor_id", sa.Text),
    sa.Column("edited_at", sa.Text, nullable=False),
)
candidates = sa.Table(
    "candidates", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("story_id", sa.BigInteger, nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("meta", sa.Text, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("created_unix", sa.Float, nullable=False),
    sa.Column("used", sa.Integer, nullable=False),
    sa.Column("turn_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("writer_id", sa.Text),
)
ai_turns = sa.Table(
    "ai_turns", metadata,
    sa.Column("n", ID, primary_key=True),
    sa.Column("id", sa.Text, nullable=False),
    sa.Column("story_id", sa.BigInteger, nullable=False),
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("holder_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("draft", sa.Text, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("process", sa.Text),
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("lost_to", sa.Text),
)
writers = sa.Table(
    "writers", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("key_sha256", sa.Text, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
)
story_names = sa.Table(
    "story_names", metadata,
    sa.Column("story_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("writer_id", sa.Text, nullable=False),
    sa.Column("bound_at", sa.Text, nullable=False),
)
blocked_writers = sa.Table(
    "blocked_writers", metadata,
    sa.Column("story_id", sa.BigInteger, primary_key=True),
    sa.Column("writer_id", sa.Text, primary_key=True),
    sa.Column("blocked_at", sa.Text, nullable=False),
)
# Presence (m008): which writers have a tab open on a story, per app process (relay/store/presence.py).
presence = sa.Table(
    "presence", metadata,
    sa.Column("story_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("writer_id", sa.Text, primary_key=True),
    sa.Column("process", sa.Text, primary_key=True),
    sa.Column("tabs", sa.Integer, nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False),
)
# Steering (m007): the story memory and author's note (one row per story, made on the first edit), the
# story cards, and every version of each, with who made it and when (relay/store/steering.py).
story_steering = sa.Table(
    "story_steering", metadata,
    sa.Column("story_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("memory", sa.Text, nullable=False),
    sa.Column("memory_version", sa.Integer, nullable=False),
    sa.Column("memory_by", sa.Text),
    sa.Column("memory_at", sa.Text),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("note_depth", sa.Integer, nullable=False),
    sa.Column("note_version", sa.Integer, nullable=False),
    sa.Column("note_by", sa.Text),
    sa.Column("note_at", sa.Text),
    sa.Column("scan_depth", sa.Integer, nullable=False),
    sa.Column("locked", sa.Integer, nullable=False),
)
story_cards = sa.Table(
    "story_cards", metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("story_id", sa.BigInteger, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("keys", sa.Text, nullable=False),  # a JSON list of strings
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("always_on", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Integer, nullable=False),
    sa.Column("inside_words", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("deleted", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Text, nullable=False),
)
steering_versions = sa.Table(
    "steering_versions", metadata,
    sa.Column("n", ID, primary_key=True),
    sa.Column("story_id", sa.BigInteger, nullable=False),
    sa.Column("block", sa.Text, nullable=False),  # "memory" | "note" | "card"
    sa.Column("card_id", sa.BigInteger),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # JSON: the block as this version made it
    sa.Column("editor", sa.Text, nullable=False),
    sa.Column("editor_id", sa.Text),
    sa.Column("edited_at", sa.Text, nullable=False),
)
change_counter = sa.Table(
    "change_counter", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("value", sa.BigInteger, nullable=False),
)


def default_db_path() -> Path:
    """The database used when none is given: $RELAY_DB, else ./relay-data/relay.db."""
    env = os.environ.get("RELAY_DB", "").strip()
    return Path(env) if env else DEFAULT_DB


def default_db_target() -> str | Path:
    """What StoryStore() opens: $RELAY_DB (a path or a postgresql:// URL), else ./relay-data/relay.db."""
    env = os.environ.get("RELAY_DB", "").strip()
    if is_postgres_url(env):
        return env
    return default_db_path()


def is_postgres_url(target: object) -> bool:
    """True for a `postgresql://` (or `postgres://`, `postgresql+psycopg://`) URL."""
    return isinstance(target, str) and target.split("://", 1)[0] in ("postgresql", "postgres", "postgresql+psycopg")


def libpq_url(url: str) -> str:
    """The URL as libpq (psycopg.connect) reads it."""
    return "postgresql://" + url.split("://", 1)[1]


def create_engine(target: str | os.PathLike) -> sa.Engine:
    """An engine for a SQLite file path or a PostgreSQL URL, with Relay's connection settings."""
    if is_postgres_url(target):
        return sa.create_engine(
            "postgresql+psycopg://" + str(target).split("://", 1)[1],
            pool_size=5, max_overflow=20, pool_timeout=BUSY_TIMEOUT_MS / 1000, pool_pre_ping=False,
            connect_args={"connect_timeout": 10, "application_name": "relay"},
        )
    path = Path(target)
    engine = sa.create_engine(
        "sqlite+pysqlite:///" + str(path),
        # A pool that keeps a connection per concurrent thread and opens more on demand.
        poolclass=sa.pool.QueuePool, pool_size=8, max_overflow=-1,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record) -> None:
    # The store emits BEGIN itself (see _sqlite_on_begin): pysqlite must not.
    dbapi_conn.isolation_level = None
    dbapi_conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = dbapi_conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoryError(f"Could not switch the database to WAL journaling (got {mode!r}).")
    # FULL: a commit that returned survives power loss, not only a killed process.
    dbapi_conn.execute("PRAGMA synchronous = FULL")
    dbapi_conn.execute("PRAGMA foreign_keys = ON")


def _sqlite_on_begin(conn: sa.Connection) -> None:
    # A write takes SQLite's write lock with its first statement, so "read the head, check, append"
    # cannot interleave with another writer; a read gets a plain (deferred) snapshot.
    if conn.get_execution_options().get("relay_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _alembic_config(conn: sa.Connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def migrate(engine: sa.Engine) -> list[str]:
    """Bring the database to the newest revision; return the revisions applied.

    Runs in one transaction under a lock (SQLite's write lock; a PostgreSQL advisory lock), so
    processes opening a new database at once apply each revision once. A database stamped by
    a newer Relay is refused with StoryError.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    # Usually the database is already up to date: check that with a plain read first, so a
    # read-only database still opens (its writes then fail with StoreUnavailable).
    with engine.connect() as conn:
        with conn.begin():
            current = set(MigrationContext.configure(conn).get_current_heads())
            if current and current == {ScriptDirectory.from_config(_alembic_config(conn)).get_current_head()}:
                return []
    with engine.connect() as conn:
        conn.execution_options(relay_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            cfg = _alembic_config(conn)
            script = ScriptDirectory.from_config(cfg)
            known = {rev.revision for rev in script.walk_revisions()}
            context = MigrationContext.configure(conn)
            current = set(context.get_current_heads())
            if not current:
                current = _stamp_legacy(conn, context, known)
            unknown = sorted(current - known)
            if unknown:
                raise StoryError(
                    f"This database was written by a newer Relay (schema revision {', '.join(unknown)}); update Relay."
                )
            head = script.get_current_head()
            if current == {head}:
                return []
            done = _with_ancestors(script, current)
            pending = [r.revision for r in reversed(list(script.walk_revisions())) if r.revision not in done]
            command.upgrade(cfg, "head")
            return pending


def _with_ancestors(script, revisions: set[str]) -> set[str]:
    out: set[str] = set()
    for rev in revisions:
        out |= {r.revision for r in script.iterate_revisions(rev, "base")}
    return out


def _stamp_legacy(conn: sa.Connection, context, known: set[str]) -> set[str]:
    """Stamp a database from before Alembic at the revision its `_migrations` table records."""
    if not sa.inspect(conn).has_table("_migrations"):
        return set()
    names = [row[0] for row in conn.execute(sa.text("SELECT name FROM _migrations"))]
    unknown = sorted(n for n in names if n not in LEGACY_MIGRATIONS)
    if unknown:
        raise StoryError(f"This database was written by a newer Relay (migrations {', '.join(unknown)}); update Relay.")
    if not names:
        return set()
    newest = max(LEGACY_MIGRATIONS[n] for n in names)
    context.stamp(_script_for(conn), newest)
    return {newest}


def _script_for(conn: sa.Connection):
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(conn))
