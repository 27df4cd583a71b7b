"""Each account number column has its own associated data: values written under the legacy
shared context ("account_no") are still read, a value moved into another column is not."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from services.benefits.models import (
    LEGACY_ACCOUNT_CONTEXT,
    LINE_ACCOUNT_NO,
    PAYEE_ACCOUNT_NO,
    PayeeAccount,
    PaymentLine,
)
from services.benefits.payments import line_account_no
from services.benefits.tests.test_payment_runs import (
    account_no_of,
    approve,
    bank_file,
    draft,
    export,
    lines_of,
    maker,
    seed_enrollment,
)
from shared.crypto import DecryptError
from shared.rotation import reencrypt
from tests.support import InProcessStack


def test_the_columns_are_declared_with_contexts_of_their_own() -> None:
    assert PAYEE_ACCOUNT_NO.context == "benefits.payee_accounts.account_no"
    assert LINE_ACCOUNT_NO.context == "benefits.payment_lines.account_no"
    assert LEGACY_ACCOUNT_CONTEXT in PAYEE_ACCOUNT_NO.previous_contexts
    assert LEGACY_ACCOUNT_CONTEXT in LINE_ACCOUNT_NO.previous_contexts


async def test_a_legacy_account_is_paid_and_rewritten_by_the_rotation(
    stack: InProcessStack,
) -> None:
    rt = stack.rt("benefits")
    e = await seed_enrollment(stack, pays_from="2025-11", settled_through="2025-12")
    number = account_no_of(e.payee_id)
    legacy = rt.cipher.encrypt(number, context=LEGACY_ACCOUNT_CONTEXT)
    async with rt.db.session() as s:
        await s.execute(
            update(PayeeAccount)
            .where(PayeeAccount.person_id == e.payee_id)
            .values(account_no_enc=legacy)
        )
        await s.commit()

    run = await export(stack, await approve(stack, await draft(stack, "2026-01")))
    rows, _ = await bank_file(stack, run)
    assert rows[1][1] == number
    r = await stack.benefits.get(f"/api/v1/payment-runs/{run['id']}/lines", headers=maker(stack))
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["account_no_masked"].endswith(number[-4:])

    # The rotation moves both columns off the legacy context, each onto its own.
    reports = await reencrypt(rt.db, rt.cipher, (PAYEE_ACCOUNT_NO, LINE_ACCOUNT_NO))
    assert [(r.rewritten, r.failed) for r in reports] == [(1, 0), (1, 0)]
    async with rt.db.session() as s:
        payee = (await s.scalars(select(PayeeAccount.account_no_enc))).one()
    [line] = await lines_of(stack, run["id"])
    assert rt.cipher.decrypt(payee, context=PAYEE_ACCOUNT_NO.context) == number
    assert rt.cipher.decrypt(line.account_no_enc or "", context=LINE_ACCOUNT_NO.context) == number
    assert (await bank_file(stack, run))[0][1][1] == number
    again = await reencrypt(rt.db, rt.cipher, (PAYEE_ACCOUNT_NO, LINE_ACCOUNT_NO))
    assert [(r.rewritten, r.current) for r in again] == [(0, 1), (0, 1)]


async def test_a_value_moved_to_the_other_column_does_not_decrypt(
    stack: InProcessStack,
) -> None:
    rt = stack.rt("benefits")
    e = await seed_enrollment(stack, pays_from="2025-11", settled_through="2025-12")
    run = await draft(stack, "2026-01")
    await reencrypt(rt.db, rt.cipher, (LINE_ACCOUNT_NO,))  # the line under its own context
    [line] = await lines_of(stack, run["id"])
    line_token = line.account_no_enc or ""
    assert line_account_no(rt.cipher, line_token) == account_no_of(e.payee_id)

    with pytest.raises(DecryptError):
        rt.cipher.decrypt_any(line_token, contexts=PAYEE_ACCOUNT_NO.contexts)
    # Moved into the payee accounts, the rotation finds it does not belong there.
    async with rt.db.session() as s:
        await s.execute(
            update(PayeeAccount)
            .where(PayeeAccount.person_id == e.payee_id)
            .values(account_no_enc=line_token)
        )
        await s.commit()
    [report] = await reencrypt(rt.db, rt.cipher, (PAYEE_ACCOUNT_NO,))
    assert (report.failed, report.failed_ids, report.rewritten) == (1, [e.payee_id], 0)

    # Another column's value (a registry ID number) decrypts in neither.
    foreign = rt.cipher.encrypt("11010519491231002X", context="registry.persons.id_number")
    with pytest.raises(DecryptError):
        line_account_no(rt.cipher, foreign)
    async with rt.db.session() as s:
        await s.execute(
            update(PaymentLine).where(PaymentLine.id == line.id).values(account_no_enc=foreign)
        )
        await s.commit()
    [report] = await reencrypt(rt.db, rt.cipher, (LINE_ACCOUNT_NO,))
    assert (report.failed, report.failed_ids) == (1, [str(line.id)])
