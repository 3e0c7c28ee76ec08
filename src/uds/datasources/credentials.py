"""Data source credentials at rest: AES-256-GCM with keys from UDS_SECRET_KEYS.

Key format: each key is 32 random bytes in URL-safe base64 (43 characters, padding
optional); `uds secrets generate` prints one. `UDS_SECRET_KEYS` lists keys newest first,
comma-separated. New secrets are sealed with the first key; any listed key opens what it
sealed, so rotating is: put a new key in front, restart, run `uds secrets rotate`, then
drop the old key.

Sealed form: `v1.<kid>.<base64url(nonce || ciphertext || tag)>`. The key id (`kid`, the
first 8 hex digits of SHA-256 over the key) picks the key directly and shows which rows
still use an old one. The associated data binds a ciphertext to its tenant and data
source, so a value copied into another row or another tenant's schema does not open.

Why AES-GCM rather than MultiFernet: the associated data (Fernet has none), an explicit
key id instead of trying every key in turn, and 256-bit keys; rotation is as simple.

Dev mode without keys uses `$UDS_DATA_DIR/keys/secrets.key` (created 0600 on first use,
and announced in the log); prod mode without keys refuses to start.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from uds.errors import ConfigError, UdsError

log = logging.getLogger(__name__)

VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
DEV_KEY_FILE = "secrets.key"


class CredentialError(UdsError):
    """A stored credential cannot be opened (unknown key id, or tampered with)."""


def generate_key() -> str:
    """A new key in the UDS_SECRET_KEYS format."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"uds-secret-key:" + key).hexdigest()[:8]


def _decode_key(text: str, position: int) -> bytes:
    raw = text.strip()
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"UDS_SECRET_KEYS: key #{position} is not {KEY_BYTES} bytes of URL-safe base64 "
            "(make one with `uds secrets generate`)"
        )
    return key


class CredentialCipher:
    """Seals and opens credentials; the first key seals, every key opens."""

    def __init__(self, keys: Sequence[bytes], *, source: str = "UDS_SECRET_KEYS") -> None:
        if not keys:
            raise ConfigError("no credential encryption key")
        self._sealing = keys[0]
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self.source = source

    @classmethod
    def from_texts(cls, texts: Sequence[str], *, source: str = "UDS_SECRET_KEYS") -> CredentialCipher:
        return cls([_decode_key(t, i + 1) for i, t in enumerate(texts)], source=source)

    @property
    def current_kid(self) -> str:
        return key_id(self._sealing)

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def seal(self, plaintext: str, *, context: str) -> str:
        """Encrypt `plaintext` with the newest key, bound to `context` (tenant and row)."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._keys[self.current_kid].encrypt(nonce, plaintext.encode(), context.encode())
        blob = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{VERSION}.{self.current_kid}.{blob}"

    def open(self, token: str, *, context: str) -> str:
        """Decrypt a sealed value made for `context`; CredentialError if it cannot be."""
        _, kid, blob = _split(token)
        aead = self._keys.get(kid)
        if aead is None:
            raise CredentialError(
                f"the credential was sealed with key {kid}, which is not in {self.source} "
                f"(configured: {', '.join(self.kids)})"
            )
        try:
            raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise CredentialError(
                "the stored credential does not open with its key (altered or moved)"
            ) from None

    def needs_rotation(self, token: str) -> bool:
        return _split(token)[1] != self.current_kid

    def rotate(self, token: str, *, context: str) -> str:
        """The same secret sealed with the newest key."""
        return self.seal(self.open(token, context=context), context=context)


def _split(token: str) -> tuple[str, str, str]:
    version, _, rest = token.partition(".")
    kid, _, blob = rest.partition(".")
    if version != VERSION or not kid or not blob:
        raise CredentialError("the stored credential is not in a format UDS knows")
    return version, kid, blob


def load_cipher(settings: object) -> CredentialCipher:
    """The cipher for these settings: UDS_SECRET_KEYS, else (dev only) the dev key file.

    Raises ConfigError in prod mode without keys, and for a malformed key.
    """
    texts = tuple(getattr(settings, "secret_keys", ()) or ())
    if texts:
        return CredentialCipher.from_texts(texts)
    if getattr(settings, "mode", "dev") != "dev":
        raise ConfigError(
            "UDS_SECRET_KEYS is required in prod mode (credential encryption keys, newest first; "
            "make one with `uds secrets generate`)"
        )
    data_dir = Path(getattr(settings, "data_dir", Path(".uds")))
    path = data_dir / "keys" / DEV_KEY_FILE
    created = _ensure_dev_key(path)
    if created:
        log.warning("UDS_SECRET_KEYS is not set: created dev credential key %s (dev mode only)", path)
    else:
        log.info("UDS_SECRET_KEYS is not set: using dev credential key %s (dev mode only)", path)
    return CredentialCipher.from_texts([path.read_text(encoding="ascii").strip()], source=str(path))


def _ensure_dev_key(path: Path) -> bool:
    """Create the key file (0600) unless it exists; True if this call created it.

    Written to a temporary file and hard-linked into place, so a concurrent reader sees
    either no file or a complete key, and two racing creators agree on one key.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        if path.exists():
            return False
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(generate_key() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot create dev credential key {path}: {exc}") from None
    return True
