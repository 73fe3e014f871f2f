"""What a user agent tells of the device (`useragent.parse_user_agent` reads it): its own
module, so that the spool and the visits, which carry it, need not load the parser."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceInfo:
    browser: str
    browser_version: str
    os: str
    os_version: str
    device: str  # "Desktop", "Mobile", "Tablet", "TV", "Console" or "" when it does not say
    is_bot: bool  # user-agents' own verdict; ingest.bots combines it with other checks
