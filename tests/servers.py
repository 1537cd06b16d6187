"""Real servers for tests: a throwaway PostgreSQL cluster, nginx in front of app processes, the app itself.

Each helper is a context manager that starts the server as a child of the test process, waits
until it answers, yields where to reach it, and stops and removes everything afterwards:

    with postgres_cluster() as url:                  # postgresql://postgres@127.0.0.1:PORT/relay
        with app_processes(2, ["--model", str(tiny_model_dir), "--db", url]) as (a, b):
            with nginx_proxy([port_of(a), port_of(b)], tmp_path) as port:
                ...                                  # http://127.0.0.1:PORT/ reaches a or b, sticky per client

Nothing listens beyond 127.0.0.1 and nothing touches the machine's own PostgreSQL or nginx
(no systemd, no /etc, no /var/lib). When a program is not installed the helpers raise
`ServerUnavailable`; wrap fixtures in `skip_when_unavailable()` to turn that into a skip with the
reason, or into a failure when $RELAY_REQUIRE_SERVERS is set (.ci/run sets it, because there a
missing server means .ci/run is broken, and a silent skip would hide it).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from relay.backup import BackupError, find_postgres_tool

REPO = Path(__file__).resolve().parent.parent
NGINX_SITE = REPO / "deploy" / "nginx.conf"  # the shipped sample; tests run exactly its proxy settings


class ServerUnavailable(RuntimeError):
    """A program a server needs is not installed (or the `postgres` user is missing)."""


@contextmanager
def skip_when_unavailable() -> Iterator[None]:
    """Turn ServerUnavailable into pytest.skip (or pytest.fail when $RELAY_REQUIRE_SERVERS is set)."""
    try:
        yield
    except ServerUnavailable as exc:
        if os.environ.get("RELAY_REQUIRE_SERVERS", "").strip() not in ("", "0"):
            pytest.fail(f"{exc} (RELAY_REQUIRE_SERVERS is set: .ci/run should have installed it)", pytrace=False)
        pytest.skip(str(exc))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_of(url: str) -> int:
    """The port of an http://host:PORT/ URL."""
    return int(re.search(r":(\d+)(?:/|$)", url).group(1))


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on port {port} within {timeout:.0f} s:\n{_tail(log)}")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """Stop a child started with start_new_session=True: its whole process group, then SIGKILL if needed."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)
    except ProcessLookupError:
        pass


# --- PostgreSQL -----------------------------------------------------------------------------------


def _postgres_program(name: str) -> Path:
    try:
        return find_postgres_tool(name)
    except BackupError as exc:
        raise ServerUnavailable(f"PostgreSQL is not installed ({exc})") from None


def _run(cmd: Sequence[str | os.PathLike], what: str) -> str:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


@contextmanager
def postgres_cluster(tmpdir: str | os.PathLike | None = None, database: str = "relay", *, durable: bool = False,
                     max_connections: int = 300) -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1:<free port>; yields `postgresql://postgres@127.0.0.1:PORT/<database>`.

    initdb and pg_ctl come from /usr/lib/postgresql/*/bin (newest). PostgreSQL refuses to run as
    root, so as root the cluster belongs to the `postgres` user (created by Debian's package) and
    runs through `runuser -u postgres --`. Its folder is made under `tmpdir` (default: the system
    temp folder), which that user must be able to enter: pytest's tmp_path is not (it lives
    under a 0700 /tmp/pytest-of-root), so tests leave `tmpdir` alone. Authentication is `trust`
    for connections from this machine only; fsync is off unless `durable` (a throwaway cluster need
    not survive a power cut, and tests that kill processes kill clients, not the server; benchmarks
    pass durable=True to measure real commits). The server stops and the folder is removed on exit.
    """
    initdb, pg_ctl, createdb = (_postgres_program(n) for n in ("initdb", "pg_ctl", "createdb"))
    as_postgres: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise ServerUnavailable("PostgreSQL refuses to run as root and there is no `postgres` user "
                                    "(apt-get install postgresql creates it; .ci/run does this)") from None
        runuser = shutil.which("runuser")
        if not runuser:
            raise ServerUnavailable("runuser (util-linux) is needed to start PostgreSQL as the postgres user")
        as_postgres = [runuser, "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="relay-pg-", dir=tmpdir))
    data, log = root / "data", root / "server.log"
    started = False
    try:
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        _run([*as_postgres, initdb, "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
              "--no-locale", "--no-sync"], "initdb")
        port = free_port()
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} "
                   f"-c max_connections={max_connections}")
        if not durable:
            options += " -c fsync=off -c full_page_writes=off"
        try:
            _run([*as_postgres, pg_ctl, "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start"],
                 "pg_ctl start")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{_tail(log)}") from None
        started = True
        _run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database], "createdb")
        yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            # immediate: the data is thrown away, so skip the shutdown checkpoint.
            subprocess.run([*as_postgres, str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


def store_on_postgres(url: str):
    """StoryStore(url) on PostgreSQL, or pytest.skip while the store only understands SQLite files.

    A StoryStore that predates PostgreSQL support takes the URL for a file path and quietly
    creates a SQLite file under a folder named "postgresql:": the probe runs in a scratch working
    directory, so that is detected (and nothing lands in the repository).
    """
    from relay.story_store import StoryStore

    scratch = tempfile.mkdtemp(prefix="relay-probe-")
    cwd = os.getcwd()
    os.chdir(scratch)
    try:
        try:
            store = StoryStore(url)
        except Exception as exc:
            if os.listdir(scratch):
                pytest.skip(f"StoryStore does not accept a postgresql:// URL yet ({type(exc).__name__}: {exc})")
            raise
        if os.listdir(scratch):
            store.close()
            pytest.skip("StoryStore does not accept a postgresql:// URL yet: it made a SQLite file named after the URL")
        return store
    finally:
        os.chdir(cwd)
        shutil.rmtree(scratch, ignore_errors=True)


def psql(url: str, sql: str) -> str:
    """Run SQL through the `psql` client (no Python driver needed); returns its unaligned output."""
    program = _postgres_program("psql")
    return _run([program, "--no-psqlrc", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], "psql").strip()


def new_database(url: str, name: str) -> str:
    """Create database `name` on the server of `url` (e.g. one per test in a session's cluster); returns its URL."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"database names here are lowercase identifiers, got {name!r}")
    psql(url, f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name


# --- nginx ----------------------------------------------------------------------------------------

_NGINX_MAIN = """\
# Generated by tests/servers.py: nginx as a child of the test, everything under {prefix}.
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 1024; }}

http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp/client_body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/relay.conf;
}}
"""


def nginx_site(upstreams: Sequence[int], port: int, sample: Path = NGINX_SITE, upstream_header: bool = True) -> str:
    """deploy/nginx.conf with its app servers replaced by 127.0.0.1:<upstreams> and listening on 127.0.0.1:<port>.

    With `upstream_header`, every response says which app served it (`X-Relay-Upstream: 127.0.0.1:PORT`).
    """
    if not upstreams:
        raise ValueError("nginx needs at least one upstream port")
    text = sample.read_text()
    block = re.search(r"(upstream\s+relay_apps\s*\{)(.*?)(\n\})", text, re.S)
    server_lines = re.findall(r"^[ \t]*server\s+[^;\n]+;[^\n]*$", block.group(2), re.M)
    template = server_lines[0]
    body = block.group(2)
    for line in server_lines[1:]:
        body = body.replace(line + "\n", "", 1)
    ours = "\n".join(re.sub(r"\S+:\d+", f"127.0.0.1:{p}", template, count=1) for p in upstreams)
    body = body.replace(template, ours, 1)
    text = text[:block.start(2)] + body + text[block.end(2):]
    text, n = re.subn(r"^([ \t]*)listen\s+[^;]+;", rf"\g<1>listen 127.0.0.1:{port};", text, count=1, flags=re.M)
    assert n == 1, "deploy/nginx.conf has no listen line"
    if upstream_header:
        # Tests only (a public site should not reveal its internal addresses): which app answered.
        text, n = re.subn(r"^([ \t]*)location / \{\n", "\\g<0>\\g<1>    add_header X-Relay-Upstream $upstream_addr always;\n",
                          text, count=1, flags=re.M)
        assert n == 1, "deploy/nginx.conf has no `location / {` line"
    return text


@contextmanager
def nginx_proxy(upstreams: Sequence[int], tmpdir: str | os.PathLike) -> Iterator[int]:
    """Debian's nginx in front of the app processes on `upstreams` (ports), with deploy/nginx.conf's settings.

    Runs in the foreground (`daemon off`) as a child of the test, all its files under tmpdir;
    yields the port it listens on (127.0.0.1 only). Clients are kept on one upstream by the
    `relay_upstream` cookie the proxy sets (see deploy/nginx.conf for why not ip_hash). Every
    response carries `X-Relay-Upstream: 127.0.0.1:PORT`, the app that served it; see
    cookie_for_upstream() to put a client on the app of your choice.
    """
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if nginx is None:
        raise ServerUnavailable("nginx is not installed (apt-get install nginx; .ci/run does this)")
    prefix = Path(tempfile.mkdtemp(prefix="nginx-", dir=tmpdir))
    (prefix / "tmp").mkdir()
    port = free_port()
    (prefix / "relay.conf").write_text(nginx_site(upstreams, port))
    # As root the workers would switch to `nobody`, who cannot enter pytest's 0700 temp folders.
    user = "user root;" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(_NGINX_MAIN.format(prefix=prefix, user=user))
    log = prefix / "error.log"
    with open(prefix / "stderr.log", "wb") as out:
        proc = subprocess.Popen([nginx, "-p", str(prefix), "-e", str(log), "-c", str(prefix / "nginx.conf")],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        _wait_for_port(port, proc, 20, "nginx", log)
        yield port
    finally:
        # SIGTERM is nginx's fast shutdown; a graceful one (SIGQUIT) would wait for open event streams.
        _stop(proc, signal.SIGTERM)


def cookie_for_upstream(proxy_port: int, upstream_port: int, tries: int = 200) -> str:
    """A `relay_upstream` cookie value that the proxy on proxy_port routes to the app on upstream_port.

    Tries keys until the X-Relay-Upstream header names that app, so a test can decide which
    process serves a browser tab (context.add_cookies) instead of leaving it to the hash.
    """
    for i in range(tries):
        key = f"test-key-{i}"
        request = urllib.request.Request(f"http://127.0.0.1:{proxy_port}/gradio_api/info",
                                         headers={"Cookie": f"relay_upstream={key}"}, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                served_by = response.headers.get("X-Relay-Upstream", "")
        except urllib.error.HTTPError as exc:  # the header is there on errors too ("always")
            served_by = exc.headers.get("X-Relay-Upstream", "")
        if served_by.endswith(f":{upstream_port}"):
            return key
    raise RuntimeError(f"no cookie among {tries} routes to port {upstream_port}: is it one of the proxy's upstreams?")


# --- the app --------------------------------------------------------------------------------------


def wait_until_answering(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    """Poll GET url until it answers 200; raise with the log's tail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with status {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"the app did not answer {url} within {timeout:.0f} s:\n{_tail(log)}")


def _start_app(args: Sequence[str], port: int | None, env: dict | None, log: Path) -> tuple[subprocess.Popen, str]:
    port = port or free_port()
    cmd = [sys.executable, "app.py", *args, "--host", "127.0.0.1", "--port", str(port)]
    child_env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
                 "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=child_env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}/"


@contextmanager
def app_processes(count: int, args: Sequence[str] = ("--model", "tiny"), env: dict | None = None,
                  logs: str | os.PathLike | None = None, timeout: float = 240.0,
                  ports: Sequence[int] | None = None) -> Iterator[list[str]]:
    """`count` app processes started at once (see app_process); yields their URLs once all answer.

    Starting them together overlaps their imports. With `--model tiny` the tiny model must
    already be in its cache folder (start one process first), or they race to build it; tests
    pass `--model <tiny_model_dir>` instead. `logs`: a folder for app-N.log (default: a temp
    folder, removed after); `ports`: one per process (default: free ports).
    """
    own = logs is None
    folder = Path(tempfile.mkdtemp(prefix="relay-app-logs-")) if own else Path(logs)
    folder.mkdir(parents=True, exist_ok=True)
    started: list[tuple[subprocess.Popen, str, Path]] = []
    try:
        for i in range(count):
            log = folder / f"app-{i + 1}.log"
            started.append((*_start_app(args, ports[i] if ports else None, env, log), log))
        for proc, url, log in started:
            wait_until_answering(url, proc, timeout, log)
        yield [url for _, url, _ in started]
    finally:
        for proc, _, _ in started:
            _stop(proc)
        if own:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def app_process(args: Sequence[str] = ("--model", "tiny"), port: int | None = None, env: dict | None = None,
                logs: str | os.PathLike | None = None, timeout: float = 240.0) -> Iterator[str]:
    """`python app.py ARGS --host 127.0.0.1 --port PORT` as a child process; yields http://127.0.0.1:PORT/.

    Waits until `GET /` answers (raising with the log's tail if it dies or takes longer than
    `timeout`). `env` is added to this process's environment (e.g. RELAY_DB). The process and its
    process group are stopped on exit.
    """
    with app_processes(1, args, env, logs, timeout, ports=[port] if port else None) as (url,):
        yield url
