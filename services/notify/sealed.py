"""Notify's encrypted columns, sealed and opened (see ``ENCRYPTED_COLUMNS`` in models.py).

Routes and workers use the runtime's cipher (``rt.cipher``); event handlers, which get only a
unit of work, use ``cipher_of(uow.settings)``: the same keys, built once per key set.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from shared.config import Settings
from shared.crypto import FieldCipher


@lru_cache(maxsize=4)
def _cipher(data_keys: str, blind_index_key: str) -> FieldCipher:
    return FieldCipher(data_keys, blind_index_key)


def cipher_of(settings: Settings) -> FieldCipher:
    return _cipher(settings.data_keys, settings.blind_index_key)


def seal(cipher: FieldCipher, value: str | None, context: str) -> str | None:
    """The ciphertext of ``value``; None (or empty) stays None: nothing to hide."""
    return cipher.encrypt(value, context=context) if value else None


def unseal(cipher: FieldCipher, token: str | None, context: str) -> str | None:
    return cipher.decrypt(token, context=context) if token else None


def secrets_in_force(
    cipher: FieldCipher,
    current: tuple[str | None, str],
    previous: tuple[str | None, str],
    previous_until: datetime | None,
    now: datetime,
) -> tuple[str, ...]:
    """The secrets a webhook is signed with at ``now`` (each given as (sealed value, context)):
    the current one, and the one before while a rotation's grace lasts (the receiver may not
    have switched yet). Staff webhooks and event-feed subscriptions rotate alike."""
    secret = unseal(cipher, *current)
    if secret is None:
        return ()
    if previous_until is not None and now < previous_until:
        before = unseal(cipher, *previous)
        if before:
            return (secret, before)
    return (secret,)
