"""HMAC request signatures (shared.signing): what senders compute and receivers accept."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureExpired,
    SignatureInvalid,
    sign,
    signed_headers,
    verify,
)

SECRET = "bureau-secret-for-tests"
BODY = '{"external_ref":"HB-1","kind":"birth","name":"李小宝"}'.encode()
NOW = 1_750_000_000


def check(
    timestamp: str | None, signature: str | None, body: bytes = BODY, now: float = NOW
) -> None:
    verify(SECRET, timestamp, signature, body, max_age_seconds=300, now=now)


def test_signature_is_hmac_sha256_of_timestamp_dot_body_in_hex() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"sha256={expected}"
    assert sign(SECRET, str(NOW), BODY) == sign(SECRET, NOW, BODY)


def test_signed_headers_carry_both_and_verify() -> None:
    headers = signed_headers(SECRET, BODY, timestamp=NOW)
    assert headers == {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: sign(SECRET, NOW, BODY)}
    check(headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER])


def test_signed_headers_default_to_now() -> None:
    headers = signed_headers(SECRET, BODY)
    verify(
        SECRET,
        headers[TIMESTAMP_HEADER],
        headers[SIGNATURE_HEADER],
        BODY,
        max_age_seconds=5,
    )


def test_uppercase_hex_and_surrounding_spaces_are_accepted() -> None:
    signature = sign(SECRET, NOW, BODY)
    check(f" {NOW} ", "sha256=" + signature.removeprefix("sha256=").upper() + " ")


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        (None, "sha256=" + "0" * 64),
        (str(NOW), None),
        ("", ""),
        ("yesterday", "x"),
        ("-5", "x"),
        ("1.5", "x"),
    ],
)
def test_missing_or_malformed_headers_are_invalid(
    timestamp: str | None, signature: str | None
) -> None:
    with pytest.raises(SignatureInvalid) as info:
        check(timestamp, signature if signature != "x" else sign(SECRET, NOW, BODY))
    assert info.value.code == "signature_invalid"
    assert info.value.zh and info.value.en


@pytest.mark.parametrize(
    "signature",
    [
        "sha1=" + "0" * 40,
        "sha256=abc",
        "sha256=" + "g" * 64,
        sign(SECRET, NOW, BODY).removeprefix("sha256="),  # the scheme is required
    ],
)
def test_malformed_signatures_are_invalid(signature: str) -> None:
    with pytest.raises(SignatureInvalid):
        check(str(NOW), signature)


def test_a_changed_body_timestamp_or_secret_is_invalid() -> None:
    good = sign(SECRET, NOW, BODY)
    with pytest.raises(SignatureInvalid):
        check(str(NOW), good, body=BODY + b" ")
    with pytest.raises(SignatureInvalid):
        check(str(NOW - 1), good)
    with pytest.raises(SignatureInvalid):
        check(str(NOW), sign("another-secret", NOW, BODY))
    with pytest.raises(SignatureInvalid):
        verify("", str(NOW), good, BODY, max_age_seconds=300, now=NOW)


def test_the_timestamp_is_signed_as_sent() -> None:
    # "0<ts>" is another string than "<ts>": a signature over one does not cover the other.
    with pytest.raises(SignatureInvalid):
        check(f"0{NOW}", sign(SECRET, NOW, BODY))
    check(f"0{NOW}", sign(SECRET, f"0{NOW}", BODY))


def test_a_timestamp_within_the_window_is_accepted_at_both_edges() -> None:
    check(str(NOW), sign(SECRET, NOW, BODY), now=NOW + 300)
    check(str(NOW), sign(SECRET, NOW, BODY), now=NOW - 300)


def test_an_old_or_far_future_timestamp_is_expired() -> None:
    with pytest.raises(SignatureExpired) as info:
        check(str(NOW), sign(SECRET, NOW, BODY), now=NOW + 301)
    assert info.value.code == "signature_expired"
    with pytest.raises(SignatureExpired):
        check(str(NOW), sign(SECRET, NOW, BODY), now=NOW - 301)


def test_a_forged_old_request_is_invalid_not_expired() -> None:
    """The signature is checked first: a forger learns nothing about the accepted window."""
    with pytest.raises(SignatureInvalid) as info:
        check(str(NOW), "sha256=" + "0" * 64, now=NOW + 10_000)
    assert not isinstance(info.value, SignatureExpired)


def test_a_sender_rotating_its_secret_signs_with_both_and_either_receiver_accepts() -> None:
    headers = signed_headers(["new-secret", SECRET], BODY, timestamp=NOW)
    assert headers[SIGNATURE_HEADER].count("sha256=") == 2
    check(headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER])  # a receiver not yet rotated
    verify("new-secret", str(NOW), headers[SIGNATURE_HEADER], BODY, max_age_seconds=300, now=NOW)


def test_a_receiver_rotating_accepts_the_old_and_the_new_secret_and_nothing_else() -> None:
    for secret in ("new-secret", SECRET):
        signature = sign(secret, NOW, BODY)
        verify(["new-secret", SECRET], str(NOW), signature, BODY, max_age_seconds=300, now=NOW)
    with pytest.raises(SignatureInvalid):
        verify(
            ["new-secret", SECRET],
            str(NOW),
            sign("retired-secret", NOW, BODY),
            BODY,
            max_age_seconds=300,
            now=NOW,
        )


def test_too_many_signatures_are_refused() -> None:
    many = ",".join([sign(SECRET, NOW, BODY)] * 5)
    with pytest.raises(SignatureInvalid):
        check(str(NOW), many)


def test_a_client_without_secrets_is_refused_even_with_a_valid_looking_signature() -> None:
    """An integration client listed with no secret (all of them removed) verifies nothing."""
    with pytest.raises(SignatureInvalid) as info:
        verify([], str(NOW), sign(SECRET, NOW, BODY), BODY, max_age_seconds=300, now=NOW)
    assert info.value.en == "No signing secret is configured"
