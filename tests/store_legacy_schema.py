"""The SQLite schema of Relay before Alembic (commit 9966435), copied verbatim, to test upgrades.

`m001_initial` and `m002_ai_turns_and_candidates` are the migration functions that code ran;
`build_legacy_database` makes a database exactly as that Relay left it.
"""

from __future__ import annotations

import sqlite3


def m001_initial(conn: sqlite3.Connection) -> None:
    """Stories and their paragraphs."""
    conn.execute(
        """CREATE TABLE stories (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            turn_rule TEXT NOT NULL CHECK (turn_rule IN ('alternate', 'free')),
            settings TEXT NOT NULL DEFAULT '{}',
            -- Not foreign keys: an imported fork keeps ids from the database it came from.
            forked_from_story INTEGER,
            forked_from_paragraph INTEGER,
            paragraph_count INTEGER NOT NULL DEFAULT 0,
            last_activity TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 0
        )"""
    )
    conn.execute(
        """CREATE TABLE paragraphs (
            id INTEGER PRIMARY KEY,
            story_id INTEGER NOT NULL REFERENCES stories (id),
            seq INTEGER NOT NULL CHECK (seq >= 1),
            author TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('human', 'ai')),
            text TEXT NOT NULL,
            created_at TEXT NOT NULL,
            edited INTEGER NOT NULL DEFAULT 0,
            meta TEXT NOT NULL DEFAULT '{}',
            deleted INTEGER NOT NULL DEFAULT 0
        )"""
    )
    # Undone paragraphs keep their seq, which the next paragraph then reuses: seq is unique
    # only among live paragraphs, and this index also serves head() and timeline().
    conn.execute("CREATE UNIQUE INDEX paragraphs_live_seq ON paragraphs (story_id, seq) WHERE deleted = 0")
    conn.execute("CREATE INDEX paragraphs_all_seq ON paragraphs (story_id, seq, id)")
    conn.execute("CREATE INDEX stories_by_activity ON stories (last_activity DESC, id DESC)")


def m002_ai_turns_and_candidates(conn: sqlite3.Connection) -> None:
    """The per-story AI-turn lease and server-generated candidate paragraphs."""
    conn.execute("ALTER TABLE stories ADD COLUMN ai_turn_holder TEXT")
    conn.execute("ALTER TABLE stories ADD COLUMN ai_turn_expires REAL")
    conn.execute(
        """CREATE TABLE candidates (
            id TEXT PRIMARY KEY,
            story_id INTEGER NOT NULL REFERENCES stories (id),
            author TEXT NOT NULL,
            text TEXT NOT NULL,
            meta TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            created_unix REAL NOT NULL,
            used INTEGER NOT NULL DEFAULT 0
        )"""
    )
    conn.execute("CREATE INDEX candidates_by_age ON candidates (created_unix)")


def build_legacy_database(path, *, migrations=(m001_initial, m002_ai_turns_and_candidates)) -> sqlite3.Connection:
    """A database as the old `migrate()` created it: `_migrations` plus the given steps; returns the connection."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for step in migrations:
        step(raw)
        raw.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, '2026-11-20T00:00:00+00:00')", (step.__name__,))
    return raw
