"""Online backups of the story database, and restoring them.

    python -m relay.backup OUT [--db DB] [--force]              # take a backup while the app runs
    python -m relay.backup --restore IN [--db DB] [--force]     # put a backup back

DB is what the app uses (`--db`, else $RELAY_DB, else ./relay-data/relay.db): a SQLite file or a
`postgresql://` URL.

- SQLite: SQLite's online backup API copies one consistent snapshot of the database while the app
  keeps writing (in WAL mode readers never block writers, and the copy is taken in one step, so it
  is never a mix of before and after a write). OUT is a plain single-file SQLite database: open it
  with `sqlite3` or point `--db` at it. Restoring also goes through the backup API, never a file
  copy, because copying over a database whose `-wal` file still holds pages corrupts it.
- PostgreSQL: `pg_dump --format=custom` (one transaction snapshot, so also consistent while the
  app writes) and `pg_restore --clean --if-exists --single-transaction` (all or nothing). The
  client tools come from Debian's `postgresql-client` (/usr/lib/postgresql/*/bin, newest first,
  then PATH); they must be at least as new as the server.

Exit status: 0 done; 2 with a one-line message for bad arguments, a missing tool, a database that
cannot be reached or a restore that would overwrite data without --force; 1 when the copy itself
failed (the message says why). OUT is written to a temporary file beside it and renamed only when
complete, so a failed or interrupted backup never leaves a truncated file under OUT's name.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

DEFAULT_DB = Path("relay-data") / "relay.db"  # the app's default (app.py --db / relay.story_store)
SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"  # first bytes of a pg_dump --format=custom archive
PG_TIMEOUT_S = 3600.0  # a dump or restore that takes longer than an hour is stuck, not slow
_PG_URL = re.compile(r"^postgres(?:ql)?(?:\+\w+)?://", re.IGNORECASE)


class BackupError(Exception):
    """The backup or restore could not be done; the message says what to do."""


class UsageError(BackupError):
    """Bad arguments, a missing tool, an unreachable database or a refused overwrite (exit status 2)."""


# --- what the database is -------------------------------------------------------------------------


def is_postgres_url(db: str) -> bool:
    """True for `postgresql://…` (also `postgres://` and SQLAlchemy's `postgresql+psycopg://`)."""
    return bool(_PG_URL.match(db))


def libpq_url(url: str) -> str:
    """The URL as libpq tools accept it: SQLAlchemy's `+driver` suffix removed."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if "+" in scheme or scheme.lower() == "postgres" else url


def redact(url: str) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def resolve_db(db: str | None) -> str:
    """`--db`, else $RELAY_DB, else the app's default file (the same order as app.py)."""
    if db and db.strip():
        return db.strip()
    env = os.environ.get("RELAY_DB", "").strip()
    return env or str(DEFAULT_DB)


def find_postgres_tool(name: str) -> Path:
    """A PostgreSQL program (pg_dump, initdb, …): Debian's newest /usr/lib/postgresql/N/bin, then PATH.

    Debian keeps server programs (initdb, pg_ctl, postgres) only in the versioned folder, and
    /usr/bin/pg_dump is a wrapper that picks a version; going to the newest folder directly makes
    the choice explicit (pg_dump refuses servers newer than itself).
    """
    def version(folder: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", Path(folder).parent.name)) or (0,)

    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        candidate = Path(folder) / name
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise UsageError(f"{name} is not installed: on Debian run `apt-get install postgresql` "
                     f"(or postgresql-client for pg_dump/pg_restore only).")


# --- SQLite ---------------------------------------------------------------------------------------


def _read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection (a URI, so that `?` or `#` in a file name stays part of the name)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)


def _sqlite_file_kind(path: Path) -> str:
    """"missing", "empty" (zero bytes), "sqlite", or "other" (a folder or another kind of file)."""
    if not path.exists():
        return "missing"
    if path.is_dir():
        return "other"
    with open(path, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if not head:
        return "empty"
    if head != SQLITE_MAGIC:
        return "other"
    return "sqlite"


def _sqlite_has_tables(path: Path) -> bool:
    conn = _read_only(path)
    try:
        return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] > 0
    finally:
        conn.close()


def _check_integrity(conn: sqlite3.Connection, what: str) -> None:
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    if rows != ["ok"]:
        raise BackupError(f"{what} failed SQLite's integrity check: {'; '.join(rows[:3])}")


def backup_sqlite(db: Path, out: Path) -> None:
    """Copy a live SQLite database to `out` in one consistent step, checked and fsynced."""
    if _sqlite_file_kind(db) != "sqlite":
        raise UsageError(f"{db} is not a SQLite database (or does not exist): check --db / RELAY_DB.")
    tmp = _temp_beside(out)
    try:
        # Read-only URI: the backup never writes to the live database, not even by creating it.
        src = _read_only(db)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)  # pages=-1: the whole database under one read transaction, so one snapshot
            # A backup is one self-contained file: no -wal beside it. (StoryStore turns WAL back on.)
            dst.execute("PRAGMA journal_mode = DELETE")
            _check_integrity(dst, "The backup")
        finally:
            dst.close()
            src.close()
        _fsync(tmp)
        # A -wal beside an OUT being replaced belongs to the old file; SQLite would replay it into
        # the new one on the next open.
        for stale in (Path(f"{out}-wal"), Path(f"{out}-shm")):
            stale.unlink(missing_ok=True)
        os.replace(tmp, out)
        _fsync_dir(out.parent)
    except sqlite3.Error as exc:
        raise BackupError(f"Could not back up {db}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def restore_sqlite(backup: Path, db: Path, force: bool = False) -> None:
    """Replace the database at `db` by the backup's content (refuses a non-empty `db` unless `force`)."""
    if _sqlite_file_kind(backup) != "sqlite":
        hint = " (it looks like a pg_dump archive: restore it with a postgresql:// --db)" if _is_pg_dump(backup) else ""
        raise UsageError(f"{backup} is not a SQLite backup{hint}.")
    kind = _sqlite_file_kind(db)
    if kind == "other":
        raise UsageError(f"{db} exists and is not a SQLite database: refusing to overwrite it.")
    if kind == "sqlite" and _sqlite_has_tables(db) and not force:
        raise UsageError(f"{db} already holds a database: stop the app and pass --force to replace it.")
    wal = Path(f"{db}-wal")
    if kind in ("missing", "empty") and wal.exists() and wal.stat().st_size > 0:
        raise UsageError(f"{wal} is left over from a deleted database; remove it (and {db}-shm) first.")
    try:
        src = _read_only(backup)
        try:
            _check_integrity(src, f"{backup}")
        finally:
            src.close()
        db.parent.mkdir(parents=True, exist_ok=True)
        src = _read_only(backup)
        dst = sqlite3.connect(db, timeout=30)
        try:
            # Through the backup API rather than a file copy: it replaces the pages under SQLite's
            # own locks and accounts for the target's -wal file, which a copied-over file would not.
            src.backup(dst)
            _check_integrity(dst, f"The restored {db}")
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"Could not restore {backup} into {db}: {exc}") from exc


# --- PostgreSQL -----------------------------------------------------------------------------------


def _run_pg(tool: str, args: list[str], url: str) -> None:
    """Run a PostgreSQL client program; a connection failure is a UsageError, anything else a BackupError."""
    program = find_postgres_tool(tool)
    # A password in the URL goes to the tool through PGPASSWORD, not its command line (which
    # every user of the machine can read in `ps`).
    env = dict(os.environ)
    parts = urlsplit(url)
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        bare = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", "@", 1)))
        args = [a.replace(url, bare) for a in args]
    try:
        result = subprocess.run([str(program), *args], capture_output=True, text=True, timeout=PG_TIMEOUT_S,
                                stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{tool} did not finish within {PG_TIMEOUT_S:.0f} s.") from exc
    if result.returncode == 0:
        return
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    first = lines[0] if lines else f"exit status {result.returncode}"
    first = first.replace(url, redact(url))
    # libpq's own words for "never got a session": refused, unknown host, bad login, no such database.
    if any(re.search(r"connection to server|could not connect|could not translate host|FATAL:", line)
           for line in lines[:3]):
        raise UsageError(f"Cannot reach the database {redact(url)}: {first}")
    raise BackupError(f"{tool} failed: {' | '.join(lines[:5]).replace(url, redact(url))}")


def backup_postgres(url: str, out: Path) -> None:
    """`pg_dump --format=custom` of the database at `url` into `out` (one consistent snapshot)."""
    url = libpq_url(url)
    tmp = _temp_beside(out)
    try:
        _run_pg("pg_dump", ["--format=custom", "--no-owner", "--no-privileges", f"--file={tmp}", f"--dbname={url}"],
                url)
        _fsync(tmp)
        os.replace(tmp, out)
        _fsync_dir(out.parent)
    finally:
        tmp.unlink(missing_ok=True)


def restore_postgres(backup: Path, url: str) -> None:
    """`pg_restore --clean --if-exists` into the database at `url`, in one transaction."""
    if not _is_pg_dump(backup):
        hint = " (it is a SQLite backup: restore it with a file --db)" if _sqlite_file_kind(backup) == "sqlite" else ""
        raise UsageError(f"{backup} is not a pg_dump --format=custom archive{hint}.")
    url = libpq_url(url)
    _run_pg("pg_restore", ["--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
                           "--exit-on-error", f"--dbname={url}", str(backup)], url)


# --- files ----------------------------------------------------------------------------------------


def _is_pg_dump(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(PG_DUMP_MAGIC)) == PG_DUMP_MAGIC


def _temp_beside(out: Path) -> Path:
    """A fresh temporary file name in OUT's folder, so the final rename is atomic."""
    if not out.parent.is_dir():
        raise UsageError(f"The folder {out.parent} does not exist: create it or choose another OUT.")
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(fd)
    os.unlink(name)  # sqlite3 and pg_dump create the file themselves
    return Path(name)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- command line ---------------------------------------------------------------------------------


def backup(out: str | os.PathLike, db: str | None = None, force: bool = False) -> None:
    """Back up `db` (path or postgresql:// URL; default as the app) to the file `out`."""
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"{out} is a folder: give a file name, e.g. {out / 'relay-backup.db'}.")
    if out.exists() and not force:
        raise UsageError(f"{out} already exists: choose a new name or pass --force to replace it.")
    source = resolve_db(db)
    if is_postgres_url(source):
        backup_postgres(source, out)
    else:
        source_path = Path(source)
        if source_path.resolve() == out.resolve():
            raise UsageError("OUT is the database itself: choose another file.")
        backup_sqlite(source_path, out)


def restore(backup_file: str | os.PathLike, db: str | None = None, force: bool = False) -> None:
    """Restore the file `backup_file` into `db` (path or postgresql:// URL; default as the app)."""
    backup_file = Path(backup_file)
    if not backup_file.is_file():
        raise UsageError(f"There is no backup file {backup_file}.")
    target = resolve_db(db)
    if is_postgres_url(target):
        restore_postgres(backup_file, target)
    else:
        restore_sqlite(backup_file, Path(target), force=force)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m relay.backup",
        description="Back up the Relay story database while the app runs, or restore a backup.",
        epilog="DB is a SQLite file or a postgresql:// URL (default: $RELAY_DB, else ./relay-data/relay.db).",
    )
    parser.add_argument("file", metavar="OUT|IN", help="the backup file to write (or, with --restore, to read)")
    parser.add_argument("--restore", action="store_true", help="restore FILE into DB instead of backing DB up")
    parser.add_argument("--db", default=None, help="the database (env RELAY_DB)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing OUT, or restore over a SQLite database that holds data")
    args = parser.parse_args(argv)
    try:
        if args.restore:
            restore(args.file, args.db, force=args.force)
            print(f"restored {args.file} into {redact(resolve_db(args.db))}")
        else:
            backup(args.file, args.db, force=args.force)
            print(f"backed up {redact(resolve_db(args.db))} to {args.file}")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
