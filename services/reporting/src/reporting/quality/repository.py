"""The queries of the quality report: the reporting engine's entity states (read, never written)."""

from __future__ import annotations

from ti_shared.service import Repository

from reporting.domain import AsOf, Entity, Row, Stamp
from reporting.repository import generations, rows


class QualityRepository(Repository):
    async def known_territory(self, territory_id: str) -> bool:
        generation = await generations.current_generation(self.session)
        return await generations.territory_known(self.session, generation, territory_id)

    async def states(self, as_of: AsOf | None) -> dict[Entity, list[tuple[Row, Stamp]]]:
        """Every entity's state — the current one, or the latest whose event time is within ``as_of`` —
        with what set it: the states ``as_of`` indicators are computed over."""
        generation = await generations.current_generation(self.session)
        return await rows.states_as_of(self.session, generation, as_of)
