"""Settings: the schema, the shipped `default.toml`, and how they are loaded."""

from murmur.config.settings import (
    ConfigError,
    Settings,
    SourceSettings,
    load_settings,
    parse_duration,
)

__all__ = ["ConfigError", "Settings", "SourceSettings", "load_settings", "parse_duration"]
