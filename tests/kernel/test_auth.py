"""Bearer JWT verification (HS256 in development) and the caller's regional scope."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from shared.auth import Principal, Role, TokenVerifier, mint_dev_token, require_checker
from shared.config import Settings
from shared.errors import Problem

SECRET = "unit-test-secret-that-is-long-enough-for-hs256-0123"
OTHER_SECRET = "another-unit-test-secret-long-enough-for-hs256-4567"
VILLAGE = "330102001001"
TOWNSHIP = "330102001"


def settings(**overrides: Any) -> Settings:
    """Settings for HS256 verification, independent of the environment."""
    values: dict[str, Any] = {
        "jwt_secret": SECRET,
        "jwt_jwks_url": None,
        "jwt_issuer": None,
        "jwt_audience": None,
        "jwt_leeway_seconds": 30,
    }
    values.update(overrides)
    return Settings(**values)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    c: dict[str, Any] = {
        "sub": "officer-1",
        "role": "township_officer",
        "region": TOWNSHIP,
        "iat": now,
        "exp": now + 600,
    }
    c.update(overrides)
    return {k: v for k, v in c.items() if v is not None}


def assert_token_invalid(token: str, s: Settings | None = None) -> Problem:
    with pytest.raises(Problem) as e:
        TokenVerifier(s or settings()).verify(token)
    assert e.value.status == 401
    assert e.value.code == "token_invalid"
    assert e.value.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    return e.value


# -- verification ----------------------------------------------------------------------------


def test_minted_token_gives_the_principal() -> None:
    """A development token carries sub, role, region and person id into the principal."""
    s = settings()
    token = mint_dev_token(s, role="resident", region=VILLAGE, person_id="p-1")
    assert TokenVerifier(s).verify(token) == Principal(
        sub="p-1", role=Role.resident, region=VILLAGE, person_id="p-1"
    )


def test_default_subject_names_role_and_region() -> None:
    """Without sub or person id, the subject is ``<role>-<region or all>``."""
    s = settings()
    officer = TokenVerifier(s).verify(mint_dev_token(s, role="county_officer", region="330102"))
    admin = TokenVerifier(s).verify(mint_dev_token(s, role="admin"))
    assert (officer.sub, officer.role, officer.person_id) == (
        "county_officer-330102",
        Role.county_officer,
        None,
    )
    assert (admin.sub, admin.region) == ("admin-all", "")


def test_token_without_region_claim_has_an_empty_region() -> None:
    """A missing region claim is an empty region (which covers nothing unless admin)."""
    token = jwt.encode(claims(region=None), SECRET, algorithm="HS256")
    assert TokenVerifier(settings()).verify(token).region == ""


def test_minting_an_unknown_role_is_refused() -> None:
    """The CLI cannot mint a token for a role that does not exist."""
    with pytest.raises(ValueError):
        mint_dev_token(settings(), role="mayor")


def test_expired_token_is_refused() -> None:
    """A token past its expiry (beyond the leeway) is refused."""
    s = settings()
    assert_token_invalid(mint_dev_token(s, role="admin", ttl_seconds=-120), s)


def test_expiry_within_the_leeway_is_accepted() -> None:
    """Clock skew up to the configured leeway is tolerated."""
    s = settings(jwt_leeway_seconds=30)
    token = mint_dev_token(s, role="admin", ttl_seconds=-5)
    assert TokenVerifier(s).verify(token).role is Role.admin


def test_token_signed_with_another_secret_is_refused() -> None:
    """Only tokens signed with our secret are trusted."""
    assert_token_invalid(mint_dev_token(settings(jwt_secret=OTHER_SECRET), role="admin"))


def test_unsigned_token_is_refused() -> None:
    """``alg: none`` is never accepted."""
    assert_token_invalid(jwt.encode(claims(role="admin"), None, algorithm="none"))


@pytest.mark.filterwarnings("ignore:The HMAC key is")
def test_other_hmac_algorithm_is_refused() -> None:
    """Only HS256 is accepted in development, even with the right secret."""
    assert_token_invalid(jwt.encode(claims(), SECRET, algorithm="HS512"))


@pytest.mark.parametrize("missing", ["role", "sub", "exp"])
def test_token_missing_a_required_claim_is_refused(missing: str) -> None:
    """sub, role and exp are required."""
    assert_token_invalid(jwt.encode(claims(**{missing: None}), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("role", ["mayor", "ADMIN", ""])
def test_unknown_role_is_refused(role: str) -> None:
    """A role that is not one of the seven is refused (names are case-sensitive)."""
    problem = assert_token_invalid(jwt.encode(claims(role=role), SECRET, algorithm="HS256"))
    assert problem.detail is not None and problem.detail.startswith("访问令牌无效")


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
def test_malformed_token_is_refused(token: str) -> None:
    """Something that is not a JWT at all is a 401, not a 500."""
    assert_token_invalid(token)


def test_issuer_and_audience_are_checked_when_configured() -> None:
    """With an issuer and audience configured, tokens for another issuer or audience fail."""
    ours = settings(jwt_issuer="https://id.lingju.test", jwt_audience="lingju")
    token = mint_dev_token(ours, role="admin")
    assert TokenVerifier(ours).verify(token).role is Role.admin
    assert_token_invalid(token, settings(jwt_issuer="https://other.test", jwt_audience="lingju"))
    assert_token_invalid(token, settings(jwt_issuer="https://id.lingju.test", jwt_audience="x"))
    assert_token_invalid(mint_dev_token(settings(), role="admin"), ours)


# -- regional scope --------------------------------------------------------------------------


def principal(role: Role, region: str) -> Principal:
    return Principal(sub="s", role=role, region=region)


def test_township_officer_covers_its_villages() -> None:
    """A village's 12-digit code starting with the township's code is inside it."""
    assert principal(Role.township_officer, TOWNSHIP).covers(VILLAGE)
    assert principal(Role.township_officer, TOWNSHIP).covers("330102001999")


def test_officer_does_not_cover_another_township() -> None:
    """A neighbouring township, or another county, is outside the region."""
    officer = principal(Role.township_officer, TOWNSHIP)
    assert not officer.covers("330102002001")
    assert not officer.covers("330103001001")


def test_county_officer_covers_every_township_of_the_county() -> None:
    """A county code (6 digits) covers every township and village under it."""
    officer = principal(Role.county_officer, "330102")
    assert officer.covers("330102001001")
    assert officer.covers("330102002003")
    assert not officer.covers("330103001001")


def test_village_worker_covers_exactly_its_village() -> None:
    """A full 12-digit region covers that village only."""
    worker = principal(Role.village_worker, VILLAGE)
    assert worker.covers(VILLAGE)
    assert not worker.covers("330102001002")


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.admin])
def test_empty_region_covers_nothing_for_non_admins(role: Role) -> None:
    """A non-admin token without a region acts nowhere."""
    assert not principal(role, "").covers(VILLAGE)
    assert not principal(role, "").covers("")


def test_admin_without_region_covers_everything() -> None:
    """An admin with no region is county-wide (and beyond)."""
    assert principal(Role.admin, "").covers(VILLAGE)
    assert principal(Role.admin, "").covers("440101001001")


def test_admin_with_a_region_is_limited_to_it() -> None:
    """An admin given a region is held to it like anyone else."""
    admin = principal(Role.admin, TOWNSHIP)
    assert admin.covers(VILLAGE)
    assert not admin.covers("330102002001")


def test_require_region_refuses_outside_the_region_with_403() -> None:
    """Acting outside one's region answers 403 out_of_region; inside passes."""
    officer = principal(Role.township_officer, TOWNSHIP)
    officer.require_region(VILLAGE)
    with pytest.raises(Problem) as e:
        officer.require_region("330102002001")
    assert (e.value.status, e.value.code) == (403, "out_of_region")


def test_the_maker_never_checks() -> None:
    """Maker-checker: the officer who prepared a record may not approve it; "system", the
    maker of records founded on events, is no officer."""
    a = Principal(sub="officer-a", role=Role.township_officer, region="330102001")
    with pytest.raises(Problem) as refused:
        require_checker(a, "officer-a", "审核人不能与经办人为同一人", "Checker is the maker")
    assert (refused.value.status, refused.value.code) == (403, "maker_checker")
    require_checker(a, "officer-b", "", "")
    require_checker(a, "system", "", "")
