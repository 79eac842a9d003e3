"""The pause and dry-run entries every writer and reader share (shared/pauses.py,
shared/dry_run.py): one key per scope, read back to the same target, whatever the node
is called."""

from __future__ import annotations

import pytest

from shared.dry_run import UNREADABLE, DryRunEntry, effective_dry_run, read_dry_run
from shared.pauses import PauseTarget, pause_key, pause_target


@pytest.mark.parametrize(
    ("node", "vmid", "key", "scope"),
    [
        pytest.param(None, None, "pause.all", "global", id="everything"),
        pytest.param("pve1", None, "pause.pve1.all", "node", id="one node"),
        pytest.param("pve1", 101, "pause.pve1.101", "container", id="one container"),
        pytest.param("all", None, "pause.all.all", "node", id="a node called all is not the global key"),
        pytest.param("123", None, "pause.123.all", "node", id="a node with a numeric name"),
        pytest.param("123", 456, "pause.123.456", "container", id="a container of that node"),
    ],
)
def test_each_scope_has_one_key_read_back_to_the_same_target(
    node: str | None, vmid: int | None, key: str, scope: str
) -> None:
    assert pause_key(node, vmid) == key
    target = pause_target(key)
    assert target == PauseTarget(node=node, vmid=vmid)
    assert target is not None and target.scope == scope


@pytest.mark.parametrize(
    ("node", "vmid", "message"),
    [
        pytest.param(None, 101, "needs its node", id="vmid without node"),
        pytest.param("pve1.evil", None, "node name", id="a dot would add a key level"),
        pytest.param("pve>", 101, "node name", id="wildcard"),
        pytest.param("pve1", 5, "outside", id="vmid below 100"),
    ],
)
def test_invalid_targets_are_refused(node: str | None, vmid: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pause_key(node, vmid)


@pytest.mark.parametrize(
    "key", ["dry_run", "pause.", "pause.pve1", "pause.pve1.abc", "pause.pve 1.101", "other.pve1.101"]
)
def test_keys_that_are_not_pauses_are_not_read_as_pauses(key: str) -> None:
    assert pause_target(key) is None


def test_the_dry_run_switch_wins_over_the_file_and_an_unreadable_one_means_dry_run() -> None:
    assert effective_dry_run(None, configured=True) == (True, "configuration")
    assert effective_dry_run(DryRunEntry(enabled=False), configured=True) == (False, "operator")
    assert read_dry_run(None) is None
    assert read_dry_run(b'{"enabled": false, "reason": "go"}') == DryRunEntry(enabled=False, reason="go")
    assert read_dry_run(b'{"enabled": "maybe"}') is UNREADABLE
    assert UNREADABLE.enabled is True
