"""Operators, programmes (seeded with the contract's defaults), grants, their ledger, batches.

Revision ID: 0001
Revises:
Create Date: 2025-01-06
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from ti_shared.db import BigIntPK, Instant, JSONType
from ti_shared.migrations import create_infra_tables, drop_infra_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Money = sa.Numeric(14, 2)

OPERATORS = [
    ("ANCT", "Agence nationale de la cohésion des territoires"),
    ("ADEME", "Agence de l'environnement et de la maîtrise de l'énergie (ADEME)"),
    ("BPI", "Bpifrance"),
    ("BDT", "Banque des Territoires (Caisse des dépôts)"),
]
PROGRAMMES = [
    ("fonds_vert_ti_te", "Fonds vert – volet Territoires d'industrie en transition écologique", ["ADEME"]),
    ("rebond_industriel", "Programme de rebond industriel", ["BDT", "BPI"]),
    ("ingenierie_anct", "Crédits d'ingénierie de l'ANCT", ["ANCT"]),
    ("ingenierie_rebond", "Ingénierie du rebond industriel", ["BDT", "ANCT"]),
    ("cofinancement_chef_projet", "Cofinancement des chefs de projet Territoires d'industrie", ["ANCT"]),
    ("fabriques_prospectives", "Fabriques prospectives", ["ANCT", "BDT"]),
]


def upgrade() -> None:
    create_infra_tables(op)
    operator = op.create_table(
        "operator",
        sa.Column("code", sa.String(16), primary_key=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("siret", sa.String(14), nullable=True),
        sa.Column("updated_at", Instant, nullable=False),
    )
    programme = op.create_table(
        "programme",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
    )
    programme_operator = op.create_table(
        "programme_operator",
        sa.Column("programme_code", sa.String(64), sa.ForeignKey("programme.code"), primary_key=True),
        sa.Column("operator_code", sa.String(16), sa.ForeignKey("operator.code"), primary_key=True),
    )
    op.create_table(
        "grant",
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
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
    )
    op.create_index("ix_grant_programme", "grant", ["programme"])
    op.create_index("ix_grant_territory_id", "grant", ["territory_id"])
    op.create_index("ix_grant_status", "grant", ["status"])
    op.create_table(
        "grant_ledger_entry",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("operator", sa.String(16), nullable=False),
        sa.Column("operator_ref", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
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
    op.create_table(
        "grant_batch",
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
    now = datetime.now(UTC)
    op.bulk_insert(operator, [{"code": c, "label": label, "siret": None, "updated_at": now} for c, label in OPERATORS])
    op.bulk_insert(programme, [{"code": c, "label": label, "updated_at": now} for c, label, _ in PROGRAMMES])
    op.bulk_insert(
        programme_operator,
        [{"programme_code": c, "operator_code": o} for c, _, ops in PROGRAMMES for o in ops],
    )


def downgrade() -> None:
    for table in ("grant_batch", "grant_ledger_entry", "grant", "programme_operator", "programme", "operator"):
        op.drop_table(table)
    drop_infra_tables(op)
