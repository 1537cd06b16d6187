"""The model turn's two timing settings: RELAY_TURN_IDLE_S and RELAY_TURN_GRACE_S."""

from __future__ import annotations

import pytest

from relay.turns import AI_IDLE_S, TURN_GRACE_S, turn_grace_s, turn_idle_s


def test_the_defaults_are_three_minutes_idle_and_thirty_seconds_grace(monkeypatch):
    monkeypatch.delenv("RELAY_TURN_IDLE_S", raising=False)
    monkeypatch.delenv("RELAY_TURN_GRACE_S", raising=False)
    assert (turn_idle_s(), turn_grace_s()) == (AI_IDLE_S, TURN_GRACE_S) == (180.0, 30.0)


def test_a_setting_replaces_the_default(monkeypatch):
    monkeypatch.setenv("RELAY_TURN_IDLE_S", "600")
    monkeypatch.setenv("RELAY_TURN_GRACE_S", "2.5")
    assert (turn_idle_s(), turn_grace_s()) == (600.0, 2.5)


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan"])
def test_a_value_that_cannot_be_read_stops_the_start_naming_the_setting(monkeypatch, value):
    import app

    monkeypatch.setenv("RELAY_TURN_GRACE_S", value)
    with pytest.raises(app.StartupError, match="RELAY_TURN_GRACE_S"):
        app.check_limit_settings()
