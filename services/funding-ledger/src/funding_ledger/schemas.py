"""Pydantic models: requests, the grant resource (= event data), ledger views, batches and their reports."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    WithJsonSchema,
    field_validator,
)
from ti_shared.types import CommuneCode, Decimal2, PositiveDecimal2, Siret, format_decimal
from ti_shared.types import IsoDate as AnyIsoDate
from ti_shared.vocabulary import BeneficiaryKind as BeneficiaryKind
from ti_shared.vocabulary import GrantStatus as GrantStatus
from ti_shared.vocabulary import Objective as Objective
from ti_shared.vocabulary import ValueChain as ValueChain

OPERATOR_REF_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
OPERATOR_CODE_PATTERN = r"^[A-Z][A-Z0-9_]{1,15}$"
PROGRAMME_CODE_PATTERN = r"^[a-z][a-z0-9_]{1,63}$"
RNA_PATTERN = r"^W[0-9]{9}$"
ACTION_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
TERRITORY_ID_PATTERN = r"^ti-[0-9]{4}$"

BatchMode = Literal["partial", "atomic"]
RowOutcome = Literal["created", "updated", "unchanged", "rejected"]
EntryKind = Literal["commitment", "amendment", "cancellation", "disbursement"]

OBJECTIVES: tuple[str, ...] = Objective.__args__  # type: ignore[attr-defined]
VALUE_CHAINS: tuple[str, ...] = ValueChain.__args__  # type: ignore[attr-defined]
BENEFICIARY_KINDS: tuple[str, ...] = BeneficiaryKind.__args__  # type: ignore[attr-defined]

IsoDate = Annotated[AnyIsoDate, WithJsonSchema({"type": "string", "format": "date", "examples": ["2024-06-12"]})]


Count = Annotated[int, Strict(), Field(ge=0, le=1_000_000)]
SignedMoney = Annotated[
    Decimal,
    PlainSerializer(format_decimal, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "examples": ["-250000.00"]}),
]

GRANT_EXAMPLE: dict[str, Any] = {
    "programme": "fonds_vert_ti_te",
    "beneficiary": {"name": "AEROMETAL", "siret": "73282932000074", "rna": None, "kind": "entreprise"},
    "territory_id": "ti-2705",
    "commune_insee": "71076",
    "action_id": None,
    "object": "Recyclage de métaux stratégiques",
    "amount_eur": "1500000.00",
    "investment_eur": "4800000.00",
    "decision_date": "2024-06-12",
    "jobs_forecast": 12,
    "jobs_conditional": 6,
    "contributions": ["climate_mitigation", "circular_economy"],
    "value_chain": "economie_circulaire",
    "status": "committed",
}


class Beneficiary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256, description="Raison sociale or name of the beneficiary")
    siret: Siret | None = Field(default=None, description="14 digits, Luhn-valid (La Poste rule included)")
    rna: Annotated[str, Field(pattern=RNA_PATTERN)] | None = Field(default=None, description="RNA number W + 9 digits")
    kind: BeneficiaryKind

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class GrantBody(BaseModel):
    """A grant as an operator pushes it (CONTRACT §4)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [GRANT_EXAMPLE]})

    programme: str = Field(min_length=1, max_length=64, description="A programme run by the operator")
    beneficiary: Beneficiary
    territory_id: Annotated[str, Field(pattern=TERRITORY_ID_PATTERN)] | None = None
    commune_insee: CommuneCode | None = None
    action_id: Annotated[str, Field(pattern=ACTION_ID_PATTERN)] | None = None
    object: str = Field(min_length=1, max_length=256)
    amount_eur: PositiveDecimal2
    investment_eur: Decimal2 | None = None
    decision_date: IsoDate
    jobs_forecast: Count | None = None
    jobs_conditional: Count | None = None
    contributions: list[Objective] = Field(default_factory=list, max_length=6)
    value_chain: ValueChain | None = None
    status: GrantStatus = "committed"

    @field_validator("object")
    @classmethod
    def _object_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("contributions")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat an objective")
        return sorted(value, key=OBJECTIVES.index)


class Disbursement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str = Field(pattern=OPERATOR_REF_PATTERN, description="The operator's payment reference (idempotency key)")
    amount_eur: PositiveDecimal2
    paid_on: IsoDate


class DisbursementBody(Disbursement):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"ref": "DP-1", "amount_eur": "500000.00", "paid_on": "2024-09-01"}]},
    )


class Grant(GrantBody):
    """The grant resource: GET returns it and every ``grant.*`` event carries it as ``data``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    **GRANT_EXAMPLE,
                    "id": "ADEME/FV-2024-0042",
                    "operator": "ADEME",
                    "operator_ref": "FV-2024-0042",
                    "version": 2,
                    "updated_at": "2024-09-01T08:30:00Z",
                    "disbursed_eur": "500000.00",
                    "disbursements": [{"ref": "DP-1", "amount_eur": "500000.00", "paid_on": "2024-09-01"}],
                }
            ]
        },
    )

    id: str = Field(description="OPERATOR/operator_ref")
    operator: str
    operator_ref: str
    version: int
    updated_at: datetime
    disbursed_eur: Decimal2
    disbursements: list[Disbursement]


class LedgerEntry(BaseModel):
    seq: int
    kind: EntryKind
    amount_delta_eur: SignedMoney
    investment_delta_eur: SignedMoney
    disbursement_ref: str | None
    paid_on: date | None
    grant_version: int
    recorded_at: datetime
    actor: str
    committed_eur: SignedMoney = Field(description="Running total of commitments, amendments and cancellations")
    disbursed_eur: SignedMoney = Field(description="Running total of disbursements")


class GrantLedger(BaseModel):
    id: str
    committed_eur: SignedMoney
    disbursed_eur: SignedMoney
    investment_eur: SignedMoney
    entries: list[LedgerEntry]


class OperatorBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"label": "ADEME", "siret": None}]})

    label: str = Field(min_length=1, max_length=200)
    siret: Siret | None = None


class Operator(OperatorBody):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"code": "ADEME", "label": "ADEME", "siret": None}]})

    code: str


class ProgrammeBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"label": "Fonds vert – volet Territoires d'industrie", "operators": ["ADEME"]}]
        },
    )

    label: str = Field(min_length=1, max_length=200)
    operators: list[Annotated[str, Field(pattern=OPERATOR_CODE_PATTERN)]] = Field(min_length=1, max_length=20)


class Programme(ProgrammeBody):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"code": "fonds_vert_ti_te", "label": "Fonds vert – volet Territoires d'industrie", "operators": ["ADEME"]}
            ]
        },
    )

    code: str


class OperatorList(BaseModel):
    items: list[Operator]


class ProgrammeList(BaseModel):
    items: list[Programme]


class FieldMessage(BaseModel):
    loc: list[str | int]
    msg: str


class BatchRow(BaseModel):
    row: int = Field(description="1-based position of the item (or data line) in the batch")
    operator: str | None
    operator_ref: str | None
    outcome: RowOutcome
    version: int | None = None
    errors: list[FieldMessage] = Field(default_factory=list, description="Fatal: the row is rejected")
    warnings: list[FieldMessage] = Field(default_factory=list, description="Not fatal: the row is applied")


class BatchCounts(BaseModel):
    total: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    warnings: int


class GrantBatch(BaseModel):
    id: str
    status: Literal["completed", "completed_with_errors", "rejected"]
    mode: BatchMode
    received_at: datetime
    counts: BatchCounts
    rows: list[BatchRow]


BATCH_EXAMPLE: dict[str, Any] = {
    "mode": "partial",
    "items": [{"operator": "ADEME", "operator_ref": "FV-2024-0042", **GRANT_EXAMPLE}],
}


class BatchItem(GrantBody):
    """One grant of a JSON batch: its key and its fields (an invalid item is reported on its row)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": BATCH_EXAMPLE["items"]})

    operator: str = Field(pattern=OPERATOR_CODE_PATTERN)
    operator_ref: str = Field(pattern=OPERATOR_REF_PATTERN)


class GrantBatchBody(BaseModel):
    """The JSON body of ``POST /v1/grant-batches`` (read by ``batches.parse_json_batch``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [BATCH_EXAMPLE]})

    items: list[BatchItem]
    mode: BatchMode = "partial"
