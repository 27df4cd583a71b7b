"""Pure rules of payment runs: yuan from fen, the bank files, references, run codes, regions,
masks, reasons and the payment schedule."""

from __future__ import annotations

import csv
import io
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.benefits.domain import payments as rules
from services.benefits.domain.payments import DisbursementRow, ReturnFileError, parse_return_file
from services.benefits.domain.programs import Period, parse_programs

PROGRAMS_FILE = Path(__file__).resolve().parents[1] / "programs.toml"
FEN = st.integers(min_value=1, max_value=10**13) | st.sampled_from([1, 99, 100, 10**13])


def real() -> dict[str, Any]:
    return parse_programs(tomllib.loads(PROGRAMS_FILE.read_text("utf-8")))


# -- yuan ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "text"),
    [(0, "0.00"), (1, "0.01"), (99, "0.99"), (100, "1.00"), (12345, "123.45"), (-5, "-0.05")],
)
def test_yuan_from_fen(fen: int, text: str) -> None:
    assert rules.yuan(fen) == text
    assert rules.parse_yuan(text) == fen


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_yuan_is_exact_for_any_fen(fen: int) -> None:
    """No float anywhere: 10**18 + 1 fen stays exact."""
    assert rules.parse_yuan(rules.yuan(fen)) == fen


@pytest.mark.parametrize("text", ["1", "1.5", "1.234", "1,00", "", "abc", "1.0e2"])
def test_only_two_decimal_yuan_parse(text: str) -> None:
    with pytest.raises(ValueError):
        rules.parse_yuan(text)


# -- the disbursement file ---------------------------------------------------------------------


def _rows(amounts: list[int], names: list[str] | None = None) -> list[DisbursementRow]:
    return [
        DisbursementRow(
            reference=rules.line_reference("PR-RRA-2026-01-330102", i + 1),
            account_no=f"{6228480000000000 + i}",
            account_name=(names[i] if names else "王芳"),
            amount_fen=fen,
        )
        for i, fen in enumerate(amounts)
    ]


@given(st.lists(FEN, min_size=0, max_size=60))
def test_the_file_total_is_the_sum_of_its_lines_to_the_fen(amounts: list[int]) -> None:
    text = rules.disbursement_file(_rows(amounts), len(amounts), sum(amounts))
    records = list(csv.reader(io.StringIO(text, newline="")))
    assert records[0] == ["reference", "account_no", "account_name", "amount"]
    body, control = records[1:-1], records[-1]
    assert control[:3] == ["TOTAL", str(len(amounts)), ""]
    assert [rules.parse_yuan(r[3]) for r in body] == amounts
    assert rules.parse_yuan(control[3]) == sum(amounts)
    assert all(len(r) == 4 for r in records)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=10))
def test_names_with_commas_and_quotes_survive_the_csv(names: list[str]) -> None:
    names = [n.replace("\r", "").replace("\n", "") or "名" for n in names]
    text = rules.disbursement_file(_rows([100] * len(names), names), len(names), 100 * len(names))
    records = list(csv.reader(io.StringIO(text, newline="")))
    assert [r[2] for r in records[1:-1]] == names


def test_the_control_row_is_the_runs_not_a_sum() -> None:
    """What the run approved, so a line lost on the way shows as a mismatch at the bank."""
    text = rules.disbursement_file(_rows([100, 200]), 3, 400)
    assert text.splitlines()[-1] == "TOTAL,3,,4.00"


# -- references, codes, regions, masks -------------------------------------------------------


@given(st.integers(min_value=1, max_value=999_999_999))
def test_references_round_trip(line_no: int) -> None:
    code = "PR-RRA-2026-01-330102"
    reference = rules.line_reference(code, line_no)
    assert rules.parse_line_reference(reference, code) == line_no
    assert rules.parse_line_reference(reference, "PR-RRA-2026-02-330102") is None


def test_reference_format() -> None:
    assert rules.line_reference("PR-CS-2025-12-330102", 7) == "PR-CS-2025-12-330102-000007"
    assert rules.line_reference("PR-X", 1_234_567) == "PR-X-1234567"
    code = "PR-X"
    for bad in ("PR-X-", "PR-X-0", "PR-X-00a1", "PR-X1", "PR-Y-000001", "", "000001"):
        assert rules.parse_line_reference(bad, code) is None, bad


def test_program_abbreviations_are_unique_and_readable() -> None:
    abbreviations = rules.program_abbreviations(real())
    assert abbreviations == {
        "only_child_parent_reward": "OCPR",
        "rural_reward_assistance": "RRA",
        "special_assistance": "SA",
        "childcare_subsidy": "CS",
        "assisted_reproduction_reimbursement": "ARR",
    }
    clash = rules.program_abbreviations(["special_aid", "senior_allowance", "sa"])
    assert clash == {"special_aid": "SPAI", "senior_allowance": "SEAL", "sa": "S"}
    same = rules.program_abbreviations(["a_b", "ab", "a_bc"])
    assert len(set(same.values())) == 3
    assert rules.program_abbreviations(["a", "a_a", "aa"]) == {"a": "A", "a_a": "AA", "aa": "AA2"}
    assert rules.run_code("RRA", Period(2026, 1), "330102") == "PR-RRA-2026-01-330102"


@given(
    st.lists(st.from_regex(r"[a-z]{1,3}(_[a-z]{1,3}){0,2}", fullmatch=True), min_size=1, max_size=8)
)
def test_abbreviations_never_collide(codes: list[str]) -> None:
    out = rules.program_abbreviations(codes)
    assert set(out) == set(codes)
    assert len(set(out.values())) == len(out)


def test_regions_overlap_when_one_contains_the_other() -> None:
    assert rules.regions_overlap("330102", "330102001")
    assert rules.regions_overlap("330102001", "330102")
    assert rules.regions_overlap("330102", "330102")
    assert not rules.regions_overlap("330102001", "330102002")
    assert rules.region_prefixes("330102001") == [
        "33",
        "330",
        "3301",
        "33010",
        "330102",
        "3301020",
        "33010200",
        "330102001",
    ]


def test_account_numbers_show_the_last_four_digits_only() -> None:
    assert rules.mask_account_no("6228480012345678901") == "*" * 15 + "8901"
    assert rules.mask_account_no("123456789012") == "********9012"


def test_ledger_reasons_name_the_program_and_months() -> None:
    name = "农村奖扶"
    paid = rules.payment_reason(name, "2013-12", "2014-02", 3)
    assert paid == "农村奖扶：2013-12至2014-02，共3个月"
    assert rules.payment_reason(name, "2026-01", "2026-01", 1) == "农村奖扶：2026-01，共1个月"
    returned = rules.reversal_reason(name, "2026-01", "2026-01", "账户已销户")
    assert returned == "农村奖扶：2026-01 银行退回（账户已销户），下次发放补发"
    recovered = rules.correction_reason(name, "2026-02", "2026-03")
    assert recovered == "农村奖扶：2026-02至2026-03 停发后随批次发出，待追回"
    undone = rules.correction_reversal_reason(name, "2026-01", "2026-03")
    assert undone == "农村奖扶：2026-01至2026-03 银行退回，撤销待追回"
    assert rules.claim_payment_reason("补助", "BX1") == "补助：报销申请 BX1"


# -- the return file ---------------------------------------------------------------------------


def test_a_return_file_parses() -> None:
    text = (
        "\ufeffReference , RESULT, reason\r\n"
        "\r\n"
        "PR-X-000001,paid,\r\n"
        'PR-X-000002, Failed ,"账户已销户, 请核实"\r\n'
        "PR-X-000003,failed\r\n"
        "PR-X-000001,paid,repeated\r\n"
        "PR-X-000004,paid"
    )
    rows = parse_return_file(text)
    assert [(r.reference, r.result, r.reason, r.line) for r in rows] == [
        ("PR-X-000001", "paid", None, 3),
        ("PR-X-000002", "failed", "账户已销户, 请核实", 4),
        ("PR-X-000003", "failed", rules.NO_REASON, 5),
        ("PR-X-000004", "paid", None, 7),
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", 1),
        ("\r\n\r\n", 1),
        ("reference,result,reason\r\n", 1),
        ("ref,result,reason\r\nA,paid,\r\n", 1),
        ("reference,result,reason\r\nA,maybe,\r\n", 2),
        ("reference,result,reason\r\nA\r\n", 2),
        ("reference,result,reason\r\nA,paid,,x\r\n", 2),
        ("reference,result,reason\r\n,paid,\r\n", 2),
        ("reference,result,reason\r\nA,paid,\r\nA,failed,x\r\n", 3),
        ("reference,result,reason\r\nA,failed," + "x" * 201 + "\r\n", 2),
    ],
)
def test_a_malformed_return_file_is_refused_whole(text: str, line: int) -> None:
    with pytest.raises(ReturnFileError) as e:
        parse_return_file(text)
    assert e.value.problems[0].line == line
    assert all(p.zh and p.en for p in e.value.problems)


def test_every_bad_line_is_listed() -> None:
    text = "reference,result,reason\r\nA,x,\r\nB,paid,\r\nC,y,\r\n"
    with pytest.raises(ReturnFileError) as e:
        parse_return_file(text)
    assert [p.line for p in e.value.problems] == [2, 4]


# -- the payment schedule -------------------------------------------------------------------------


def _program(**schedule: Any) -> Any:
    return parse_programs({"programs": [{"code": "p", "name": "P", **schedule}]})["p"]


def test_programs_are_paid_monthly_unless_said_otherwise() -> None:
    p = _program()
    assert (p.pay_every, p.pay_month) == ("month", None)
    assert all(p.pays_in(Period(2026, m)) for m in range(1, 13))
    childcare = real()["childcare_subsidy"]
    assert (childcare.pay_every, childcare.pay_month) == ("year", 12)
    assert [m for m in range(1, 13) if childcare.pays_in(Period(2025, m))] == [12]
    assert all(
        real()[code].pay_every == "month"
        for code in ("only_child_parent_reward", "rural_reward_assistance", "special_assistance")
    )


@given(st.integers(min_value=1, max_value=12), st.integers(min_value=2000, max_value=2100))
def test_a_yearly_program_pays_in_exactly_one_month_a_year(month: int, year: int) -> None:
    p = _program(pay_every="year", pay_month=month)
    assert [m for m in range(1, 13) if p.pays_in(Period(year, m))] == [month]


@pytest.mark.parametrize(
    "schedule",
    [
        {"pay_every": "week"},
        {"pay_every": "Year", "pay_month": 12},
        {"pay_every": "year"},
        {"pay_every": "year", "pay_month": 0},
        {"pay_every": "year", "pay_month": 13},
        {"pay_every": "year", "pay_month": "12"},
        {"pay_every": "year", "pay_month": True},
        {"pay_every": "year", "pay_month": 12.0},
        {"pay_every": "month", "pay_month": 12},
        {"pay_month": 12},
    ],
)
def test_a_malformed_schedule_is_refused(schedule: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"programs\.p"):
        _program(**schedule)
