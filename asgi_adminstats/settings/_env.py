"""``Settings.from_env``: ``ADMINSTATS_<NAME>`` variables parsed as the fields' types,
with errors that name the variable as well as the setting."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._rules import SettingsError

if TYPE_CHECKING:
    from ._settings import Settings

__all__ = ["ENV_PREFIX", "settings_from_env"]

ENV_PREFIX = "ADMINSTATS_"
_NOT_FROM_ENV = frozenset({"admin_rule", "queries"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def settings_from_env(
    cls: type[Settings], environ: Mapping[str, str] | None, overrides: Mapping[str, Any]
) -> Settings:
    """``cls`` from ``ADMINSTATS_<NAME>`` variables; ``overrides`` win over them."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        var = ENV_PREFIX + f.name.upper()
        if f.name in _NOT_FROM_ENV or var not in env:
            continue
        try:
            values[f.name] = _parse(str(f.type), env[var])
        except ValueError as exc:
            raise SettingsError(f"{var} (setting {f.name!r}): {exc}", f.name) from None
    values.update(overrides)
    try:
        return cls(**values)
    except SettingsError as exc:
        name = exc.setting
        if name == "jwt_secret" and "jwt_secret" not in values:
            raise SettingsError(
                f"{ENV_PREFIX}JWT_SECRET (setting 'jwt_secret') is required, or one of "
                f"{ENV_PREFIX}JWT_PUBLIC_KEY, {ENV_PREFIX}JWKS_URL, {ENV_PREFIX}OIDC_ISSUER,"
                f" {ENV_PREFIX}INTROSPECTION_URL",
                name,
            ) from None
        if name is not None and name in values and name not in overrides:
            raise SettingsError(f"{ENV_PREFIX}{name.upper()}: {exc}", name) from None
        raise


def _parse(annotation: str, raw: str) -> Any:
    """A variable's text as the field's type (the annotations are strings here)."""
    if annotation == "float":
        return float(raw)
    if annotation == "int":
        return int(raw)
    if annotation == "bool":
        lowered = raw.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ValueError(f"expected true/false, got {raw!r}")
    if annotation.startswith("tuple["):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if annotation == "str | None":
        return raw or None
    return raw
