"""Configuration: the settings model (file + env), the SMTP URI parser, tenants."""

from postroom.config.loader import Loaded, load_settings
from postroom.config.settings import CourierSettings, Settings
from postroom.config.smtp_uri import Security, SmtpUri, parse_smtp_uri

__all__ = [
    "CourierSettings",
    "Loaded",
    "Security",
    "Settings",
    "SmtpUri",
    "load_settings",
    "parse_smtp_uri",
]
