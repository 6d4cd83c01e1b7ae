"""Configuration: one settings object per service, read from the environment.

Platform-wide values use the ``TI_`` prefix (``TI_ENV``, ``TI_JWT_SECRET``, ``TI_KAFKA_BOOTSTRAP``…);
service values use ``TI_<SERVICE>_`` (``TI_FUNDING_LEDGER_DATABASE_URL``…).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JWT_SECRET = "ti-development-secret-change-me-0123456789"  # noqa: S105 - refused outside development

Environment = Literal["development", "test", "production"]
BusKind = Literal["local", "kafka"]
RelayMode = Literal["task", "process"]


class PlatformSettings(BaseSettings):
    """Values common to every service (prefix ``TI_``)."""

    model_config = SettingsConfigDict(env_prefix="TI_", extra="ignore")

    env: Environment = "development"
    var_dir: Path = Path("var")
    log_json: bool = False
    log_level: str = "INFO"

    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_iss: str = "ti-platform"
    jwt_aud: str = "ti-platform"
    jwt_jwks_url: str | None = None

    bus: BusKind = "local"
    kafka_bootstrap: str = "127.0.0.1:59092"
    local_bus_path: Path | None = None
    #: prepended to every topic name on the bus (isolates test runs sharing one Kafka); empty in production
    topic_prefix: str = ""

    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    #: where each service's outbox relay runs: ``task`` in the service's process (embedded mode, tests),
    #: ``process`` in ``ti relay SERVICE`` (deploy/local/services.sh, docker-compose), woken by NOTIFY
    relay: RelayMode = "task"
    relay_batch_size: int = Field(default=1000, ge=1)
    #: the longest a relay waits without a notification before looking at its outbox again
    relay_idle_seconds: float = Field(default=2.0, gt=0)
    #: database connections a service process keeps (its concurrent transactions), and how many more
    #: it may open at a peak (closed when returned)
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)
    consumer_batch_size: int = Field(default=2000, ge=1)
    migrate_on_start: bool = True
    #: writes per token ``sub`` (``limits`` syntax, ``;``-separated; empty: no limit), see docs/security.md
    rate_limit_writes: str = "2000/second;30000/minute"
    #: writes per client address without a valid token
    rate_limit_anonymous_writes: str = "100/second;1000/minute"

    #: origins whose pages may read cross-origin (GET, HEAD; ``*``: any), see ti_shared.cors
    cors_origins: str = "*"
    #: origins whose pages may also write cross-origin (every method, with a token); none by default
    cors_write_origins: str = ""

    #: where webhooks may be sent: ``public`` (hosts resolving to public addresses only), ``loopback``
    #: (127.0.0.0/8, ::1, localhost; nothing resolved), ``any``; unset: ``public`` in production, else
    #: ``loopback`` (tests and development never send a webhook off the machine)
    webhook_targets: Literal["public", "loopback", "any"] | None = None
    #: a failed delivery is retried after min(cap, base × 2^(failures−1)) seconds, less up to half of it
    #: (jitter); the subscription is paused after ``webhook_max_failures`` failures in a row
    webhook_retry_base_seconds: float = Field(default=1.0, gt=0)
    webhook_retry_cap_seconds: float = Field(default=600.0, gt=0)
    webhook_max_failures: int = Field(default=20, ge=1)

    @field_validator("cors_origins", "cors_write_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        from ti_shared.cors import parse_origins

        parse_origins(value)
        return value

    @field_validator("rate_limit_writes", "rate_limit_anonymous_writes")
    @classmethod
    def _rate_limits(cls, value: str) -> str:
        if value.strip():
            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"is not a list of rate limits such as '2000/second;30000/minute': {exc}") from exc
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> PlatformSettings:
        if self.env == "production":
            if self.jwt_jwks_url is None and self.jwt_secret == DEFAULT_JWT_SECRET:
                raise ValueError(
                    "TI_JWT_SECRET is the development default: set a secret or TI_JWT_JWKS_URL in production"
                )
            if len(self.jwt_secret) < 32 and self.jwt_jwks_url is None:
                raise ValueError("TI_JWT_SECRET must be at least 32 characters in production")
        return self

    @property
    def webhook_target_rule(self) -> Literal["public", "loopback", "any"]:
        if self.webhook_targets is not None:
            return self.webhook_targets
        return "public" if self.env == "production" else "loopback"

    @property
    def bus_path(self) -> Path:
        return self.local_bus_path or self.var_dir / "bus.db"


class ServiceSettings(BaseModel):
    """Values of one service (prefix ``TI_<SERVICE>_``) together with the platform's."""

    name: str
    database_url: str
    platform: PlatformSettings


def env_prefix(service: str) -> str:
    return "TI_" + service.upper().replace("-", "_") + "_"


def load_settings(service: str, **overrides: object) -> ServiceSettings:
    """Read the settings of ``service`` (e.g. ``funding-ledger``) from the environment."""

    platform = PlatformSettings()

    class _Own(BaseSettings):
        model_config = SettingsConfigDict(env_prefix=env_prefix(service), extra="ignore")
        database_url: str | None = None

    own = _Own()
    module = service.replace("-", "_")
    url = own.database_url or f"sqlite+aiosqlite:///{platform.var_dir / (module + '.db')}"
    values: dict[str, object] = {"name": service, "database_url": url, "platform": platform}
    values.update(overrides)
    return ServiceSettings.model_validate(values)
