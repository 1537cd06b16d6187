"""Who a writer is: a signed-in Hugging Face account becomes a stable writer key, derived on the server.

A browser normally gets a random writer key from the store (`store.new_writer_key()`, kept in
`gr.BrowserState`). On a Space with `hf_oauth`, a signed-in account is the identity instead:

    name, key = identity_from_profile(profile)      # profile: gr.OAuthProfile from a handler argument

`key` is HMAC-SHA256(server secret, "hf:" + username), so the same account gets the same key on
every device and after restarts, nobody can compute it without the secret, and it has the shape the
store expects for writer keys. The secret comes from $RELAY_SECRET, else from the file
`relay-secret` beside the database (created once, mode 0600). Changing the secret gives every
signed-in account a new key (their names stay bound to the old key in stories they wrote in).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

SECRET_ENV = "RELAY_SECRET"
SECRET_FILE = "relay-secret"  # beside the database file
MAX_NAME_CHARS = 40  # the store's limit on a writer name


class IdentityError(Exception):
    """The server secret cannot be read or created; the message says where and what to do."""


def server_secret(data_dir: str | os.PathLike | None = None) -> bytes:
    """The server's secret: $RELAY_SECRET, else `data_dir/relay-secret` (created on first use)."""
    value = os.environ.get(SECRET_ENV)
    if value:
        return value.encode("utf-8")
    if data_dir is None:
        from relay.story_store import default_db_path

        data_dir = default_db_path().parent
    path = Path(data_dir) / SECRET_FILE
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
        secret = path.read_text(encoding="utf-8").strip()
    except FileExistsError:  # another process created it between our check and our open
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise IdentityError(f"Cannot read or create the server secret {path}: {e.strerror or e}. "
                            f"Set {SECRET_ENV} or make the folder writable.") from None
    if not secret:
        raise IdentityError(f"The server secret file {path} is empty: delete it (a new one is made) or set {SECRET_ENV}.")
    return secret.encode("utf-8")


def account_writer_key(username: str, secret: bytes) -> str:
    """The writer key of a Hugging Face account: URL-safe HMAC of its username (43 characters)."""
    digest = hmac.new(secret, f"hf:{username}".encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def identity_from_profile(profile, secret: bytes | None = None) -> tuple[str, str] | None:
    """(display name, writer key) of a signed-in account (gr.OAuthProfile), or None when nobody is signed in."""
    username = getattr(profile, "username", None) if profile is not None else None
    if not username:
        return None
    name = (getattr(profile, "name", None) or username).strip()[:MAX_NAME_CHARS] or username[:MAX_NAME_CHARS]
    return name, account_writer_key(username, secret if secret is not None else server_secret())
