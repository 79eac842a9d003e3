"""The original's step formulas, reproduced exactly (worked examples from §2.6 of the reference)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.decider.policy.offpeak import is_off_peak
from services.decider.policy.steps import (
    behaviour_multiplier,
    cpu_down_target,
    cpu_up_increment,
    memory_down_target,
    memory_up_increment,
)
from services.decider.policy.thresholds import is_above, is_below
from shared.config import ScalingPolicy


def policy(**knobs: object) -> ScalingPolicy:
    return ScalingPolicy.model_validate(knobs)


@pytest.mark.parametrize(
    ("cpu", "knobs", "expected"),
    [
        pytest.param(95.0, {}, 2, id="95% over 80 wants 7 cores, capped by core_max_increment 2"),
        pytest.param(82.0, {}, 1, id="82% over 80 gives the core_min_increment of 1"),
        pytest.param(100.0, {"core_max_increment": 3}, 3, id="100% with max increment 3 gives 3"),
        pytest.param(90.0, {"cpu_scale_divisor": 5.0}, 2, id="a larger divisor gives a smaller step"),
    ],
)
def test_cpu_scale_up_step_is_the_originals(cpu: float, knobs: dict[str, object], expected: int) -> None:
    assert cpu_up_increment(cpu, policy(**knobs)) == expected


@pytest.mark.parametrize(
    ("cpu", "cores", "knobs", "expected"),
    [
        pytest.param(0.0, 4, {}, 1, id="0% at 4 cores with min 1 drops to 1 core in one step"),
        pytest.param(18.0, 4, {}, 3, id="18% just under 20 removes one core"),
        pytest.param(10.0, 4, {"min_cores": 3}, 3, id="never below min_cores"),
        pytest.param(15.0, 8, {"max_cores": 8}, 6, id="15% removes int(5/2) = 2 cores"),
    ],
)
def test_cpu_scale_down_target_is_the_originals(
    cpu: float, cores: int, knobs: dict[str, object], expected: int
) -> None:
    assert cpu_down_target(cpu, cores, policy(**knobs)) == expected


@pytest.mark.parametrize(
    ("memory", "knobs", "multiplier", "expected"),
    [
        pytest.param(90.0, {}, 1.0, 1706, id="90% at upper 80 adds 1706 MB (1024 becomes 2730)"),
        pytest.param(90.0, {"memory_upper_threshold": 70}, 1.0, 3413, id="shipped upper 70 adds 3413 MB"),
        pytest.param(81.0, {}, 1.0, 256, id="just over the threshold adds memory_min_increment"),
        pytest.param(81.0, {}, 0.5, 170, id="conservative halves the base step, the proportional one wins"),
        pytest.param(81.0, {}, 2.0, 512, id="aggressive doubles the base step"),
    ],
)
def test_memory_scale_up_step_is_the_originals(
    memory: float, knobs: dict[str, object], multiplier: float, expected: int
) -> None:
    assert memory_up_increment(memory, policy(**knobs), multiplier) == expected


@pytest.mark.parametrize(
    ("memory", "current", "knobs", "multiplier", "expected"),
    [
        pytest.param(
            5.0, 600, {}, 1.0, 512, id="600 MB min 512 chunk 128 clamps at 512 (original gives 472)"
        ),
        pytest.param(5.0, 4096, {}, 1.0, 3968, id="a 128 MB chunk comes off 4096"),
        pytest.param(5.0, 4096, {}, 2.0, 3840, id="aggressive takes a 256 MB chunk"),
        pytest.param(5.0, 4096, {}, 0.8, 3994, id="off-peak takes 0.8 of the chunk"),
        pytest.param(5.0, 4096, {"min_decrease_chunk": 1024}, 1.0, 3072, id="a tier chunk of 1024"),
    ],
)
def test_memory_scale_down_target_is_the_originals_but_never_below_min_memory(
    memory: float, current: int, knobs: dict[str, object], multiplier: float, expected: int
) -> None:
    assert memory_down_target(memory, current, policy(**knobs), multiplier) == expected


@pytest.mark.parametrize(
    ("behaviour", "off_peak", "expected"),
    [
        pytest.param("normal", False, 1.0, id="normal is 1"),
        pytest.param("conservative", False, 0.5, id="conservative is 0.5"),
        pytest.param("aggressive", False, 2.0, id="aggressive is 2"),
        pytest.param("normal", True, 0.8, id="off-peak multiplies by 0.8"),
        pytest.param("aggressive", True, 1.6, id="aggressive off-peak is 1.6"),
    ],
)
def test_behaviour_multiplier(behaviour: str, off_peak: bool, expected: float) -> None:
    assert behaviour_multiplier(behaviour, off_peak) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("utc_hour", "zone", "start", "end", "expected"),
    [
        pytest.param(23, "UTC", 22, 6, True, id="23h inside a window wrapping midnight"),
        pytest.param(5, "UTC", 22, 6, True, id="5h inside a window wrapping midnight"),
        pytest.param(6, "UTC", 22, 6, False, id="the end hour is outside"),
        pytest.param(12, "UTC", 22, 6, False, id="noon is peak"),
        pytest.param(3, "UTC", 1, 5, True, id="3h inside a same-day window"),
        pytest.param(0, "UTC", 1, 5, False, id="midnight outside a 1-5 window"),
        pytest.param(21, "Europe/Rome", 22, 6, True, id="21h UTC is 22h in Rome in January"),
        pytest.param(5, "Europe/Rome", 22, 6, False, id="5h UTC is 6h in Rome, peak again"),
        pytest.param(10, "UTC", 7, 7, False, id="start equal to end is an empty window"),
    ],
)
def test_off_peak_window_in_the_configured_timezone(
    utc_hour: int, zone: str, start: int, end: int, expected: bool
) -> None:
    at = datetime(2026, 1, 5, utc_hour, 30, tzinfo=UTC)
    assert is_off_peak(at, ZoneInfo(zone), start, end) is expected


@pytest.mark.parametrize(
    ("usage", "tolerance", "above", "below"),
    [
        pytest.param(85.0, 0.0, True, False, id="85% is above 80 without tolerance"),
        pytest.param(85.0, 0.1, False, False, id="85% is inside the band with tolerance 0.1"),
        pytest.param(89.0, 0.1, True, False, id="89% is above 88"),
        pytest.param(19.0, 0.1, False, False, id="19% is not below 18"),
        pytest.param(17.0, 0.1, False, True, id="17% is below 18"),
    ],
)
def test_tolerance_widens_the_dead_band(usage: float, tolerance: float, above: bool, below: bool) -> None:
    assert is_above(usage, 80.0, tolerance) is above
    assert is_below(usage, 20.0, tolerance) is below
