"""Field encryption (AES-256-GCM with a key id, for rotation) and keyed blind indexes.

A resident ID number is stored only as ciphertext plus an HMAC-SHA256 blind index, so the
database alone reveals neither, and lookups by ID number go through the index.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_SEP = "."


class DecryptError(Exception):
    """A stored value that no configured key and context opens (the message names no value)."""


class FieldCipher:
    """Ciphertext format: ``<kid>.<base64(nonce || ciphertext+tag)>``."""

    def __init__(self, keys: str, blind_index_key: str) -> None:
        self._keys: dict[str, AESGCM] = {}
        self.active_kid = ""
        for pair in filter(None, (p.strip() for p in keys.split(","))):
            kid, _, b64 = pair.partition(":")
            raw = base64.b64decode(b64)
            if len(raw) != 32 or not kid or _SEP in kid:
                raise ValueError(f"data key {kid!r}: need 'kid:<base64 of 32 bytes>'")
            if kid in self._keys:
                raise ValueError(f"data key id {kid!r} is listed twice")
            self._keys[kid] = AESGCM(raw)
            self.active_kid = self.active_kid or kid
        if not self._keys:
            raise ValueError("no data keys configured")
        self._index_key = base64.b64decode(blind_index_key)
        if len(self._index_key) < 16:
            raise ValueError("blind index key too short")

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """``context`` (e.g. table.column) is bound as associated data: no swapping columns."""
        nonce = os.urandom(12)
        ct = self._keys[self.active_kid].encrypt(nonce, plaintext.encode(), context.encode())
        return f"{self.active_kid}{_SEP}{base64.b64encode(nonce + ct).decode()}"

    def decrypt(self, token: str, *, context: str) -> str:
        kid, _, b64 = token.partition(_SEP)
        raw = base64.b64decode(b64)
        return self._keys[kid].decrypt(raw[:12], raw[12:], context.encode()).decode()

    def decrypt_any(self, token: str, *, contexts: Sequence[str]) -> tuple[str, str]:
        """The plaintext and the first of ``contexts`` it decrypts under: a column's current
        context first, then those its values were once written with. Raises ``DecryptError``
        when none of them (or no configured key) opens it."""
        for context in contexts:
            try:
                return self.decrypt(token, context=context), context
            except InvalidTag:
                continue
            except (KeyError, ValueError) as e:  # unknown key id, not base64, too short
                raise DecryptError(f"no configured key opens this value: {type(e).__name__}") from e
        raise DecryptError("the value decrypts under none of its column's contexts")

    def key_id(self, token: str) -> str:
        return token.partition(_SEP)[0]

    def blind_index(self, value: str, *, context: str) -> str:
        """Deterministic keyed digest for equality lookups; the context keeps indexes apart."""
        mac = hmac.new(self._index_key, f"{context}\x00{value}".encode(), hashlib.sha256)
        return mac.hexdigest()


# A resident's phone inside registry's person events (notify needs it to send SMS): sealed with
# the data keys every service shares, so the outbox rows and the NATS streams' files keep no
# phone in clear. An old key must stay listed while events it sealed can still be redelivered
# (LINGJU_STREAM_MAX_AGE_DAYS).
EVENT_PHONE_CONTEXT = "events.person.phone"


@dataclass(frozen=True)
class EncryptedColumn:
    """A column holding ``FieldCipher`` ciphertext, declared by the service that owns the table
    (``ENCRYPTED_COLUMNS`` in its ``models.py``) so key rotation finds every one of them:
    ``lingju reencrypt`` (shared/rotation.py) rewrites values still under an old key id, or
    under one of ``previous_contexts``, with the active key and ``context``."""

    table: str
    column: str
    context: str  # the associated data the values are encrypted with
    key: str = "id"  # the table's primary key column, to update row by row in batches
    # Associated data the column's values were once written with and are still read under
    # (``FieldCipher.decrypt_any``) until the rotation rewrites them with ``context``.
    previous_contexts: tuple[str, ...] = ()

    @property
    def contexts(self) -> tuple[str, ...]:
        """Every context a stored value may be under, the current one first."""
        return (self.context, *self.previous_contexts)


def mask_id_number(id_number: str) -> str:
    """``330102********1234``: region kept, birth date and sequence hidden."""
    if len(id_number) < 10:
        return "*" * len(id_number)
    return id_number[:6] + "*" * (len(id_number) - 10) + id_number[-4:]


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 11 else "*" * len(phone)
