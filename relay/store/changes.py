"""The change feed: the global change token every write moves, and the ways to watch it.

Every write transaction calls `bump`, which advances the token in `change_counter` and stamps
the story's `change_seq` with it (and, on PostgreSQL, sends a NOTIFY delivered at commit).
Watchers read the token (`change_token`, through a `Poller`), ask which stories changed since
a token (`changed_stories`), or block until it moves (`wait_for_change`, which on PostgreSQL
sleeps on a `Listener`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from relay.store.errors import BUSY_MESSAGE, NotFound, StoreBusy, StoreUnavailable, db_error
from relay.store.schema import PG_CHANNEL, change_counter, libpq_url, stories

CHANGE_POLL_S = 0.25  # how often wait_for_change() looks at the change token on SQLite

# Built once: SQLAlchemy memoizes a built statement's cache key, so executing one costs little
# more than the driver call.
_NEXT_TOKEN = (
    change_counter.update().where(change_counter.c.id == 1)
    .values(value=change_counter.c.value + 1).returning(change_counter.c.value)
)
_STAMP_STORY = stories.update().where(stories.c.id == sa.bindparam("sid")).values(change_seq=sa.bindparam("token"))
_NOTIFY = sa.select(sa.func.pg_notify(PG_CHANNEL, sa.bindparam("token")))
_TOKEN_SQL = "SELECT value FROM change_counter WHERE id = 1"
_TOKEN_QUERY = sa.text(_TOKEN_SQL)
_VERSION_SQL = "SELECT version FROM stories WHERE id = ?"
_VERSION_QUERY = sa.text("SELECT version FROM stories WHERE id = :id")


def bump(conn: sa.Connection, story_id: int) -> int:
    """Advance the global change token and stamp the story with it (inside the write transaction).

    On PostgreSQL the row lock on the counter orders the tokens as the commits, and a NOTIFY,
    delivered at commit, wakes the watchers of every app process.
    """
    token = conn.execute(_NEXT_TOKEN).scalar_one()
    conn.execute(_STAMP_STORY, {"sid": story_id, "token": token})
    if conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY, {"token": str(token)})
    return token


def change_token(poller: Poller) -> int:
    return poller.rows(_TOKEN_SQL, _TOKEN_QUERY, {})[0][0]


def story_version(poller: Poller, story_id: int) -> int:
    rows = poller.rows(_VERSION_SQL, _VERSION_QUERY, {"id": story_id})
    if not rows:
        raise NotFound(f"There is no story number {story_id}.")
    return rows[0][0]


def changed_stories(conn: sa.Connection, since: int) -> tuple[int, list[int]]:
    token = conn.execute(_TOKEN_QUERY).scalar_one()
    ids = conn.execute(
        sa.select(stories.c.id).where(stories.c.change_seq > since).order_by(stories.c.id)
    ).scalars().all()
    return token, list(ids)


def wait_for_change(poller: Poller, listener: Listener | None, since: int, timeout: float) -> int:
    """Return the token once it passes `since`, or when `timeout` seconds (at most an hour) have gone.

    Without a listener (SQLite) it polls every CHANGE_POLL_S; with one it sleeps until a NOTIFY.
    """
    deadline = time.monotonic() + min(float(timeout), 3600.0)
    conn = listener.connection() if listener is not None else None
    while True:
        token = change_token(poller)
        left = deadline - time.monotonic()
        if token > since or left <= 0:
            return token
        if conn is None:
            time.sleep(min(CHANGE_POLL_S, left))
            continue
        try:
            # Any notification means "look again"; the token read above decides.
            for _ in conn.notifies(timeout=min(left, 5.0), stop_after=1):
                pass
        except Exception as exc:  # a dropped listener: open a new one next time
            listener.forget()
            raise StoreUnavailable(f"Lost the connection to the database while waiting for changes: {exc}") from exc


class Poller:
    """Single-row reads that watchers repeat many times a second (a story's version, the change token).

    On SQLite each runs on a DBAPI connection its thread keeps (from the store's engine, with
    the same settings) in autocommit mode: one statement, its own snapshot, a few microseconds
    instead of a pooled transaction's tens. On PostgreSQL it is one autocommit statement on a
    pooled connection: one round trip, no BEGIN/COMMIT around it.
    """

    def __init__(self, engine: sa.Engine):
        self._engine = engine
        self._local = threading.local()
        self._conns: list = []  # (thread, DBAPI connection) of every thread that polled
        self._lock = threading.Lock()

    def rows(self, sqlite_sql: str, query: sa.TextClause, params: dict) -> list:
        """The rows of `query` (on SQLite, of `sqlite_sql` with `params` in order)."""
        if self._engine.dialect.name != "sqlite":
            return self._pooled_rows(query, params)
        conn = self._thread_connection()
        try:
            # fetchall(): run the statement to its end, so it holds no read snapshot afterwards.
            return conn.cursor().execute(sqlite_sql, tuple(params.values())).fetchall()
        except sqlite3.Error as exc:
            raise db_error(exc) from exc

    def _pooled_rows(self, query: sa.TextClause, params: dict) -> list:
        try:
            with self._engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                return conn.execute(query, params).fetchall()
        except sa_exc.DBAPIError as exc:
            raise db_error(exc) from exc
        except sa_exc.TimeoutError:
            raise StoreBusy(BUSY_MESSAGE) from None

    def _thread_connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = self._engine.raw_connection()
            self._local.conn, self._local.pid = conn, os.getpid()
            with self._lock:
                # Give back the connections of threads that have ended (a server's worker threads come and go).
                alive = []
                for thread, other in self._conns:
                    if thread.is_alive():
                        alive.append((thread, other))
                    else:
                        other.close()
                self._conns = [*alive, (threading.current_thread(), conn)]
        return conn

    def close(self) -> None:
        with self._lock:
            for _, conn in self._conns:
                conn.close()
            self._conns = []
            self._local = threading.local()


class Listener:
    """PostgreSQL connections that LISTEN on the change channel: one per thread that waits."""

    def __init__(self, url: str):
        self._url = url
        self._local = threading.local()
        self._conns: list = []
        self._lock = threading.Lock()

    def connection(self):
        """This thread's listening connection, opened (and LISTENing) on first use or after a drop."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or getattr(self._local, "pid", None) != os.getpid():
            import psycopg

            try:
                conn = psycopg.connect(libpq_url(self._url), autocommit=True, connect_timeout=10)
                conn.execute(f"LISTEN {PG_CHANNEL}")
            except psycopg.Error as exc:
                raise StoreUnavailable(f"Could not reach the database to watch for changes: {exc}") from exc
            self._local.conn, self._local.pid = conn, os.getpid()
            with self._lock:
                self._conns.append(conn)
        return conn

    def forget(self) -> None:
        """Drop this thread's connection (it broke): the next wait opens a new one."""
        self._local.conn = None

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                try:
                    conn.close()
                except Exception:  # closing a broken listener must not stop closing the rest
                    pass
            self._conns = []
            self._local = threading.local()
