"""Delta updates (PROTOCOL.md, ``stats_delta``): the JSON merge patch (RFC 7386) from
one snapshot to the next, its application, and the frames that carry a sequence number.

A patch is only ever sent when applying it to the base reproduces the new snapshot
exactly: RFC 7386 cannot set a value to ``null`` (``null`` removes a key), so a key
becoming ``null`` has no patch and that tick goes out as a full snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "DELTA_PROTOCOL",
    "diff",
    "merge_patch",
    "same",
    "wants_deltas",
    "with_seq",
]

#: Offered next to ``adminstats.v1`` by a client that applies ``stats_delta``; never
#: selected (the server selects ``adminstats.v1``), confirmed by ``connected.deltas``.
DELTA_PROTOCOL = "adminstats.delta"
_STATS_PREFIX = '{"type":"stats_update",'


def wants_deltas(subprotocols: object) -> bool:
    """True if the handshake offered ``adminstats.delta``."""
    return isinstance(subprotocols, list | tuple) and DELTA_PROTOCOL in subprotocols


def same(a: object, b: object) -> bool:
    """JSON equality that tells ``1`` from ``1.0`` and ``true``: ``==`` does not."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _literal(value: object) -> bool:
    """Whether ``value`` in a patch stands for itself: not ``null``, and no object in it
    (outside arrays, which are copied whole) holds a ``null`` the patch would drop."""
    if value is None:
        return False
    if isinstance(value, dict):
        return all(_literal(v) for v in value.values())
    return True


def diff(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that turns ``base`` into ``new``; ``None`` if none can (a value
    becoming ``null``). Arrays are replaced whole, as RFC 7386 does."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        if key in base:
            old = base[key]
            if same(old, value):
                continue
            if isinstance(old, dict) and isinstance(value, dict):
                inner = diff(old, value)
                if inner is None:
                    return None
                patch[key] = inner
                continue
        if not _literal(value):
            return None
        patch[key] = value
    for key in base:
        if key not in new:
            patch[key] = None  # a removed key: the one thing null means
    return patch


def merge_patch(target: object, patch: object) -> Any:
    """RFC 7386 MergePatch(target, patch), copying only what the patch changes: neither
    argument is modified."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def with_seq(text: str, seq: int) -> str | None:
    """A ``stats_update`` frame's text with ``seq`` after its type (no re-encoding);
    ``None`` if ``text`` is not one of ours."""
    if not text.startswith(_STATS_PREFIX):
        return None
    return f'{_STATS_PREFIX}"seq":{seq},{text[len(_STATS_PREFIX) :]}'
