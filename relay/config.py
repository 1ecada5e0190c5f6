"""Settings of the relay service: the control plane's (PolicySettings) plus the listener, WebRTC/ICE and
scraping. Sources, strongest first: keyword arguments, environment (`CCTV_*`), the YAML config file,
defaults."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from policies.settings import PolicySettings
from relay.cluster.settings import ClusterSettings
from relay.turn import TurnSettings

# The file load_settings() is reading; a context variable so concurrent loads (tests) don't mix files.
_config_values: ContextVar[dict[str, Any] | None] = ContextVar("_config_values", default=None)


class ConfigError(ValueError):
    """A bad config file or value (one line, shown to users as is)."""


class IceServer(BaseModel):
    """A STUN or TURN server handed to every peer connection (and advertised to WHEP clients)."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None  # secret: never returned by the API or logged


class RelaySettings(PolicySettings, ClusterSettings, TurnSettings):  # cluster: replica id, leases; TURN
    model_config = SettingsConfigDict(env_prefix="CCTV_", extra="ignore", env_nested_delimiter="__")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None  # how viewers reach the relay, when behind a proxy
    # ICE: host candidates on these interfaces/addresses (empty = all non-loopback, plus loopback when
    # `ice_loopback`); STUN/TURN servers for viewers outside the operations network.
    ice_interfaces: list[str] = Field(default_factory=list)
    ice_loopback: bool = True
    ice_servers: list[IceServer] = Field(default_factory=list)
    codec: str = "h264"
    linger_s: float = Field(default=10.0, ge=0)
    session_check_s: float = Field(default=1.0, gt=0, le=5)  # how often running sessions are re-authorized
    camera_sync_s: float = Field(default=2.0, gt=0, le=60)  # how often to look for admin changes to cameras
    retention_every_s: float = Field(default=86400.0, ge=60)  # access-log retention: at start, then every
    metrics_token: str | None = None  # bearer token for Prometheus scraping; admins may always scrape
    cors_origins: list[str] = Field(default_factory=list)  # other origins allowed to call WHEP (players)
    # Maps (dashboard and public page): the city's own tile service, a Leaflet URL template such as
    # "https://tiles.example.gov.tw/{z}/{x}/{y}.png" (its origin is added to the pages' img-src). None: the
    # cameras are drawn over a plain background; nothing is fetched from elsewhere.
    map_tile_url: str | None = None
    map_attribution: str = ""  # shown in the map's corner, e.g. the tile service's copyright
    map_center: tuple[float, float] = (25.0478, 121.5319)  # latitude, longitude: Taipei Main Station
    map_zoom: int = Field(default=12, ge=1, le=19)

    @field_validator("map_tile_url")
    @classmethod
    def _tile_template(cls, v: str | None) -> str | None:
        if not v:
            return None
        if not v.startswith(("https://", "http://")) or not all(p in v for p in ("{z}", "{x}", "{y}")):
            raise ValueError("must be an http(s) URL template with {z}, {x} and {y}")
        return v
    # Running WHEP sessions this process serves to one user, and on one camera (beyond: 429).
    max_sessions_per_user: int = Field(default=8, ge=1)
    max_sessions_per_camera: int = Field(default=50, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)  # request bodies (JSON); SDP offers: 64 KiB
    # How long a thread may hold the GIL while another waits (Python's default 5 ms; relay.interpreter).
    gil_switch_ms: float = Field(default=1.0, ge=0.1, le=100)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _ConfigFileSource(settings_cls), file_secret_settings


class _ConfigFileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return (_config_values.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_config_values.get() or {})


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config file must be a mapping of setting: value")
    known = set(RelaySettings.model_fields)
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return raw


def load_settings(config: Path | None = None, **overrides: Any) -> RelaySettings:
    """Settings from `config` (YAML), the environment and `overrides`. Raises ConfigError (one line)."""
    values = read_config_file(config) if config is not None else {}
    token = _config_values.set(values)
    try:
        return RelaySettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        source = f"{config}: " if config is not None else ""
        raise ConfigError(f"{source}{where}: {err['msg']}") from None
    finally:
        _config_values.reset(token)
