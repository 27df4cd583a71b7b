"""Programs with their effective-dated amounts, and the explainable eligibility check."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.benefits.api.access import Caller
from services.benefits.domain.eligibility import Child, Facts, Person, evaluate
from services.benefits.domain.programs import AmountRule, Period, Program, rule_in_force
from services.benefits.events import programs
from services.benefits.facts import load_facts
from services.benefits.models import PersonFacts
from shared.errors import LocalizedValueError, not_found, problem_responses
from shared.service import RuntimeDep

router = APIRouter(tags=["programs"], responses=problem_responses())

# Year 0000 is no calendar month (Period refuses it): leading digit 1-9.
PERIOD_PATTERN = r"^[1-9]\d{3}-(0[1-9]|1[0-2])$"


def _period(text: str | None, today: date) -> Period:
    """The month asked about, or the county's month on ``today``."""
    return Period.parse(text) if text else Period.of(today)


# -- GET /programs ----------------------------------------------------------------------------


class AmountRuleOut(BaseModel):
    from_period: str = Field(examples=["2014-01"])
    until_period: str | None = None
    region: str = Field(description='Division-code prefix; "" is the national default')
    case: str = ""
    amount_fen: int
    per: Literal["month", "year"]
    source: str


class CurrentAmountOut(AmountRuleOut):
    monthly_fen: int = Field(description="Fen due for one month of the period asked about")


class ProgramOut(BaseModel):
    code: str
    name: str
    name_en: str
    source: str
    founded_by_certificate: str | None
    cap_fen: int | None
    cap_source: str
    period: str = Field(description="The period the current amounts are for")
    region: str = Field(description="The region the current amounts are for")
    current: list[CurrentAmountOut] = Field(description="Rule in force, one per case")
    amounts: list[AmountRuleOut] = Field(description="Every effective-dated rule, with sources")


def _rule_out(a: AmountRule) -> AmountRuleOut:
    return AmountRuleOut(
        from_period=str(a.from_period),
        until_period=str(a.until_period) if a.until_period else None,
        region=a.region,
        case=a.case,
        amount_fen=a.amount_fen,
        per=a.per,
        source=a.source,
    )


def _program_out(program: Program, region: str, period: Period) -> ProgramOut:
    current: list[CurrentAmountOut] = []
    for case in dict.fromkeys(a.case for a in program.amounts):
        rule = rule_in_force(program, region, period, case)
        if rule is not None:
            current.append(
                CurrentAmountOut(
                    **_rule_out(rule).model_dump(), monthly_fen=rule.monthly_fen(period)
                )
            )
    return ProgramOut(
        code=program.code,
        name=program.name,
        name_en=program.name_en,
        source=program.source,
        founded_by_certificate=program.founded_by_certificate,
        cap_fen=program.cap_fen,
        cap_source=program.cap_source,
        period=str(period),
        region=region,
        current=current,
        amounts=[_rule_out(a) for a in program.amounts],
    )


@router.get(
    "/programs",
    response_model=list[ProgramOut],
    summary="Benefit programs: the amount in force for the caller's region, and every rule",
)
async def list_programs(
    principal: Caller,
    rt: RuntimeDep,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN)] = None,
) -> list[ProgramOut]:
    # A token without a region (a national admin) sees the national defaults.
    when = _period(period, rt.clock.today())
    return [_program_out(p, principal.region, when) for p in programs().values()]


# -- POST /eligibility/check --------------------------------------------------------------------


class PersonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sex: Literal["female", "male"]
    birth_date: date
    household_type: Literal["rural", "urban"]
    region_code: str = Field(pattern=r"^\d{12}$", examples=["330102001001"])
    died_on: date | None = None

    @model_validator(mode="after")
    def _death_after_birth(self) -> PersonIn:
        if self.died_on is not None and self.died_on < self.birth_date:
            raise LocalizedValueError("去世日期早于出生日期", "died_on is before birth_date")
        return self


class ChildIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    birth_date: date
    alive: bool = True
    disabled: bool = False
    died_on: date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ChildIn:
        if self.died_on is not None and self.alive:
            raise LocalizedValueError(
                "填写了去世日期的子女不能标记为健在", "A child with died_on cannot be alive"
            )
        if self.died_on is not None and self.died_on < self.birth_date:
            raise LocalizedValueError("去世日期早于出生日期", "died_on is before birth_date")
        return self


class EligibilityCheckIn(BaseModel):
    """Either the facts (an officer states them), or a ``person_id`` whose facts benefits
    takes from its own read models (persons, families, children, certificates)."""

    model_config = ConfigDict(extra="forbid")

    person: PersonIn | None = None
    children: list[ChildIn] = Field(default_factory=list, max_length=30)
    holds_only_child_honor: bool = False
    person_id: str | None = Field(
        default=None, min_length=1, max_length=36, description="Check a known resident"
    )
    disabled_child_ids: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="With person_id: children the officer declares disabled",
    )
    as_of: str | None = Field(
        default=None, pattern=PERIOD_PATTERN, description="Period asked about; default: now"
    )

    @model_validator(mode="after")
    def _one_source_of_facts(self) -> EligibilityCheckIn:
        if (self.person is None) == (self.person_id is None):
            raise LocalizedValueError(
                "请提供 person（事实）或 person_id（已登记居民）之一",
                "Send either person (the facts) or person_id (a known resident)",
            )
        if self.person_id is not None and (self.children or self.holds_only_child_honor):
            raise LocalizedValueError(
                "按 person_id 核查时，子女与证件信息取自系统记录，请勿填写",
                "With person_id, children and certificates come from the records",
            )
        return self

    def facts(self) -> Facts:
        assert self.person is not None
        return Facts(
            person=Person(**self.person.model_dump()),
            children=tuple(Child(**c.model_dump()) for c in self.children),
            holds_only_child_honor=self.holds_only_child_honor,
        )


class EligibilityOut(BaseModel):
    program: str
    name: str
    name_en: str
    eligible: bool
    from_period: str | None
    until_period: str | None
    rule: str
    case: str
    amount_per_month_fen: int = Field(
        description="Per person (per child for the childcare subsidy) for as_of; 0 if not due"
    )
    cap_fen: int | None
    reasons_zh: list[str]
    reasons_en: list[str]


class EligibilityCheckOut(BaseModel):
    as_of: str
    results: list[EligibilityOut]


@router.post(
    "/eligibility/check",
    response_model=EligibilityCheckOut,
    summary=(
        "Which programs a person is entitled to, from and until which month, by which rule "
        "and facts (the facts as sent, or a known resident's from benefits' records)"
    ),
)
async def check_eligibility(
    body: EligibilityCheckIn, principal: Caller, rt: RuntimeDep
) -> EligibilityCheckOut:
    as_of = _period(body.as_of, rt.clock.today())
    if body.person_id is not None:
        async with rt.db.session() as s:
            row = await s.get(PersonFacts, body.person_id)
            if row is None:
                raise not_found("居民", "Person")
            principal.require_region(row.region_code)
            facts = await load_facts(
                s, body.person_id, disabled_child_ids=frozenset(body.disabled_child_ids)
            )
        assert facts is not None
    else:
        assert body.person is not None
        principal.require_region(body.person.region_code)
        facts = body.facts()
    results: list[EligibilityOut] = []
    for program in programs().values():
        e = evaluate(program, facts, as_of)
        rule = rule_in_force(program, facts.person.region_code, as_of, e.case)
        results.append(
            EligibilityOut(
                program=program.code,
                name=program.name,
                name_en=program.name_en,
                eligible=e.eligible,
                from_period=str(e.from_period) if e.from_period else None,
                until_period=str(e.until_period) if e.until_period else None,
                rule=e.rule,
                case=e.case,
                amount_per_month_fen=rule.monthly_fen(as_of) if e.eligible and rule else 0,
                cap_fen=program.cap_fen,
                reasons_zh=e.reasons_zh,
                reasons_en=e.reasons_en,
            )
        )
    return EligibilityCheckOut(as_of=str(as_of), results=results)
