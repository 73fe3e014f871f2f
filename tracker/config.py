"""Settings: one frozen dataclass, loaded from TOML and overridden by environment variables.

Every field has a default and help text; `config.example.toml` lists them all (a test checks).
Environment variables are the field name upper-cased with a `TRACKER_` prefix.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "TRACKER_"
CONFIG_ENV = "TRACKER_CONFIG"


class ConfigError(ValueError):
    """A setting could not be read; the message names the setting."""


def _setting(default: Any, help: str) -> Any:
    if isinstance(default, list | tuple):
        value = tuple(default)
        return field(default_factory=lambda: value, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    data_dir: str = _setting(
        "data", "Directory for the SQLite database, the generated secret key and spool files."
    )
    database_url: str = _setting(
        "",
        "SQLAlchemy URL. Empty means SQLite at <data_dir>/tracker.db. "
        "PostgreSQL: postgresql+psycopg://user:password@host/dbname",
    )
    secret_key: str = _setting(
        "",
        "Signs login sessions and CSRF tokens. Empty: generated once into <data_dir>/secret_key.",
    )
    host: str = _setting("127.0.0.1", "Address `tracker serve` listens on.")
    port: int = _setting(8000, "Port `tracker serve` listens on.")
    workers: int = _setting(2, "Gunicorn worker processes for `tracker serve`.")
    threads: int = _setting(8, "Threads per gunicorn worker (gthread worker class).")
    header_timeout_seconds: int = _setting(
        10,
        "`tracker serve`: a request's head (request line and headers) must arrive within this "
        "time, else 408 and the connection closes. Requests take a thread only once complete.",
    )
    body_timeout_seconds: int = _setting(
        30,
        "`tracker serve`: a request's body must arrive within this time after its head, else "
        "408; a thread writing an answer to a client that reads none of it gives up after it.",
    )
    base_url: str = _setting(
        "",
        "Public URL of this server, used in the script tag and the invitation links shown to "
        "users. Empty: the request's (`tracker invite` then prints the link's path only).",
    )
    invite_expiry_hours: int = _setting(
        72, "How long an invitation link to join a site works, unless used or revoked first."
    )
    require_2fa_for_admins: bool = _setting(
        False,
        "Server administrators and site owners and admins must log in with a two-factor "
        "code: one who has not set it up is sent to do so after the password, and none can "
        "turn it off. `tracker users disable-2fa` still can, for a lost phone.",
    )
    visit_timeout_minutes: int = _setting(
        30, "A visitor's events with no gap longer than this form one visit."
    )
    geoip_path: str = _setting(
        "", "Path to a MaxMind/DB-IP .mmdb (City or Country). Empty: no geolocation."
    )
    spam_list_url: str = _setting(
        "https://raw.githubusercontent.com/matomo-org/referrer-spam-list/master/spammers.txt",
        "Referrer spam list, one host per line (an http(s) URL or a file), that `tracker spam "
        "update` and the job update_spam_list (weekly) load into <data_dir>/spam_hosts.txt; "
        "it counts with the bundled list. Default: Matomo's public-domain list. Empty: no job.",
    )
    trusted_proxies: tuple[str, ...] = _setting(
        [],
        "Addresses or CIDR networks of reverse proxies whose X-Forwarded-For is believed. "
        "Environment: comma-separated.",
    )
    proxy_count: int = _setting(
        0,
        "Reverse proxies in front of the server whose X-Forwarded-Proto is believed (1: one "
        "proxy ending TLS), so requests it took over HTTPS count as HTTPS (Secure session "
        "cookie). 0: the header is ignored; any client could send it.",
    )
    max_body_bytes: int = _setting(65536, "Largest accepted ingestion request body, in bytes.")
    max_log_upload_mb: int = _setting(
        200,
        "Largest access log the settings page's Import section accepts, in MB (it waits in "
        "the data directory until the jobs process imports it); `tracker import logs` has "
        "no limit.",
    )
    ingest_rate_limit: int = _setting(
        1200,
        "Events per minute the collector takes from one client address, per worker process "
        "(bursts up to it); over it, 429 with Retry-After. 0: no limit. API keys are not limited.",
    )
    api_rate_limit: int = _setting(
        600, "Stats API requests each API key may make per hour (all workers and servers together)."
    )
    store_timeout_seconds: int = _setting(
        10,
        "How long a trusted batch (POST /api/events), an import or a stopping worker waits "
        "for its events to be in the database; after that they stay in the spool "
        "(<data_dir>/spool) and are stored when the database takes them. Beacons are "
        "answered once spooled.",
    )
    query_timeout_seconds: int = _setting(
        30,
        "On PostgreSQL, the longest one database statement of a page, a Stats API request or "
        "a download (GET requests) may run; then it is cancelled and the request answers 503, "
        "so an abandoned export does not run on. 0: no limit. Writes, imports and jobs have none.",
    )
    columnar_threads: int = _setting(
        1,
        "Threads DuckDB may use for one report read from the columnar store (per worker "
        "process, shared by its requests). 2 answers one report alone sooner, and several at "
        "once (a page's cards) later, on two cores.",
    )
    columnar_memory_limit: str = _setting(
        "1GB",
        "Most memory DuckDB may hold per worker process while reading the columnar store "
        "(DuckDB's size syntax: 512MB, 2GB); a report needing more answers 503, saying so.",
    )
    columnar_timeout_seconds: int = _setting(
        10,
        "Longest one report may read the columnar store; then DuckDB is interrupted and "
        "the request answers 503, saying so. 0: no limit.",
    )
    scheduler_enabled: bool = _setting(
        True,
        "Run background jobs (salt rotation, rollups, spool replay) beside the server: `tracker "
        "serve` starts a process for them, one per data directory.",
    )
    smtp_host: str = _setting(
        "",
        "SMTP server that sends mail (reports, alerts, invitations). Empty: no mail is sent "
        "and the pages offering it say so. Check it with `tracker email test ADDRESS`.",
    )
    smtp_port: int = _setting(587, "SMTP server port: 587 for STARTTLS, 465 for TLS, 25 plain.")
    smtp_security: str = _setting(
        "starttls",
        "How the SMTP connection is protected: starttls (upgrade after connecting), tls "
        "(encrypted from the start, usually port 465) or none (a local relay only).",
    )
    smtp_user: str = _setting("", "SMTP login name. Empty: no login.")
    smtp_password: str = _setting(
        "", "SMTP password; better in the environment (TRACKER_SMTP_PASSWORD) or a file."
    )
    smtp_password_file: str = _setting(
        "", "File holding the SMTP password (one line); used when smtp_password is empty."
    )
    mail_from: str = _setting(
        "", "The From address of every mail, e.g. Tracker <reports@example.com>."
    )
    log_level: str = _setting("INFO", "Logging level: DEBUG, INFO, WARNING, ERROR.")

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'tracker.db'}"

    def with_overrides(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def setting_fields() -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(Settings))


def _coerce(name: str, annotation: str, raw: Any) -> Any:
    try:
        if annotation == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if annotation == "int":
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(raw)
        if annotation.startswith("tuple"):
            if isinstance(raw, str):
                return tuple(part.strip() for part in raw.split(",") if part.strip())
            if isinstance(raw, list | tuple):
                return tuple(str(part) for part in raw)
            raise ValueError(raw)
        if not isinstance(raw, str):
            raise ValueError(raw)
        return raw
    except ValueError:
        raise ConfigError(f"setting {name!r}: {raw!r} is not a valid {annotation}") from None


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults, then the TOML file (argument or $TRACKER_CONFIG), then TRACKER_* variables."""
    environ = os.environ if environ is None else environ
    path = config_path or environ.get(CONFIG_ENV)
    values: dict[str, Any] = {}
    known = {f.name: str(f.type) for f in setting_fields()}
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
        for key, raw in data.items():
            if key not in known:
                raise ConfigError(f"config file {str(path)!r}: unknown setting {key!r}")
            values[key] = _coerce(key, known[key], raw)
    for name, annotation in known.items():
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            values[name] = _coerce(env_name, annotation, environ[env_name])
    return Settings(**values)


def ensure_secret_key(settings: Settings) -> Settings:
    """Return settings with a secret key, generating one into the data dir on first use."""
    if settings.secret_key:
        return settings
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    key_file = data_dir / "secret_key"
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # another process made it first; read theirs
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return settings.with_overrides(secret_key=key_file.read_text().strip())
