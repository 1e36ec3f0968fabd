"""`EngineConfig` checks every field when it is made: a bad value is a UsageError naming the
field, never a failure deep inside a run."""

from __future__ import annotations

from typing import Any

import pytest

from bulkgroups.engine import EngineConfig
from bulkgroups.errors import UsageError
from bulkgroups.model import RateSpec


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("concurrency", 0),
        ("concurrency", 2.5),
        ("rate", "20/s"),
        ("write_rate", 20),
        ("jitter", -0.1),
        ("jitter", float("nan")),
        ("max_members", 0),
        ("max_removals", -1),  # None turns the check off (the CLI's -1)
        ("daily_limit", -5),
        ("verify", "yes"),
        ("verify_delay", -1),
        ("retry", None),
        ("shard", (5, 2)),
        ("shard", (0, 0)),
        ("shard", (-1, 3)),
        ("shard", [0, 2]),
        ("chats_per_account", 0),
        ("failure_streak_slowdown", 0),
        ("failure_streak_defer", 0),
        ("interrupt_grace", -1),
        ("seed", "7"),
        ("only_accounts", ["acc_1"]),  # a tuple: a config is a value
        ("only_accounts", ("",)),
        ("only_chats", ("acc_1/c1", None)),
        ("max_removal_percent", 0),
        ("max_removal_percent", 100.5),
        ("max_removal_percent", float("nan")),
        ("resolve_max_age", -1),
        ("resolve_max_age", float("nan")),
        ("resolve_max_age", "30d"),
    ],
)
def test_a_bad_setting_is_a_usage_error_naming_it(field: str, value: Any) -> None:
    with pytest.raises(UsageError, match=f"EngineConfig.{field} "):
        EngineConfig(**{field: value})


def test_good_settings_are_kept() -> None:
    config = EngineConfig(
        concurrency=1,
        rate=None,
        write_rate=RateSpec(1, 60.0),
        max_removals=None,
        daily_limit=0,
        shard=(1, 2),
        failure_streak_slowdown=1,
        failure_streak_defer=1,
        verify_delay=0,
    )
    assert (config.max_removals, config.shard, config.daily_limit) == (None, (1, 2), 0)
