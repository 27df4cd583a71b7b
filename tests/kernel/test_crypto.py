"""Field encryption with key rotation, keyed blind indexes, and masking of personal data."""

from __future__ import annotations

import base64

import pytest
from cryptography.exceptions import InvalidTag

from shared.crypto import FieldCipher, mask_id_number, mask_phone

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(100, 132))).decode()
INDEX_KEY = base64.b64encode(b"blind-index-key-for-tests-0123456").decode()
OTHER_INDEX_KEY = base64.b64encode(b"another-blind-index-key-for-tests").decode()
ID_NUMBER = "11010519491231002X"
CTX = "persons.id_number"


def cipher(keys: str = f"k1:{KEY_A}", index_key: str = INDEX_KEY) -> FieldCipher:
    return FieldCipher(keys, index_key)


@pytest.mark.parametrize("plaintext", [ID_NUMBER, "张三", ""])
def test_round_trip(plaintext: str) -> None:
    """What is encrypted decrypts to the same text, Chinese and empty included."""
    c = cipher()
    assert c.decrypt(c.encrypt(plaintext, context=CTX), context=CTX) == plaintext


def test_ciphertext_hides_the_value_and_differs_each_time() -> None:
    """A fresh nonce each time: equal values give unequal ciphertexts, neither showing it."""
    c = cipher()
    first, second = c.encrypt(ID_NUMBER, context=CTX), c.encrypt(ID_NUMBER, context=CTX)
    assert first != second
    assert ID_NUMBER not in first
    assert first.startswith("k1.")
    assert c.key_id(first) == "k1"


def test_context_is_bound() -> None:
    """A ciphertext copied into another column does not decrypt there."""
    c = cipher()
    token = c.encrypt(ID_NUMBER, context=CTX)
    with pytest.raises(InvalidTag):
        c.decrypt(token, context="persons.phone")


def test_tampered_ciphertext_is_refused() -> None:
    """Changing one byte of the ciphertext makes decryption fail."""
    c = cipher()
    kid, _, b64 = c.encrypt(ID_NUMBER, context=CTX).partition(".")
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    with pytest.raises(InvalidTag):
        c.decrypt(f"{kid}.{base64.b64encode(bytes(raw)).decode()}", context=CTX)


def test_another_key_cannot_decrypt() -> None:
    """A ring holding a different key under the same id cannot read the value."""
    token = cipher(f"k1:{KEY_A}").encrypt(ID_NUMBER, context=CTX)
    with pytest.raises(InvalidTag):
        cipher(f"k1:{KEY_B}").decrypt(token, context=CTX)


def test_key_rotation_reads_old_values_and_writes_with_the_new_key() -> None:
    """With the new key first in the ring, old values still decrypt; new ones use the new key."""
    old = cipher(f"k1:{KEY_A}")
    old_token = old.encrypt(ID_NUMBER, context=CTX)
    rotated = cipher(f"k2:{KEY_B},k1:{KEY_A}")
    assert rotated.active_kid == "k2"
    assert rotated.decrypt(old_token, context=CTX) == ID_NUMBER
    new_token = rotated.encrypt(ID_NUMBER, context=CTX)
    assert rotated.key_id(new_token) == "k2"
    assert rotated.decrypt(new_token, context=CTX) == ID_NUMBER


def test_value_under_a_retired_key_id_is_unreadable() -> None:
    """After the old key leaves the ring, its values can no longer be decrypted."""
    token = cipher(f"k1:{KEY_A}").encrypt(ID_NUMBER, context=CTX)
    with pytest.raises(KeyError):
        cipher(f"k2:{KEY_B}").decrypt(token, context=CTX)


def test_spaces_and_empty_entries_in_the_key_list_are_tolerated() -> None:
    """``" k2:..., k1:..., "`` is read as two keys, the first one active."""
    c = cipher(f" k2:{KEY_B} , k1:{KEY_A} , ")
    assert c.active_kid == "k2"
    token = cipher(f"k1:{KEY_A}").encrypt("x", context=CTX)
    assert c.decrypt(token, context=CTX) == "x"


@pytest.mark.parametrize(
    "keys",
    [
        "",
        " , ",
        f"k1:{base64.b64encode(bytes(16)).decode()}",
        f"k1:{base64.b64encode(bytes(33)).decode()}",
        f":{KEY_A}",
        f"k.1:{KEY_A}",
        KEY_A,
        "k1:not-base64!!",
    ],
    ids=[
        "empty",
        "only-separators",
        "16-byte-key",
        "33-byte-key",
        "no-kid",
        "dot-in-kid",
        "no-colon",
        "not-base64",
    ],
)
def test_bad_data_key_configuration_is_refused(keys: str) -> None:
    """Every data key needs ``kid:<base64 of 32 bytes>``, with a kid free of dots."""
    with pytest.raises(ValueError):
        FieldCipher(keys, INDEX_KEY)


def test_short_blind_index_key_is_refused() -> None:
    """The blind index key must have at least 16 bytes."""
    with pytest.raises(ValueError, match="blind index key too short"):
        FieldCipher(f"k1:{KEY_A}", base64.b64encode(bytes(15)).decode())


def test_duplicate_key_id_is_refused() -> None:
    """Two keys under one id would make values under one of them unreadable: refuse it."""
    with pytest.raises(ValueError):
        FieldCipher(f"k1:{KEY_A},k1:{KEY_B}", INDEX_KEY)


def test_blind_index_is_deterministic_and_hides_the_value() -> None:
    """Equal values give equal indexes (for lookups); the index is a 64-hex-digit HMAC."""
    c = cipher()
    index = c.blind_index(ID_NUMBER, context=CTX)
    assert index == cipher().blind_index(ID_NUMBER, context=CTX)
    assert len(index) == 64
    assert int(index, 16) >= 0
    assert ID_NUMBER not in index
    assert index != c.blind_index("110105194912310021", context=CTX)


def test_blind_index_differs_by_context() -> None:
    """The same value in two columns gives unrelated indexes."""
    c = cipher()
    assert c.blind_index(ID_NUMBER, context=CTX) != c.blind_index(ID_NUMBER, context="other")


def test_blind_index_context_and_value_do_not_run_together() -> None:
    """Context "ab" + value "c" is not context "a" + value "bc"."""
    c = cipher()
    assert c.blind_index("c", context="ab") != c.blind_index("bc", context="a")


def test_blind_index_differs_by_key() -> None:
    """Without the index key the index cannot be recomputed."""
    assert cipher(index_key=INDEX_KEY).blind_index(ID_NUMBER, context=CTX) != cipher(
        index_key=OTHER_INDEX_KEY
    ).blind_index(ID_NUMBER, context=CTX)


def test_blind_index_survives_data_key_rotation() -> None:
    """Rotating data keys does not change indexes, so lookups keep working."""
    before = cipher(f"k1:{KEY_A}").blind_index(ID_NUMBER, context=CTX)
    after = cipher(f"k2:{KEY_B},k1:{KEY_A}").blind_index(ID_NUMBER, context=CTX)
    assert before == after


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("11010519491231002X", "110105********002X"),
        ("330102199001011234", "330102********1234"),
        ("110105491231002", "110105*****1002"),
        ("123456789", "*********"),
        ("", ""),
    ],
)
def test_mask_id_number(value: str, masked: str) -> None:
    """Region and last four kept, birth date and sequence hidden; short values fully hidden."""
    assert mask_id_number(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("13800138000", "138****8000"),
        ("+8613800138000", "+86****8000"),
        ("1380013800", "**********"),
        ("", ""),
    ],
)
def test_mask_phone(value: str, masked: str) -> None:
    """First three and last four digits kept; anything shorter than 11 fully hidden."""
    assert mask_phone(value) == masked
