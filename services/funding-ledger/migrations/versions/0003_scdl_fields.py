"""Grants keep their SCDL « subventions » fields (``scdl``); grants are found by operator and decision
date (the SCDL identity of a row without operator_ref); the default operators get their SIRET (the
SCDL export's ``idAttribuant``).

Revision ID: 0003_scdl_fields
Revises: 0002_outbox_relay
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from ti_shared.db import JSONType

revision: str = "0003_scdl_fields"
down_revision: str | None = "0002_outbox_relay"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the SIRET of each default operator's head office (Luhn-valid; Banque des Territoires is a part of
#: the Caisse des Dépôts)
SIRETS = {
    "ANCT": "13002603200016",
    "ADEME": "38529030900454",
    "BPI": "32025248901075",
    "BDT": "18002002600019",
}


def upgrade() -> None:
    op.add_column("grant", sa.Column("scdl", JSONType, nullable=True))
    op.create_index("ix_grant_operator_decision_date", "grant", ["operator", "decision_date"])
    operator = sa.table("operator", sa.column("code", sa.String), sa.column("siret", sa.String))
    for code, siret in SIRETS.items():
        op.execute(operator.update().where(operator.c.code == code, operator.c.siret.is_(None)).values(siret=siret))


def downgrade() -> None:
    op.drop_index("ix_grant_operator_decision_date", table_name="grant")
    op.drop_column("grant", "scdl")
