"""Settings: validated at construction, errors name the setting (and the variable)."""

from __future__ import annotations

import dataclasses

import pytest

from asgi_adminstats import Settings, SettingsError
from asgi_adminstats.settings import HISTORY_POINTS_MAX

SECRET = "s" * 32


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"jwt_secret": "short"}, "jwt_secret"),
        ({"stats_interval": 0}, "stats_interval"),
        ({"heartbeat_timeout": 40}, "heartbeat_timeout"),
        ({"collector_timeout": 0}, "collector_timeout"),
        ({"allowed_origins": ("http://a b:80",)}, "allowed_origins"),
        ({"recent_actions": 0}, "recent_actions"),
        ({"allowed_origins": ("example.com",)}, "allowed_origins"),
        ({"allowed_origins": ("https://a.example.com/path",)}, "allowed_origins"),
        ({"default_subscriptions": ("stats", "chat")}, "default_subscriptions"),
        ({"broadcast_url": "kafka://x"}, "broadcast_url"),
        ({"database_url": "nothing"}, "database_url"),
        ({"admin_role": ""}, "admin_role"),
    ],
)
def test_invalid_values_fail_naming_the_setting(changes: dict[str, object], named: str) -> None:
    with pytest.raises(SettingsError, match=f"'{named}'") as err:
        Settings(**{"jwt_secret": SECRET, **changes})  # type: ignore[arg-type]
    assert err.value.setting == named


def test_defaults_follow_the_protocol() -> None:
    s = Settings(jwt_secret=SECRET)
    assert (s.stats_interval, s.heartbeat_interval, s.auth_timeout) == (5.0, 30.0, 5.0)
    assert s.default_subscriptions == ("stats", "notifications")
    assert s.broadcast_url == "memory://" and s.max_message_bytes == 4096
    assert SECRET not in repr(s)


def test_collector_deadline_is_capped_at_half_a_tick() -> None:
    assert Settings(jwt_secret=SECRET).collector_deadline == 2.0
    assert Settings(jwt_secret=SECRET, stats_interval=1).collector_deadline == 0.5
    assert Settings(jwt_secret=SECRET, collector_timeout=0.1).collector_deadline == 0.1


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings(jwt_secret=SECRET).stats_interval = 1  # type: ignore[misc]


def test_from_env_parses_types() -> None:
    s = Settings.from_env(
        {
            "ADMINSTATS_JWT_SECRET": SECRET,
            "ADMINSTATS_STATS_INTERVAL": "2.5",
            "ADMINSTATS_RECENT_ACTIONS": "7",
            "ADMINSTATS_ALLOWED_ORIGINS": "https://a.example.com, http://localhost:8000",
            "ADMINSTATS_ALLOW_MISSING_ORIGIN": "false",
            "ADMINSTATS_JWT_ISSUER": "",
        }
    )
    assert s.stats_interval == 2.5 and s.recent_actions == 7
    assert s.allowed_origins == ("https://a.example.com", "http://localhost:8000")
    assert s.allow_missing_origin is False and s.jwt_issuer is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "ADMINSTATS_JWT_SECRET (setting 'jwt_secret') is required"),
        (
            {"ADMINSTATS_JWT_SECRET": SECRET, "ADMINSTATS_STATS_INTERVAL": "soon"},
            "ADMINSTATS_STATS_INTERVAL (setting 'stats_interval')",
        ),
        (
            {"ADMINSTATS_JWT_SECRET": SECRET, "ADMINSTATS_STATS_INTERVAL": "-1"},
            "ADMINSTATS_STATS_INTERVAL: setting 'stats_interval' must be > 0",
        ),
        (
            {"ADMINSTATS_JWT_SECRET": SECRET, "ADMINSTATS_ALLOW_MISSING_ORIGIN": "maybe"},
            "ADMINSTATS_ALLOW_MISSING_ORIGIN",
        ),
    ],
)
def test_from_env_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    assert message in str(err.value)


def test_overrides_win_over_env() -> None:
    s = Settings.from_env(
        {"ADMINSTATS_JWT_SECRET": SECRET, "ADMINSTATS_STATS_INTERVAL": "9"}, stats_interval=3.0
    )
    assert s.stats_interval == 3.0


# --- history_seconds (issue 14, item 3) -------------------------------------------------


def test_history_points_follow_history_seconds_and_stats_interval() -> None:
    assert Settings(jwt_secret=SECRET).history_seconds == 3600
    assert Settings(jwt_secret=SECRET).history_points == 720  # an hour of 5 s ticks
    assert Settings(jwt_secret=SECRET, history_seconds=7).history_points == 2  # ceil
    assert Settings(jwt_secret=SECRET, history_seconds=0).history_points == 0  # off
    fast = Settings(jwt_secret=SECRET, stats_interval=1)
    assert fast.history_points == HISTORY_POINTS_MAX == 2880  # capped
    huge = Settings(jwt_secret=SECRET, history_seconds=1e300)
    assert huge.history_points == HISTORY_POINTS_MAX


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), -0.5])
def test_history_seconds_must_be_zero_or_seconds(value: float) -> None:
    with pytest.raises(SettingsError, match=r"'history_seconds' must be 0 \(off\)") as err:
        Settings(jwt_secret=SECRET, history_seconds=value)
    assert err.value.setting == "history_seconds"


def test_history_seconds_from_env() -> None:
    env = {"ADMINSTATS_JWT_SECRET": SECRET, "ADMINSTATS_HISTORY_SECONDS": "600"}
    assert Settings.from_env(env).history_points == 120
    env["ADMINSTATS_HISTORY_SECONDS"] = "0"
    assert Settings.from_env(env).history_points == 0
    for bad, says in (("an hour", "(setting 'history_seconds')"), ("-5", "must be 0 (off)")):
        env["ADMINSTATS_HISTORY_SECONDS"] = bad
        with pytest.raises(SettingsError) as err:
            Settings.from_env(env)
        assert "ADMINSTATS_HISTORY_SECONDS" in str(err.value) and says in str(err.value)
