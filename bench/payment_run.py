"""Bench: drafting one payment run over a million enrollments, against the bare ceiling.

    make bench                      # 1,000,000 enrollments
    BENCH_ROWS=100000 make bench    # smaller

What it does, on one fresh SQLite benefits database (migrated, in a temp dir):

1. bulk-loads (recursive CTEs, in a child process) BENCH_ROWS active, confirmed rural
   reward-and-assistance enrollments with random UUIDs over 300 village codes of district
   330102 (95% settled through the month before the run's, 5% owing four months of back pay),
   and payee accounts for 90% of the payees (the other 10% become held lines). Account tokens
   are real FieldCipher tokens, 1,000 distinct ones reused: encrypting a million numbers would
   only slow the set-up;
2. **ours**: in a child process, ``services.benefits.payments.create_run``, the code path
   behind ``POST /api/v1/payment-runs`` called in-process (validation, locks, rate table, the
   set-based line INSERT, totals, commit), not over HTTP, for the month before the current one;
3. **ceiling**: in another child, one bare ``INSERT INTO bench_bare SELECT ... FROM
   enrollments LIMIT n`` of as many rows as the run made lines, as wide (an account token of
   the same length in each), into a copy of payment_lines with the same four indexes, through
   the same driver stack (SQLAlchemy asyncio + aiosqlite) and the same per-connection page
   cache (shared/db.py's pragmas), committed. The same statement into a table without indexes
   is reported too;
4. peak memory: each child reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the peak
   resident set of that process: interpreter, imports and the work; VmHWM as a cross-check)
   and its baseline just before the timed work. The parent imports nothing heavy and loads
   nothing itself, because Linux carries ru_maxrss across fork and exec;
5. prints scenario, ours, ceiling, ratio, target, pass/fail and writes JSON to bench/results/
   (gitignored). Pages of the tables read are warmed before each timed statement.

Targets (at 1,000,000 enrollments; a smaller BENCH_ROWS reports without failing): draft within
3x the bare statement, under 60 s, under 512 MB peak. BENCH_REPEAT (default 3) repeats both
and reports the medians (the largest peak).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PROGRAM = "rural_reward_assistance"
REGION = "330102"
VILLAGES = 300  # 30 townships x 10 villages
FULL_SCALE = 1_000_000
TARGET_RATIO = 3.0
TARGET_SECONDS = 60.0
TARGET_MB = 512.0


def _period() -> str:
    from services.benefits.domain.programs import Period
    from shared.clock import SystemClock

    return str(Period.of(SystemClock().today()).previous())


def _months_back(period: str, n: int) -> str:
    from services.benefits.domain.programs import Period

    return str(Period.parse(period).plus(-n))


# -- set-up ----------------------------------------------------------------------------------


def load(path: Path, rows: int, period: str) -> None:
    """Migrate and bulk-load with recursive CTEs: no Python loop per row."""
    from services.benefits.payments import ACCOUNT_CONTEXT
    from shared.config import Settings
    from shared.crypto import FieldCipher
    from shared.migrations import upgrade

    upgrade("benefits", f"sqlite:///{path}")
    settings = Settings()
    cipher = FieldCipher(settings.data_keys, settings.blind_index_key)
    tokens = [
        (k, cipher.encrypt(f"62284800{k:011d}", context=ACCOUNT_CONTEXT)) for k in range(1000)
    ]
    settled = _months_back(period, 1)
    back_pay_from = _months_back(period, 3)
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA cache_size=-1048576")  # 1 GiB for the set-up only: faster loading
        db.execute("CREATE TEMP TABLE tokens (k INTEGER PRIMARY KEY, tok TEXT NOT NULL)")
        db.executemany("INSERT INTO tokens VALUES (?, ?)", tokens)
        # Persons with random UUIDs, as the service makes them: rows are not stored in id order.
        db.execute(
            """
            CREATE TEMP TABLE persons AS
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows),
            r AS (SELECT i, lower(hex(randomblob(16))) AS p, lower(hex(randomblob(16))) AS e
                FROM n)
            SELECT i,
                substr(p, 1, 8) || '-' || substr(p, 9, 4) || '-4' || substr(p, 14, 3) || '-a'
                    || substr(p, 18, 3) || '-' || substr(p, 21, 12) AS person_id,
                substr(e, 1, 8) || '-' || substr(e, 9, 4) || '-4' || substr(e, 14, 3) || '-b'
                    || substr(e, 18, 3) || '-' || substr(e, 21, 12) AS enrollment_id
            FROM r
            """,
            {"rows": rows},
        )
        db.execute(
            """
            INSERT INTO enrollments (id, program, person_id, payee_id, "case", status,
                status_reason, region_code, source, source_ref, starts_on, pays_from,
                pays_until, settled_through, reasons, prepared_by, confirmed_by, confirmed_at,
                ended_reason, ends_after, created_at, version)
            SELECT enrollment_id, :program, person_id, person_id, '', 'active',
                NULL,
                :region || printf('%03d', (i % 30) + 1) || printf('%03d', ((i / 30) % 10) + 1),
                'certificate', printf('c-%010d', i), '2020-01-01',
                CASE WHEN i % 20 = 0 THEN :back_pay_from ELSE '2020-01' END,
                NULL,
                CASE WHEN i % 20 = 0 THEN NULL ELSE :settled END,
                '[]', 'system', 'officer-c', '2020-01-02 00:00:00.000000',
                NULL, NULL, '2020-01-01 00:00:00.000000', 1
            FROM persons
            """,
            {
                "program": PROGRAM,
                "region": REGION,
                "back_pay_from": back_pay_from,
                "settled": settled,
            },
        )
        db.execute(
            """
            INSERT INTO payee_accounts (person_id, account_name, bank_name, account_no_enc,
                account_no_masked, updated_by, updated_at, version)
            SELECT person_id, '王芳', '浙江农商银行', (SELECT tok FROM tokens WHERE k = i % 1000),
                '***************0001', 'bench', '2020-01-01 00:00:00.000000', 1
            FROM persons WHERE i % 10 != 0
            """
        )
        # The bare statement's target: a copy of payment_lines with the same indexes (what
        # writing that many lines costs on this machine, whatever computes them).
        db.execute("CREATE TABLE bench_bare AS SELECT * FROM payment_lines WHERE 0")
        db.execute("CREATE TABLE bench_bare_plain AS SELECT * FROM payment_lines WHERE 0")
        for name, columns, unique in (
            ("ix_bench_bare_run_line", "run_id, line_no", "UNIQUE "),
            ("ix_bench_bare_run_status", "run_id, status", ""),
            ("ix_bench_bare_enrollment", "enrollment_id", ""),
            ("ix_bench_bare_payee", "payee_id", ""),
        ):
            db.execute(f"CREATE {unique}INDEX {name} ON bench_bare ({columns})")
        db.commit()
    finally:
        db.close()


# -- the children ------------------------------------------------------------------------------


def _peak_mb() -> dict[str, float]:
    """ru_maxrss (KiB on Linux) and, as a cross-check, VmHWM: Linux keeps ru_maxrss across
    exec, so a child started by a big parent would inherit its figure (the parent stays lean
    for that reason: even the load runs in a child)."""
    hwm = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return {
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "vmhwm_mb": hwm,
    }


async def _child_ours(url: str, period: str) -> dict[str, Any]:
    from services.benefits.models import KERNEL
    from services.benefits.payments import PaymentRunIn, create_run
    from shared.auth import Principal, Role
    from shared.config import Settings
    from shared.db import Database
    from shared.events.outbox import Outbox, UnitOfWork

    settings = Settings()
    db = Database(
        url, pool_size=settings.db_pool_size, sqlite_cache_mib=settings.db_sqlite_cache_mib
    )
    await db.ping()
    principal = Principal(sub="bench-officer", role=Role.county_officer, region=REGION)
    body = PaymentRunIn(program=PROGRAM, period=period, region=REGION)
    baseline = _peak_mb()["ru_maxrss_mb"]
    started = time.perf_counter()
    async with UnitOfWork(db, Outbox("benefits", KERNEL)) as uow:
        status, run = await create_run(uow, body, principal)
        await uow.commit()
    seconds = time.perf_counter() - started
    await db.dispose()
    assert status == 201, status
    return {
        "seconds": seconds,
        **_peak_mb(),
        "baseline_mb": baseline,
        "lines": run.line_count + run.held_count,
        "line_count": run.line_count,
        "held_count": run.held_count,
        "total_fen": run.total_fen,
        "code": run.code,
    }


async def _child_bare(url: str, rows: int, table: str) -> dict[str, Any]:
    from sqlalchemy import text

    from services.benefits.payments import ACCOUNT_CONTEXT
    from shared.config import Settings
    from shared.crypto import FieldCipher
    from shared.db import Database

    settings = Settings()
    token = FieldCipher(settings.data_keys, settings.blind_index_key).encrypt(
        "6228480000000000001", context=ACCOUNT_CONTEXT
    )
    db = Database(
        url, pool_size=settings.db_pool_size, sqlite_cache_mib=settings.db_sqlite_cache_mib
    )
    await db.ping()
    baseline = _peak_mb()["ru_maxrss_mb"]
    started = time.perf_counter()
    async with db.session() as s:
        # The same page cache as the draft's connection (shared/db.py's pragmas): a fair ceiling.
        result = await s.execute(
            text(
                f"INSERT INTO {table} (id, run_id, line_no, enrollment_id, claim_id, person_id,"
                " payee_id, program, region_code, period_from, period_until, months, amount_fen,"
                " settled_before, account_no_enc, account_name, status, failure_reason)"
                " SELECT rowid, 'bare', rowid, id, NULL, person_id, payee_id, program,"
                " region_code, pays_from, pays_from, 1, 12000, settled_through, :token, '王芳',"
                " 'pending', NULL FROM enrollments LIMIT :rows"
            ),
            {"rows": rows, "token": token},
        )
        await s.commit()
    seconds = time.perf_counter() - started
    await db.dispose()
    return {
        "seconds": seconds,
        **_peak_mb(),
        "baseline_mb": baseline,
        "lines": result.rowcount,  # type: ignore[attr-defined]
    }


def _reset(path: Path) -> None:
    """Between repetitions: the run and the bare rows go (DELETE without WHERE truncates)."""
    db = sqlite3.connect(path)
    try:
        for table in (
            "payment_lines",
            "run_rates",
            "payment_runs",
            "bench_bare",
            "bench_bare_plain",
        ):
            db.execute(f"DELETE FROM {table}")
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def _warm(path: Path) -> None:
    """Read every page of the tables both statements read, so neither pays a cold cache."""
    db = sqlite3.connect(path)
    try:
        db.execute("SELECT SUM(LENGTH(id) + LENGTH(region_code)) FROM enrollments").fetchone()
        db.execute("SELECT COUNT(*) FROM enrollments INDEXED BY ix_enrollments_run").fetchone()
        db.execute("SELECT SUM(LENGTH(account_no_enc)) FROM payee_accounts").fetchone()
    finally:
        db.close()


def _spawn(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# -- report -------------------------------------------------------------------------------------


def main() -> None:
    rows = int(os.environ.get("BENCH_ROWS", "1000000"))
    repeat = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
    facts = _spawn("period")  # the parent imports nothing of the service: it stays lean
    period, cache_mib = facts["period"], facts["cache_mib"]
    with tempfile.TemporaryDirectory(prefix="lingju-bench-") as tmp:
        path = Path(tmp) / "benefits.db"
        url = f"sqlite+aiosqlite:///{path}"
        print(f"loading {rows:,} enrollments into {path} ...", flush=True)
        started = time.perf_counter()
        _spawn("load", str(path), str(rows), period)
        load_seconds = time.perf_counter() - started
        db_mb = path.stat().st_size / 2**20
        print(
            f"loaded in {load_seconds:.1f} s ({db_mb:.0f} MB); drafting {PROGRAM} {period} "
            f"{REGION}, {repeat} time(s) each",
            flush=True,
        )
        ours_runs: list[dict[str, Any]] = []
        bare_runs: list[dict[str, Any]] = []
        plain_runs: list[dict[str, Any]] = []
        for i in range(repeat):
            _reset(path)
            _warm(path)
            ours_runs.append(_spawn("ours", url, period))
            _warm(path)
            lines = str(ours_runs[-1]["lines"])
            bare_runs.append(_spawn("bare", url, lines, "bench_bare"))
            _warm(path)
            plain_runs.append(_spawn("bare", url, lines, "bench_bare_plain"))
            o, b, u = (r[-1]["seconds"] for r in (ours_runs, bare_runs, plain_runs))
            print(f"  #{i + 1}: ours {o:.2f} s, bare {b:.2f} s (unindexed {u:.2f} s)", flush=True)
    ours = {**ours_runs[-1], "seconds": _median([r["seconds"] for r in ours_runs])}
    ours["ru_maxrss_mb"] = max(r["ru_maxrss_mb"] for r in ours_runs)
    bare = {**bare_runs[-1], "seconds": _median([r["seconds"] for r in bare_runs])}
    bare["ru_maxrss_mb"] = max(r["ru_maxrss_mb"] for r in bare_runs)
    plain_seconds = _median([r["seconds"] for r in plain_runs])
    ratio = ours["seconds"] / bare["seconds"] if bare["seconds"] else float("inf")
    peak = ours["ru_maxrss_mb"]
    checks = [
        ("draft time vs bare INSERT...SELECT", f"{ours['seconds']:.2f} s",
         f"{bare['seconds']:.2f} s", f"{ratio:.2f}x", f"<= {TARGET_RATIO:.0f}x",
         ratio <= TARGET_RATIO),
        ("draft time", f"{ours['seconds']:.2f} s", "-", "-", f"< {TARGET_SECONDS:.0f} s",
         ours["seconds"] < TARGET_SECONDS),
        ("draft peak RSS (ru_maxrss, child)", f"{peak:.0f} MB",
         f"{bare['ru_maxrss_mb']:.0f} MB", f"{peak / bare['ru_maxrss_mb']:.2f}x",
         f"< {TARGET_MB:.0f} MB", peak < TARGET_MB),
    ]  # fmt: skip
    header = ("scenario", "ours", "ceiling", "ratio", "target", "result")
    table = [header, *[(*c[:5], "pass" if c[5] else "FAIL") for c in checks]]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    print()
    print(
        f"payment run draft: {rows:,} enrollments, {ours['lines']:,} lines "
        f"({ours['line_count']:,} to the bank, {ours['held_count']:,} held), "
        f"total {ours['total_fen']:,} fen; median of {repeat}"
    )
    for i, r in enumerate(table):
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(
        f"ceiling: the bare statement into a copy of payment_lines with its four indexes; into "
        f"a table without indexes it takes {plain_seconds:.2f} s.\n"
        f"peak RSS includes the interpreter and imports ({ours['baseline_mb']:.0f} MB before the "
        f"timed work) and the draft's {cache_mib} MiB SQLite page cache; "
        f"VmHWM {ours['vmhwm_mb']:.0f} MB."
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "bench": "payment_run",
        "at": stamp,
        "rows": rows,
        "repeat": repeat,
        "period": period,
        "program": PROGRAM,
        "region": REGION,
        "load_seconds": load_seconds,
        "database_mb": db_mb,
        "ours": ours,
        "bare": bare,
        "bare_unindexed_seconds": plain_seconds,
        "runs": {"ours": ours_runs, "bare": bare_runs, "bare_unindexed": plain_runs},
        "ratio": ratio,
        "targets": {"ratio": TARGET_RATIO, "seconds": TARGET_SECONDS, "peak_mb": TARGET_MB},
        "passed": all(c[5] for c in checks),
        "memory_method": "resource.getrusage(RUSAGE_SELF).ru_maxrss in each child process",
        "machine": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }
    out = RESULTS / f"payment_run-{stamp}.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"results: {out.relative_to(ROOT)}")
    if rows < FULL_SCALE:
        # Fixed costs (validation, locks, the rate table) dominate small runs: the targets are
        # for a million enrollments, so a smaller run reports but does not fail.
        print(f"(targets apply to {FULL_SCALE:,} enrollments; this run only reports)")
    elif not report["passed"]:
        sys.exit(1)


def _child(args: list[str]) -> dict[str, Any]:
    kind = args[0]
    if kind == "period":
        from shared.config import Settings
        from shared.db import sqlite_cache_kib

        settings = Settings()
        kib = sqlite_cache_kib(settings.db_pool_size, settings.db_sqlite_cache_mib)
        return {"period": _period(), "cache_mib": round(kib / 1024, 1)}
    if kind == "load":
        load(Path(args[1]), int(args[2]), args[3])
        return {}
    if kind == "ours":
        return asyncio.run(_child_ours(args[1], args[2]))
    return asyncio.run(_child_bare(args[1], int(args[2]), args[3]))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2:])))
    else:
        main()
