"""One settings object for the whole process, read from the environment and `.env`."""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kamiyo.kit.clientip import Network, parse_networks
from kamiyo.kit.files import private_dir, private_file

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def is_loopback_host(host: str) -> bool:
    """True for a bind address or name that only this machine can reach."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_duration(text: str) -> timedelta:
    """`7d`, `12h`, `90m`, `3600s` or a bare number of seconds."""
    text = text.strip().lower()
    if not text:
        raise ValueError("empty duration")
    unit = text[-1]
    if unit in _DURATION_UNITS:
        return timedelta(seconds=float(text[:-1]) * _DURATION_UNITS[unit])
    return timedelta(seconds=float(text))


def seconds_list(text: str) -> list[float]:
    """`60,300,900`: seconds, comma-separated."""
    return [float(part) for part in text.split(",") if part.strip()]


def interval_seconds(text: str) -> float:
    """A duration in seconds; 0 for `0`, `off`, `no` or `false` (turned off)."""
    if text.strip().lower() in {"0", "off", "no", "false"}:
        return 0.0
    return parse_duration(text).total_seconds()


# The settings kept as text, each with the parser its property reads it with (run once at start-up to check it).
_TEXT_PARSERS: dict[str, Callable[[str], object]] = {
    "trusted_proxies": parse_networks,
    "webhook_retry_schedule": seconds_list,
    "alert_max_age": parse_duration,
    "backup_interval": interval_seconds,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field(default="sqlite:///data/kamiyo.db", alias="KAMIYO_DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="KAMIYO_REDIS_URL")
    secret_key: str | None = Field(default=None, alias="KAMIYO_SECRET_KEY")
    cors_origins: str = Field(default="", alias="KAMIYO_CORS_ORIGINS")
    offline: bool = Field(default=False, alias="KAMIYO_OFFLINE")
    # Background work inside the API process; `kamiyo serve --no-workers` sets it off for its processes.
    run_workers: bool = Field(default=True, alias="KAMIYO_RUN_WORKERS")
    webhook_retry_schedule: str = Field(default="60,300,900", alias="KAMIYO_WEBHOOK_RETRY_SCHEDULE")
    alert_max_age: str = Field(default="7d", alias="KAMIYO_ALERT_MAX_AGE")
    webhook_timeout: float = Field(default=10.0, alias="KAMIYO_WEBHOOK_TIMEOUT")
    anon_rate_limit: str = Field(default="60/minute", alias="KAMIYO_ANON_RATE_LIMIT")
    rate_limits: str = Field(default="on", alias="KAMIYO_RATE_LIMITS")
    allow_http_webhooks: bool = Field(default=False, alias="KAMIYO_ALLOW_HTTP_WEBHOOKS")
    # Source name -> URL replacing its default endpoint; also "prices" (the historical price API base, default
    # DeFiLlama's https://coins.llama.fi) and the label feeds.
    source_urls: dict[str, str] = Field(default_factory=dict, alias="KAMIYO_SOURCE_URLS")
    # On-chain verification and block times (`kamiyo verify`): JSON object of chain slug -> JSON-RPC URL, over
    # the keyless public default of each EVM chain (`kamiyo.vocabulary.taxonomy`); an empty URL turns that chain off.
    rpc_urls: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, alias="KAMIYO_RPC_URLS")
    # Ingestion: seconds per HTTP request to a source, and for one source's whole run (all its requests).
    source_timeout: float = Field(default=20.0, gt=0, alias="KAMIYO_SOURCE_TIMEOUT")
    source_deadline: float = Field(default=300.0, gt=0, alias="KAMIYO_SOURCE_DEADLINE")
    data_dir: Path = Field(default=Path("data"), alias="KAMIYO_DATA_DIR")
    seed_default_dataset: bool = Field(default=True, alias="KAMIYO_SEED")
    response_cache_seconds: float = Field(default=2.0, alias="KAMIYO_RESPONSE_CACHE_SECONDS")
    log_level: str = Field(default="INFO", alias="KAMIYO_LOG_LEVEL")
    # Addresses or CIDR networks (comma list) whose X-Forwarded-For / Forwarded is believed; none by default.
    trusted_proxies: str = Field(default="", alias="KAMIYO_TRUSTED_PROXIES")
    # Seconds a connection may take to send a request's head (request line and headers) before it is closed.
    header_timeout: float = Field(default=10.0, gt=0, le=3600, alias="KAMIYO_HEADER_TIMEOUT")
    # Request bodies larger than this answer 413 before they are read (a declared Content-Length at once,
    # a chunked body as soon as it passes the limit).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1, alias="KAMIYO_MAX_BODY_BYTES")
    # The base URL of links in alerts, feeds and e-mails (never taken from a request's Host header).
    public_url_setting: str | None = Field(default=None, alias="KAMIYO_PUBLIC_URL")
    # Backups (`kamiyo backup`, and the worker's scheduled job): folder (default data/backups), how many
    # to keep, and how often the worker takes one (`0` turns the schedule off).
    backup_dir: Path | None = Field(default=None, alias="KAMIYO_BACKUP_DIR")
    backup_keep: int = Field(default=7, ge=1, alias="KAMIYO_BACKUP_KEEP")
    backup_interval: str = Field(default="1d", alias="KAMIYO_BACKUP_INTERVAL")
    # `host:port` where `kamiyo worker` serves its own Prometheus metrics (unset: not served).
    worker_metrics: str | None = Field(default=None, alias="KAMIYO_WORKER_METRICS")
    # Error reporting (ops/reporting.py): a Sentry DSN turns it on; scrubbed of secrets; off when unset.
    sentry_dsn: str | None = Field(default=None, alias="SENTRY_DSN")
    sentry_environment: str = Field(default="production", alias="SENTRY_ENVIRONMENT")
    # Site policy (web/legal_pages.py): who receives vulnerability reports (comma list of e-mail addresses or
    # URLs; unset: no /.well-known/security.txt), its languages, and the operator's own terms and privacy texts
    # (a .html fragment or plain text; unset: terms.html|txt / privacy.html|txt in the data folder, else defaults).
    security_contact: str | None = Field(default=None, alias="KAMIYO_SECURITY_CONTACT")
    security_languages: str = Field(default="en", alias="KAMIYO_SECURITY_LANGUAGES")
    terms_file: Path | None = Field(default=None, alias="KAMIYO_TERMS_FILE")
    privacy_file: Path | None = Field(default=None, alias="KAMIYO_PRIVACY_FILE")

    stripe_secret_key: str | None = Field(default=None, alias="STRIPE_SECRET_KEY")
    stripe_webhook_secret: str | None = Field(default=None, alias="STRIPE_WEBHOOK_SECRET")
    stripe_price_pro: str | None = Field(default=None, alias="STRIPE_PRICE_PRO")
    stripe_price_team: str | None = Field(default=None, alias="STRIPE_PRICE_TEAM")
    stripe_price_enterprise: str | None = Field(default=None, alias="STRIPE_PRICE_ENTERPRISE")
    stripe_api_base: str | None = Field(default=None, alias="STRIPE_API_BASE")
    telegram_bot_token: str | None = Field(default=None, alias="TELEGRAM_BOT_TOKEN")
    telegram_api_base: str = Field(default="https://api.telegram.org", alias="TELEGRAM_API_BASE")
    smtp_url: str | None = Field(default=None, alias="KAMIYO_SMTP_URL")
    smtp_from: str = Field(default="Kamiyo <alerts@kamiyo.local>", alias="KAMIYO_SMTP_FROM")
    # Delivery worker tuning (webhooks and chat/e-mail alerts).
    delivery_concurrency: int = Field(default=200, ge=1, le=5000, alias="KAMIYO_DELIVERY_CONCURRENCY")
    delivery_per_endpoint: int = Field(default=8, ge=1, le=1000, alias="KAMIYO_DELIVERY_PER_ENDPOINT")
    delivery_lease: float = Field(default=60.0, gt=0, alias="KAMIYO_DELIVERY_LEASE")
    delivery_poll: float = Field(default=5.0, gt=0, alias="KAMIYO_DELIVERY_POLL")
    webhook_disable_after: int = Field(default=20, ge=1, alias="KAMIYO_WEBHOOK_DISABLE_AFTER")
    stream_heartbeat: float = Field(default=15.0, gt=0, alias="KAMIYO_STREAM_HEARTBEAT")
    # Live-stream connections one account may hold open at once (across processes when Redis is configured).
    stream_max_per_user: int = Field(default=5, ge=1, le=10_000, alias="KAMIYO_STREAM_MAX_PER_USER")

    @field_validator("source_urls", mode="before")
    @classmethod
    def _parse_source_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValueError("KAMIYO_SOURCE_URLS must be a JSON object of source name to URL")
        return value

    @field_validator("rpc_urls", mode="before")
    @classmethod
    def _parse_rpc_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError as exc:
                raise ValueError("KAMIYO_RPC_URLS must be a JSON object of chain slug to JSON-RPC URL") from exc
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValueError("KAMIYO_RPC_URLS must be a JSON object of chain slug to JSON-RPC URL")
        return {str(k).strip().lower(): v.strip() for k, v in value.items()}

    @field_validator(*_TEXT_PARSERS)
    @classmethod
    def _check_parses(cls, value: str, info: ValidationInfo) -> str:
        """A setting kept as text is refused at start-up when the parser its property uses refuses it."""
        _TEXT_PARSERS[str(info.field_name)](value)
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def retry_schedule_seconds(self) -> list[float]:
        return seconds_list(self.webhook_retry_schedule)

    @property
    def alert_max_age_delta(self) -> timedelta:
        return parse_duration(self.alert_max_age)

    @property
    def backup_path(self) -> Path:
        return self.backup_dir or self.data_dir / "backups"

    @property
    def backup_interval_seconds(self) -> float:
        return interval_seconds(self.backup_interval)

    @field_validator("public_url_setting")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
            raise ValueError("KAMIYO_PUBLIC_URL must be an http(s) URL, e.g. https://kamiyo.example")
        return value.strip().rstrip("/")

    @property
    def public_url(self) -> str:
        """KAMIYO_PUBLIC_URL, or the local default when it is unset (see `public_url_warning`)."""
        return self.public_url_setting or DEFAULT_PUBLIC_URL

    def public_url_warning(self, host: str) -> str | None:
        """A warning when the server listens beyond loopback but links would point at the local default."""
        if self.public_url_setting or is_loopback_host(host):
            return None
        return (
            f"KAMIYO_PUBLIC_URL is unset while listening on {host}: links in alerts, feeds and e-mails "
            f"will point at {DEFAULT_PUBLIC_URL}; set it to the address users reach"
        )

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def rate_limits_enabled(self) -> bool:
        return self.rate_limits.strip().lower() not in {"off", "0", "false", "no"}

    def resolved_secret_key(self) -> str:
        """The configured key, or one generated once into the data folder so restarts keep sessions valid."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        private_dir(self.data_dir)
        key = secrets.token_urlsafe(48)
        private_file(path).write_text(key)
        return key


@lru_cache
def get_settings() -> Settings:
    return Settings()
