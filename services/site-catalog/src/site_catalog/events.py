"""The events the site catalogue publishes on ``ti.sites`` (``data`` is the whole site)."""

from __future__ import annotations

from ti_shared.events import TOPIC_SITES, EventSpec, event_type

from site_catalog.schemas import Change, SiteResource

SITE_LABELLED = EventSpec(
    type=event_type("site", "labelled"),
    topic=TOPIC_SITES,
    data_model=SiteResource,
    description="A site entered the catalogue (version 1); data is the whole site.",
)
SITE_UPDATED = EventSpec(
    type=event_type("site", "updated"),
    topic=TOPIC_SITES,
    data_model=SiteResource,
    description="A site changed (other than being withdrawn); data is the whole site after the change.",
)
SITE_WITHDRAWN = EventSpec(
    type=event_type("site", "withdrawn"),
    topic=TOPIC_SITES,
    data_model=SiteResource,
    description="A site's status became withdrawn; data is the whole site after the change.",
)

EVENTS: tuple[EventSpec, ...] = (SITE_LABELLED, SITE_UPDATED, SITE_WITHDRAWN)

#: the event each kind of change publishes
EVENT_OF_CHANGE: dict[Change, EventSpec] = {
    "labelled": SITE_LABELLED,
    "updated": SITE_UPDATED,
    "withdrawn": SITE_WITHDRAWN,
}
