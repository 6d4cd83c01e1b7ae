"""The funding ledger's tables: operators, programmes, grants, the append-only ledger, batches."""

from __future__ import annotations

import sqlalchemy as sa
from ti_shared.db import BigIntPK, Instant, JSONType

metadata = sa.MetaData()

Money = sa.Numeric(14, 2)

operator = sa.Table(
    "operator",
    metadata,
    sa.Column("code", sa.String(16), primary_key=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("siret", sa.String(14), nullable=True),
    sa.Column("updated_at", Instant, nullable=False),
)

programme = sa.Table(
    "programme",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("updated_at", Instant, nullable=False),
)

programme_operator = sa.Table(
    "programme_operator",
    metadata,
    sa.Column("programme_code", sa.String(64), sa.ForeignKey("programme.code"), primary_key=True),
    sa.Column("operator_code", sa.String(16), sa.ForeignKey("operator.code"), primary_key=True),
)

grant = sa.Table(
    "grant",
    metadata,
    sa.Column("operator", sa.String(16), primary_key=True),
    sa.Column("operator_ref", sa.String(64), primary_key=True),
    sa.Column("programme", sa.String(64), nullable=False),
    sa.Column("beneficiary_name", sa.String(256), nullable=False),
    sa.Column("beneficiary_siret", sa.String(14), nullable=True),
    sa.Column("beneficiary_rna", sa.String(10), nullable=True),
    sa.Column("beneficiary_kind", sa.String(32), nullable=False),
    sa.Column("territory_id", sa.String(16), nullable=True),
    sa.Column("commune_insee", sa.String(5), nullable=True),
    sa.Column("action_id", sa.String(64), nullable=True),
    sa.Column("object", sa.String(256), nullable=False),
    sa.Column("amount_eur", Money, nullable=False),
    sa.Column("investment_eur", Money, nullable=True),
    sa.Column("decision_date", sa.Date(), nullable=False),
    sa.Column("jobs_forecast", sa.Integer(), nullable=True),
    sa.Column("jobs_conditional", sa.Integer(), nullable=True),
    sa.Column("contributions", JSONType, nullable=False),
    sa.Column("value_chain", sa.String(32), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("disbursed_eur", Money, nullable=False),
    sa.Column("disbursements", JSONType, nullable=False),
    #: the SCDL « subventions » fields the other columns do not hold (``ScdlFields``), null when none
    sa.Column("scdl", JSONType, nullable=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_at", Instant, nullable=False),
    sa.Column("updated_at", Instant, nullable=False),
    sa.Index("ix_grant_programme", "programme"),
    sa.Index("ix_grant_territory_id", "territory_id"),
    sa.Index("ix_grant_status", "status"),
    sa.Index("ix_grant_operator_decision_date", "operator", "decision_date"),
)

#: append-only: one row per money movement of a grant; the grant's amounts are their sums
grant_ledger_entry = sa.Table(
    "grant_ledger_entry",
    metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("operator", sa.String(16), nullable=False),
    sa.Column("operator_ref", sa.String(64), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),  # position among the entries of one grant version
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("amount_delta_eur", Money, nullable=False),
    sa.Column("investment_delta_eur", Money, nullable=False),
    sa.Column("disbursement_ref", sa.String(64), nullable=True),
    sa.Column("paid_on", sa.Date(), nullable=True),
    sa.Column("grant_version", sa.Integer(), nullable=False),
    sa.Column("recorded_at", Instant, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.UniqueConstraint("operator", "operator_ref", "grant_version", "seq", name="uq_grant_ledger_entry_seq"),
    sa.UniqueConstraint("operator", "operator_ref", "disbursement_ref", name="uq_grant_ledger_entry_disbursement"),
)

grant_batch = sa.Table(
    "grant_batch",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("operator", sa.String(16), nullable=True),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("media_type", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("received_at", Instant, nullable=False),
    sa.Column("counts", JSONType, nullable=False),
    sa.Column("rows", JSONType, nullable=False),
)
