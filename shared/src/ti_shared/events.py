"""The CloudEvents 1.0 envelope of CONTRACT §5, the topics, and the event-type registry."""

from __future__ import annotations

import builtins
import json
import os
import re
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

TOPIC_TERRITORIES = "ti.territories"
TOPIC_ACTIONS = "ti.actions"
TOPIC_GRANTS = "ti.grants"
TOPIC_SITES = "ti.sites"
TOPIC_DEAD_LETTERS = "ti.dead-letters"
DOMAIN_TOPICS = (TOPIC_TERRITORIES, TOPIC_ACTIONS, TOPIC_GRANTS, TOPIC_SITES)
ALL_TOPICS = (*DOMAIN_TOPICS, TOPIC_DEAD_LETTERS)

TYPE_PREFIX = "fr.anct.ti."
CONTENT_TYPE = "application/cloudevents+json"


def event_type(entity: str, change: str, version: int = 1) -> str:
    """``event_type("grant", "committed")`` → ``fr.anct.ti.grant.committed.v1``."""
    return f"{TYPE_PREFIX}{entity}.{change}.v{version}"


#: every event type of the contract, with the topic it travels on
EVENT_TOPICS: dict[str, str] = {
    **{event_type("territory", c): TOPIC_TERRITORIES for c in ("registered", "updated", "withdrawn")},
    **{event_type("action", c): TOPIC_ACTIONS for c in ("created", "updated", "status_changed", "deleted")},
    **{event_type("grant", c): TOPIC_GRANTS for c in ("committed", "amended", "disbursed", "cancelled")},
    **{event_type("site", c): TOPIC_SITES for c in ("labelled", "updated", "withdrawn")},
}


def topic_for_type(type_: str) -> str | None:
    return EVENT_TOPICS.get(type_)


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 structured-mode event as published on the platform's topics."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str = Field(min_length=1)
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    entityversion: int = Field(ge=1)
    tiactor: str
    data: dict[str, Any]


#: the extra attributes of an envelope that has none (one object for all, never changed)
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})


class Envelope:
    """A received event as consumers read it: the attributes of :class:`CloudEvent`, without a model.

    :func:`decode_envelope` builds it straight from the JSON when the event has the exact shape the
    platform publishes; anything else is validated by :class:`CloudEvent` first, which decides."""

    __slots__ = ("data", "datacontenttype", "entityversion", "extra", "id", "source", "specversion", "subject",
                 "tiactor", "time", "type")

    def __init__(self, *, id: str, source: str, type: str, subject: str, time: datetime, entityversion: int,
                 tiactor: str, data: dict[str, Any], specversion: str = "1.0",
                 datacontenttype: str = "application/json", extra: dict[str, Any] | None = None) -> None:
        self.id, self.source, self.type, self.subject, self.time = id, source, type, subject, time
        self.entityversion, self.tiactor, self.data = entityversion, tiactor, data
        self.specversion, self.datacontenttype = specversion, datacontenttype
        self.extra: Mapping[str, Any] = extra or _NO_EXTRA

    @classmethod
    def of(cls, event: CloudEvent) -> Envelope:
        return cls(id=event.id, source=event.source, type=event.type, subject=event.subject, time=event.time,
                   entityversion=event.entityversion, tiactor=event.tiactor, data=event.data,
                   specversion=event.specversion, datacontenttype=event.datacontenttype,
                   extra=dict(event.model_extra or {}))


_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})")
_ENVELOPE_KEYS = frozenset(("specversion", "id", "source", "type", "subject", "time", "datacontenttype",
                            "entityversion", "tiactor", "data"))


#: the attributes that every event of a kind repeats (type, source, actor): one object each for the
#: envelopes held (a catch-up holds tens of thousands). ``sys.intern``: a value no envelope holds any
#: longer is freed, so whatever a stream sends, only the values still held are kept
_repeated = sys.intern


def decode_envelope(value: bytes) -> Envelope:
    """A received message as an :class:`Envelope`; ``pydantic.ValidationError`` when it is not a valid
    CloudEvent of the contract. The exact shape the platform publishes is read with orjson and checked
    field by field (a few microseconds); any other input is left to :class:`CloudEvent` to accept
    (coercing as it does) or refuse, so both ways accept and refuse the same events."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        doc = None
    if type(doc) is dict:
        get = doc.get
        id_, source, type_, subject, at = get("id"), get("source"), get("type"), get("subject"), get("time")
        version, actor, data = get("entityversion"), get("tiactor"), get("data")
        if (
            get("specversion", "1.0") == "1.0" and get("datacontenttype", "application/json") == "application/json"
            and type(id_) is str and id_ and type(source) is str and source and type(type_) is str and type_
            and type(subject) is str and subject and type(at) is str and _INSTANT.fullmatch(at)
            and type(version) is int and version >= 1 and type(actor) is str and type(data) is dict
        ):
            try:
                instant = datetime.fromisoformat(at)
            except ValueError:
                instant = None
            if instant is not None:
                extra = None if _ENVELOPE_KEYS.issuperset(doc) else {k: v for k, v in doc.items() if k not in _ENVELOPE_KEYS}
                return Envelope(id=id_, source=_repeated(source), type=_repeated(type_), subject=subject,
                                time=instant, entityversion=version, tiactor=_repeated(actor), data=data,
                                extra=extra)
    return Envelope.of(CloudEvent.model_validate_json(value))


def new_event(
    *,
    source: str,
    type_: str,
    subject: str,
    time: datetime,
    version: int,
    actor: str,
    data: dict[str, Any],
) -> CloudEvent:
    return CloudEvent(
        id=str(uuid.uuid4()),
        source=source,
        type=type_,
        subject=subject,
        time=time.astimezone(UTC),
        entityversion=version,
        tiactor=actor,
        data=data,
    )


@lru_cache(maxsize=256)
def format_instant(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix, microseconds kept when present."""
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def encode_event(event: CloudEvent) -> bytes:
    doc = event.model_dump(mode="json")
    doc["time"] = format_instant(event.time)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()



def encode_new_event(
    *,
    source: str,
    type_: str,
    subject: str,
    time: datetime,
    version: int,
    actor: str,
    data: dict[str, Any] | bytes,
    event_id: str | None = None,
) -> tuple[str, bytes]:
    """``(id, encode_event(new_event(...)))`` without the model round trip, for bulk writers.

    ``data`` must already be in JSON form (``model_dump(mode="json")``), or be its JSON text (pydantic's
    ``dump_json``, orjson's ``dumps``: :func:`envelope_json` takes it as it is); the bytes are the same.
    ``event_id``: one of :func:`new_event_ids` (None: a new one)."""
    if event_id is None:
        event_id = str(uuid.uuid4())
    if type(data) is bytes:
        return event_id, envelope_json(
            event_id, source=source, type_=type_, subject=subject, time=time, version=version, actor=actor, data=data
        )
    doc = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": type_,
        "subject": subject,
        "time": format_instant(time),
        "datacontenttype": "application/json",
        "entityversion": version,
        "tiactor": actor,
        "data": data,
    }
    return event_id, orjson.dumps(doc)


#: the hexadecimal digit of a UUID's variant (RFC 4122: ``10xx``) for each random one
_VARIANT = {f"{d:x}": "89ab"[d & 3] for d in range(16)}


def new_event_ids(count: int) -> list[str]:
    """``count`` new event ids: random (version 4) UUIDs as ``str(uuid.uuid4())`` writes them, from one
    read of the system's random source (``uuid4`` reads it and builds a ``UUID`` per id)."""
    h, v = os.urandom(16 * count).hex(), _VARIANT
    return [
        f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-{v[h[i + 16]]}{h[i + 17:i + 20]}-{h[i + 20:i + 32]}"
        for i in range(0, 32 * count, 32)
    ]


@lru_cache(maxsize=256)
def _after_id(source: str, type_: str) -> bytes:
    return b'","source":' + orjson.dumps(source) + b',"type":' + orjson.dumps(type_) + b',"subject":'


@lru_cache(maxsize=256)
def _after_subject(time: datetime) -> bytes:
    return b',"time":"' + format_instant(time).encode() + b'","datacontenttype":"application/json","entityversion":'


@lru_cache(maxsize=256)
def _after_version(actor: str) -> bytes:
    return b',"tiactor":' + orjson.dumps(actor) + b',"data":'


def envelope_json(
    event_id: str, *, source: str, type_: str, subject: str, time: datetime, version: int, actor: str, data: bytes
) -> bytes:
    """The envelope's JSON as :func:`encode_new_event` writes it from a ``data`` in JSON form, byte for
    byte, with ``data`` given as its JSON text and spliced in as it is (an event id is a UUID: no escape);
    the parts a batch repeats (source and type, time, actor) are written once."""
    return b"".join((
        b'{"specversion":"1.0","id":"', event_id.encode(), _after_id(source, type_), orjson.dumps(subject),
        _after_subject(time), orjson.dumps(version), _after_version(actor), data, b"}",
    ))


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to record (``UnitOfWork.record_many``): ``data`` already in JSON form
    (``model_dump(mode="json")``) or its JSON text (``bytes``: pydantic's ``dump_json``, taken as it is,
    :func:`envelope_json`); ``time`` None means the unit of work's clock."""

    topic: str
    type: str
    subject: str
    version: int
    actor: str
    data: dict[str, Any] | bytes
    time: datetime | None = None


@dataclass(frozen=True)
class EventSpec:
    """One event type a service publishes, and the model of its ``data``."""

    type: str
    topic: str
    data_model: builtins.type[BaseModel]
    description: str


def event_json_schema(spec: EventSpec) -> dict[str, Any]:
    """The JSON Schema of the whole envelope of ``spec``, with its ``data`` schema inlined."""
    data_schema = spec.data_model.model_json_schema(mode="serialization", ref_template="#/$defs/{model}")
    defs = data_schema.pop("$defs", {})
    envelope = CloudEvent.model_json_schema(mode="serialization")
    envelope.pop("title", None)
    props = envelope["properties"]
    props["type"] = {"const": spec.type, "title": "Type", "type": "string"}
    props["data"] = data_schema
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:ti:events:{spec.type}",
        "title": spec.type,
        "description": spec.description,
        **envelope,
    }
    if defs:
        schema["$defs"] = defs
    return schema


def schema_path(directory: Path, spec: EventSpec) -> Path:
    return directory / f"{spec.type}.schema.json"


def render_schema(spec: EventSpec) -> str:
    return json.dumps(event_json_schema(spec), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_event_schemas(directory: Path, specs: list[EventSpec]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in specs:
        path = schema_path(directory, spec)
        path.write_text(render_schema(spec), encoding="utf-8")
        written.append(path)
    return written


def stale_event_schemas(directory: Path, specs: list[EventSpec]) -> list[str]:
    """The event types whose committed schema differs from what the code produces."""
    stale = []
    for spec in specs:
        path = schema_path(directory, spec)
        if not path.exists() or path.read_text(encoding="utf-8") != render_schema(spec):
            stale.append(spec.type)
    return stale
