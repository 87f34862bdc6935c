"""Presence (cluster connection counts) and the producer's choice, without servers."""

from __future__ import annotations

import json
import time

from asgi_adminstats.bus import Presence


def test_presence_sums_fresh_reports_of_others() -> None:
    presence = Presence("web-1", freshness=10)
    presence.on_report(json.dumps({"instance": "web-2", "connections": 4}))
    presence.on_report(json.dumps({"instance": "web-3", "connections": 2}))
    presence.on_report(json.dumps({"instance": "web-1", "connections": 99}))  # our own echo
    presence.on_report(json.dumps({"instance": "web-4", "connections": "many"}))  # malformed
    assert presence.total(local=1) == 7
    presence.on_report(json.dumps({"instance": "web-2", "connections": 1}))  # replaces
    assert presence.total(local=1) == 4


def test_presence_forgets_silent_instances() -> None:
    presence = Presence("web-1", freshness=0.05)
    presence.on_report(json.dumps({"instance": "web-2", "connections": 4}))
    time.sleep(0.1)
    assert presence.total(local=2) == 2


def test_presence_table_is_bounded() -> None:
    presence = Presence("web-1", freshness=60)
    for i in range(5000):
        presence.on_report(json.dumps({"instance": f"x{i}", "connections": 1}))
    assert presence.total(local=0) == 1000


def test_report_names_this_instance() -> None:
    assert json.loads(Presence("web-1", 1).report(3)) == {"instance": "web-1", "connections": 3}
