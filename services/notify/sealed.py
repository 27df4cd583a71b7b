"""Notify's encrypted columns, sealed and opened (see ``ENCRYPTED_COLUMNS`` in models.py).

Routes and workers use the runtime's cipher (``rt.cipher``); event handlers, which get only a
unit of work, use ``cipher_of(uow.settings)``: the same keys, built once per key set.
"""

from __future__ import annotations

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
