"""Money and settlement rules of payment runs. Pure: no I/O.

Money is integer fen; yuan appear only as text in the bank file, formatted from fen.

The bank files (services/benefits/payments.py sends and reads them):

- **Disbursement file** (代发文件, what we send): UTF-8 without BOM, RFC 4180 CSV (comma,
  ``"`` quoting only where a field needs it, CRLF line ends). A header row
  ``reference,account_no,account_name,amount``, one row per line of the run sent to the bank,
  in line order, and a final control row ``TOTAL,<line count>,,<total yuan>``. ``reference``
  is the run code, ``-``, and the line number zero-padded to at least six digits
  (``PR-RRA-2026-01-330102-000001``); ``account_no`` the full account number (digits);
  ``amount`` yuan with exactly two decimals (``123.45``), formatted from fen, never via float.
- **Return file** (回盘文件, what the bank sends back): UTF-8 (a BOM is tolerated), CSV with a
  header row ``reference,result,reason`` and one row per reference: ``result`` is ``paid`` or
  ``failed`` (any case), ``reason`` is optional (a failed row without one gets
  ``银行未注明原因``) and at most 200 characters. Blank lines are skipped. A reference given
  twice with the same result counts once; with different results the file is refused. Any
  malformed row refuses the whole file (nothing is applied), every problem listed by line.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from services.benefits.domain.programs import Period, Program, monthly_amount
from shared.money import yuan


def periods(first: Period, last: Period) -> list[Period]:
    """Every period from ``first`` through ``last`` (empty when last < first)."""
    return [first.plus(i) for i in range(first.months_until(last) + 1)]


def due_fen(program: Program, region_code: str, case: str, first: Period, last: Period) -> int:
    """What is due for the months first..last, each at the amount in force for that month."""
    return sum(monthly_amount(program, region_code, p, case) for p in periods(first, last))


def overpaid_fen(
    program: Program, region_code: str, case: str, ends_after: Period, settled_through: Period
) -> int:
    """What was sent for months after an enrollment's last payable period (a death recorded
    after the month was already paid): the months ends_after+1 .. settled_through, each at the
    amount in force for it, which is what the run paid (paid periods are never re-rated)."""
    if settled_through <= ends_after:
        return 0
    return due_fen(program, region_code, case, ends_after.next(), settled_through)


# -- runs, regions and references ----------------------------------------------------------------


def program_abbreviations(codes: Iterable[str]) -> dict[str, str]:
    """A short upper-case tag per program code for run codes, unique among ``codes``:
    the initials of the code's words (rural_reward_assistance -> RRA); where two programs
    share initials, the first two letters of each word (RURE...); failing that, the code itself
    (with a number if even that is taken)."""
    codes = list(dict.fromkeys(codes))

    def tag(code: str, width: int) -> str:
        return "".join(w[:width] for w in code.split("_") if w).upper()

    out: dict[str, str] = {}
    for width in (1, 2):
        tags = {c: tag(c, width) for c in codes if c not in out}
        counts: dict[str, int] = {}
        for t in [*tags.values(), *out.values()]:
            counts[t] = counts.get(t, 0) + 1
        out.update({c: t for c, t in tags.items() if counts[t] == 1})
    taken = set(out.values())
    for code in sorted(c for c in codes if c not in out):
        tag, n = code.upper(), 1
        while tag in taken:  # e.g. "aa" when "a_a" already holds "AA"
            n += 1
            tag = f"{code.upper()}{n}"
        out[code] = tag
        taken.add(tag)
    return {c: out[c] for c in codes}


def run_code(abbreviation: str, period: Period, region: str) -> str:
    """The bank-facing batch reference of a run: ``PR-RRA-2026-01-330102``; unique because a run
    is unique per (program, period, region) and abbreviations are unique per program."""
    return f"PR-{abbreviation}-{period}-{region}"


REFERENCE_DIGITS = 6


def line_reference(code: str, line_no: int) -> str:
    """The reference of one line in the bank files: run code, ``-``, line number."""
    return f"{code}-{line_no:0{REFERENCE_DIGITS}d}"


_LINE_NO = re.compile(r"^\d{1,9}$")


def parse_line_reference(reference: str, code: str) -> int | None:
    """The line number of a reference of run ``code``; None when it is not one of this run's."""
    prefix, sep, number = reference.rpartition("-")
    if not sep or prefix != code or not _LINE_NO.match(number):
        return None
    return int(number) or None


def regions_overlap(a: str, b: str) -> bool:
    """Two runs' regions overlap when one division-code prefix starts with the other."""
    return a.startswith(b) or b.startswith(a)


def region_prefixes(region: str) -> list[str]:
    """Every region a run of ``region`` overlaps from above: its own prefixes (2-12 digits)."""
    return [region[:n] for n in range(2, len(region) + 1)]


def mask_account_no(account_no: str) -> str:
    """Only the last four digits are shown: ``************1234``."""
    return "*" * max(len(account_no) - 4, 0) + account_no[-4:]


# -- ledger reasons (zh-CN); payments.py builds the same text in SQL, tests hold them equal ------


def months_text(period_from: str, period_until: str) -> str:
    return period_from if period_from == period_until else f"{period_from}至{period_until}"


def payment_reason(program_name: str, period_from: str, period_until: str, months: int) -> str:
    """Why a line's money was sent: the program and its months."""
    return f"{program_name}：{months_text(period_from, period_until)}，共{months}个月"


def claim_payment_reason(program_name: str, claim_no: str) -> str:
    return f"{program_name}：报销申请 {claim_no}"


def correction_reason(program_name: str, period_from: str, period_until: str) -> str:
    """A line sent as approved for months after the enrollment ended (a death recorded while the
    run awaited approval): those months are to be recovered."""
    return f"{program_name}：{months_text(period_from, period_until)} 停发后随批次发出，待追回"


def reversal_reason(
    program_name: str, period_from: str, period_until: str, bank_reason: str
) -> str:
    """The bank returned a line: the money came back, the months are owed again."""
    return (
        f"{program_name}：{months_text(period_from, period_until)} 银行退回（{bank_reason}），"
        "下次发放补发"
    )


def correction_reversal_reason(program_name: str, period_from: str, period_until: str) -> str:
    """The corrections of a returned line no longer stand: nothing of it reached the payee."""
    return f"{program_name}：{months_text(period_from, period_until)} 银行退回，撤销待追回"


# -- the disbursement file -------------------------------------------------------------------------

DISBURSEMENT_HEADER = ("reference", "account_no", "account_name", "amount")


@dataclass(frozen=True)
class DisbursementRow:
    reference: str
    account_no: str
    account_name: str
    amount_fen: int


def csv_text(rows: Iterable[Iterable[str]]) -> str:
    """RFC 4180 rows: quoted only where needed, CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    return out.getvalue()


def disbursement_header() -> str:
    return csv_text([DISBURSEMENT_HEADER])


def disbursement_lines(rows: Iterable[DisbursementRow]) -> str:
    return csv_text((r.reference, r.account_no, r.account_name, yuan(r.amount_fen)) for r in rows)


def control_row(line_count: int, total_fen: int) -> str:
    """``TOTAL,<line count>,,<total yuan>``: the run's approved totals, not a sum of what was
    written, so the bank sees a row lost or changed on the way as a mismatch."""
    return csv_text([("TOTAL", str(line_count), "", yuan(total_fen))])


def disbursement_file(rows: Iterable[DisbursementRow], line_count: int, total_fen: int) -> str:
    """The whole file at once (the service streams the same pieces batch by batch)."""
    return disbursement_header() + disbursement_lines(rows) + control_row(line_count, total_fen)


def parse_yuan(text: str) -> int:
    """``123.45`` -> 12345 fen, exactly (two decimals required; for reading our own files)."""
    m = re.fullmatch(r"(-?)(\d+)\.(\d{2})", text.strip())
    if not m:
        raise ValueError(f"not an amount in yuan with two decimals: {text!r}")
    fen = int(m[2]) * 100 + int(m[3])
    return -fen if m[1] else fen


# -- the bank's return file -----------------------------------------------------------------

RETURN_HEADER = ("reference", "result", "reason")
Result = Literal["paid", "failed"]
NO_REASON = "银行未注明原因"
MAX_REASON = 200


@dataclass(frozen=True)
class ReturnRow:
    reference: str
    result: Result
    reason: str | None  # None when paid
    line: int  # 1-based line of the file, for error messages


@dataclass(frozen=True)
class FileProblem:
    line: int
    zh: str
    en: str


class ReturnFileError(ValueError):
    """The return file is malformed; ``problems`` lists every bad line."""

    def __init__(self, problems: list[FileProblem]) -> None:
        super().__init__("; ".join(f"line {p.line}: {p.en}" for p in problems))
        self.problems = problems


def parse_return_file(text: str) -> list[ReturnRow]:
    """The rows of a bank return file, one per reference, in file order (rules: module doc)."""
    text = text.removeprefix("\ufeff")
    problems: list[FileProblem] = []
    rows: dict[str, ReturnRow] = {}
    header_seen = False
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:
        raise ReturnFileError([FileProblem(0, f"CSV 格式错误：{e}", f"malformed CSV: {e}")]) from e
    for number, record in enumerate(records, start=1):
        fields = [f.strip() for f in record]
        if not any(fields):
            continue
        if not header_seen:
            header_seen = True
            if tuple(f.lower() for f in fields) != RETURN_HEADER:
                problems.append(
                    FileProblem(
                        number,
                        "首行应为表头 reference,result,reason",
                        "the first row must be the header reference,result,reason",
                    )
                )
                break
            continue
        if len(fields) not in (2, 3):
            problems.append(FileProblem(number, "应有 2 或 3 列", "expected 2 or 3 fields"))
            continue
        reference, result = fields[0], fields[1].lower()
        reason = fields[2] if len(fields) == 3 and fields[2] else None
        if not reference:
            problems.append(FileProblem(number, "缺少 reference", "reference is empty"))
            continue
        if result not in ("paid", "failed"):
            problems.append(
                FileProblem(
                    number,
                    f"result 应为 paid 或 failed，而非 {fields[1]!r}",
                    f"result must be paid or failed, not {fields[1]!r}",
                )
            )
            continue
        if reason is not None and len(reason) > MAX_REASON:
            problems.append(
                FileProblem(
                    number,
                    f"reason 超过 {MAX_REASON} 个字符",
                    f"reason longer than {MAX_REASON} characters",
                )
            )
            continue
        row = ReturnRow(
            reference=reference,
            result=result,  # type: ignore[arg-type]
            reason=(reason or NO_REASON) if result == "failed" else None,
            line=number,
        )
        earlier = rows.get(reference)
        if earlier is None:
            rows[reference] = row
        elif earlier.result != row.result:
            problems.append(
                FileProblem(
                    number,
                    f"{reference} 与第 {earlier.line} 行结果矛盾",
                    f"{reference} contradicts line {earlier.line}",
                )
            )
    if not header_seen:
        problems.append(FileProblem(1, "文件为空", "the file is empty"))
    elif not rows and not problems:
        problems.append(FileProblem(1, "文件没有任何结果行", "the file has no result rows"))
    if problems:
        raise ReturnFileError(problems)
    return list(rows.values())
