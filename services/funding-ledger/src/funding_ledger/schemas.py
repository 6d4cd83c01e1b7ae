"""Pydantic models: requests, the grant resource (= event data), ledger views, batches and their reports."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
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
#: an objective's place in :data:`OBJECTIVES`, the order a grant's contributions are kept in
_OBJECTIVE_RANK = {objective: rank for rank, objective in enumerate(OBJECTIVES)}
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


#: SCDL's ``nature``: one of these, or both joined by ``;``
SCDL_NATURES: tuple[str, ...] = ("aide en numéraire", "aide en nature")
SCDL_NATURE_VALUES: tuple[str, ...] = (*SCDL_NATURES, "aide en numéraire;aide en nature", "aide en nature;aide en numéraire")
#: SCDL's ``datesPeriodeVersement``: a date or a period, ISO 8601
PAYMENT_DATES_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(/[0-9]{4}-[0-9]{2}-[0-9]{2})?$"
SHARE_MIN, SHARE_MAX = Decimal("0.01"), Decimal("1")


def _share(value: Decimal) -> Decimal:
    if not value.is_finite() or not SHARE_MIN <= value <= SHARE_MAX:
        raise ValueError("must lie between 0.01 and 1")
    if value != value.quantize(Decimal("0.0001")):
        raise ValueError("may have at most four decimals")
    return value


def format_share(value: Decimal) -> str:
    """``Decimal('0.05')`` → ``"0.05"``; at least two decimals (``"1.00"``), at most four."""
    text = f"{value.quantize(Decimal('0.0001')):f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


#: a share of a grant's amount (SCDL's ``pourcentageSubvention``): a decimal string, 0.01–1, ≤ 4 decimals
Share = Annotated[
    Decimal,
    AfterValidator(_share),
    PlainSerializer(format_share, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": r"^[01](\.[0-9]{1,4})?$", "examples": ["0.45"]}),
]


class ScdlFields(BaseModel):
    """The fields of SCDL « subventions » 2.1.1 that a grant's other fields do not already hold, under
    their SCDL names (``beneficiary``, ``object``, ``amount_eur`` and ``decision_date`` hold
    ``nomBeneficiaire``, ``idBeneficiaire``, ``rnaBeneficiaire``, ``objet``, ``montant`` and
    ``dateConvention``). Null: not given — the SCDL export then writes the value docs/imports.md
    gives (the operator's label and SIRET for the attributor, ``aide en numéraire``, …)."""

    model_config = ConfigDict(extra="forbid")

    nomAttribuant: str | None = Field(default=None, min_length=1, max_length=256, description="Null: the operator's label")
    idAttribuant: Siret | None = Field(default=None, description="Null: the operator's SIRET")
    referenceDecision: str | None = Field(default=None, min_length=1, max_length=256, description="The deliberation or decision")
    nature: Literal["aide en numéraire", "aide en nature", "aide en numéraire;aide en nature", "aide en nature;aide en numéraire"] | None = None
    conditionsVersement: str | None = Field(
        default=None, min_length=1, max_length=256, description="unique, échelonné, or a description of the terms"
    )
    datesPeriodeVersement: Annotated[str, Field(pattern=PAYMENT_DATES_PATTERN)] | None = Field(
        default=None, description="A date, or a period start/end (ISO 8601)", examples=["2024-09-01/2025-06-30"]
    )
    idRAE: str | None = Field(default=None, min_length=1, max_length=5, description="The aid's number in the Répertoire des aides aux entreprises")
    notificationUE: bool | None = Field(default=None, description="A de minimis aid notified to the European Commission")
    pourcentageSubvention: Share | None = Field(default=None, description="The beneficiary's share of the amount (1.00: the only one)")
    dispositifAide: str | None = Field(
        default=None, min_length=1, max_length=256, description="The aid scheme's id, when it names no programme of the platform"
    )

    def is_empty(self) -> bool:
        return all(value is None for value in vars(self).values())


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
    scdl: ScdlFields | None = Field(default=None, description="The SCDL « subventions » fields the others do not hold")

    @field_validator("scdl")
    @classmethod
    def _empty_scdl_is_none(cls, value: ScdlFields | None) -> ScdlFields | None:
        return None if value is not None and value.is_empty() else value

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
        return sorted(value, key=_OBJECTIVE_RANK.__getitem__)


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
    line: int | None = Field(default=None, description="A CSV batch: the row's line in the file (the header is line 1)")
    operator: str | None
    operator_ref: str | None
    outcome: RowOutcome
    version: int | None = None
    errors: list[FieldMessage] = Field(default_factory=list, description="Fatal: the row is rejected")
    warnings: list[FieldMessage] = Field(default_factory=list, description="Not fatal: the row is applied")


class ControlTotal(BaseModel):
    """What the operator's own books say a batch holds of one programme: how many grants, for how much
    (``mode=atomic``: a batch that does not match them is refused)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"programme": "fonds_vert_ti_te", "count": 1, "amount_eur": "1500000.00"}]}
    )

    programme: str = Field(pattern=PROGRAMME_CODE_PATTERN)
    count: Count
    amount_eur: Decimal2


class ControlFigures(BaseModel):
    count: int
    amount_eur: SignedMoney


class ControlCheck(BaseModel):
    """One programme's control totals: declared (null: the batch holds grants of a programme the
    operator declared nothing for), received (the rows accepted: created, updated or unchanged),
    difference (received − declared)."""

    programme: str
    declared: ControlFigures | None
    received: ControlFigures
    difference: ControlFigures
    status: Literal["match", "mismatch"]


class BatchControl(BaseModel):
    """The batch against the operator's control totals: ``match`` when every programme matches."""

    status: Literal["match", "mismatch"]
    programmes: list[ControlCheck]


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
    warnings: list[FieldMessage] = Field(
        default_factory=list, description="A CSV batch: the file's own (encoding, separator, header), not a row's"
    )
    control: BatchControl | None = Field(default=None, description="The operator's control totals, when the batch declared them")


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
    control: list[ControlTotal] | None = Field(
        default=None, description="The operator's own count and amount per programme: the report says whether the batch matches"
    )
