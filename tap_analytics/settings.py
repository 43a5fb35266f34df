"""The tap's settings: the contract's settings table as a JSON schema, and its checks.

Both come from `analytics_api.settings` (one type, default and bound per setting for every
engine). The SDK's own config validation quotes the offending value ("12345 is not of type
'string'"), which leaks a mistyped API key into logs; `config_errors` names the setting and the
rule only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from singer_sdk import typing as th

from analytics_api.config import is_plain_http_to_remote
from analytics_api.settings import (
    TAP,
    Setting,
    numbers_from_text,
    setting_problems,
    settings_for,
)

EMIT_ACTIVATE_VERSION = "emit_activate_version_messages"
"""The SDK-standard setting (built into singer-sdk from 0.55; declared here for 0.54)."""

ENV_PREFIX = "TAP_ANALYTICS_"
"""singer-sdk's (and Meltano's) variable prefix: `TAP_ANALYTICS_API_KEY`, ..."""


def _json_type(setting: Setting) -> Any:
    if setting.kind in ("integer", "number"):
        helper = th.IntegerType if setting.kind == "integer" else th.NumberType
        low = "exclusive_minimum" if setting.exclusive_minimum else "minimum"
        bounds: dict[str, Any] = {low: setting.minimum, "maximum": setting.maximum}
        return helper(**bounds)
    if setting.kind == "boolean":
        return th.BooleanType
    if setting.kind == "datetime":
        return th.DateTimeType
    return th.StringType(min_length=1) if setting.required else th.StringType


def _property(setting: Setting) -> th.Property:
    return th.Property(
        setting.name,
        _json_type(setting),
        required=setting.required,
        secret=setting.secret,
        default=setting.default,
        allowed_values=list(setting.options) or None,
        title=setting.title,
        description=setting.help,
    )


CONFIG_SCHEMA: dict[str, Any] = th.PropertiesList(*map(_property, settings_for(TAP))).to_dict()
"""The tap's own settings as a JSON schema, generated from the contract's table."""

TAP_SETTING_NAMES: tuple[str, ...] = tuple(CONFIG_SCHEMA["properties"])
"""The tap's own settings, fixed at import: singer-sdk appends its standard settings to the
class's schema in place when a tap is created, so a schema can grow within a process."""


def env_variable(name: str) -> str:
    """The variable a setting is read from (`--config ENV`, Meltano)."""
    return ENV_PREFIX + name.upper()


def config_errors(config: Mapping[str, Any], logger: logging.Logger | None = None) -> list[str]:
    """Every problem with `config`, each naming the setting and never quoting its value."""
    values = numbers_from_text(config)  # "1.5" from a variable or Meltano: read with float()
    errors = setting_problems(values, TAP, where=lambda name: f"env {env_variable(name)}")
    base_url = config.get("base_url")
    if logger and not errors and isinstance(base_url, str) and is_plain_http_to_remote(base_url):
        logger.warning(
            "setting 'base_url' uses plain http to a non-loopback host: the API key would "
            "cross the network unencrypted. Use https://."
        )
    return errors
