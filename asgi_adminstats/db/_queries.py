"""The SQL the database collector and the audit log run, overridable per setting.

The defaults target the documented default schema (``asgi_adminstats.DEFAULT_SCHEMA``).
A host with another schema passes its own ``Queries`` in ``Settings.queries``; each
query must keep the named parameters and the result columns documented here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Queries"]


@dataclass(frozen=True, kw_only=True)
class Queries:
    """SQL text with ``:name`` parameters (run on the host's engine or ``databases``)."""

    #: One value: distinct users with a session seen since ``:since`` (15 minutes ago).
    online_users: str = "SELECT COUNT(DISTINCT user_id) FROM sessions WHERE last_seen_at >= :since"
    #: One value: players active since ``:since`` (24 hours ago).
    online_players: str = "SELECT COUNT(*) FROM players WHERE last_active_at >= :since"
    #: One value each: row counts.
    total_players: str = "SELECT COUNT(*) FROM players"
    total_villages: str = "SELECT COUNT(*) FROM villages"
    #: Rows with columns id, action, admin, target_type, created_at; newest first.
    recent_actions: str = (
        "SELECT id, action, admin, target_type, created_at FROM audit_log"
        " ORDER BY id DESC LIMIT :limit"
    )
    #: The same columns for one row, by ``:id``.
    action_by_id: str = (
        "SELECT id, action, admin, target_type, created_at FROM audit_log WHERE id = :id"
    )
    #: One value: the newest action id (where a fresh instance starts its feed).
    last_action_id: str = "SELECT MAX(id) FROM audit_log"
    #: The recent_actions columns for ids above ``:since``, oldest first, ``:limit`` rows.
    actions_since: str = (
        "SELECT id, action, admin, target_type, created_at FROM audit_log"
        " WHERE id > :since ORDER BY id LIMIT :limit"
    )
    #: Inserts one action; parameters action, admin, target_type, target_id, created_at.
    #: On PostgreSQL ``RETURNING id`` is appended when missing.
    insert_action: str = (
        "INSERT INTO audit_log (action, admin, target_type, target_id, created_at)"
        " VALUES (:action, :admin, :target_type, :target_id, :created_at)"
    )
    #: The latency probe.
    probe: str = "SELECT 1"
