from __future__ import annotations

import json
import logging

import pytest

from shared import subjects
from shared.logs import JsonFormatter, mask_secrets


def test_subjects_follow_the_documented_names() -> None:
    assert subjects.metrics_subject("pve1") == "autoscale.metrics.pve1"
    assert subjects.intents_subject("pve1") == "autoscale.intents.pve1"
    assert subjects.events_subject("pve1", 101) == "autoscale.events.pve1.101"
    assert subjects.events_filter(vmid=101) == "autoscale.events.*.101"


@pytest.mark.parametrize("node", ["pve1.x", "pve 1", "pve>", "*", "", "a" * 64, "pve1\n"])
def test_a_node_name_that_would_change_a_subject_is_refused(node: str) -> None:
    with pytest.raises(ValueError):
        subjects.metrics_subject(node)


@pytest.mark.parametrize("vmid", [99, 1_000_000_000, -1])
def test_a_vmid_outside_proxmox_range_is_refused(vmid: int) -> None:
    with pytest.raises(ValueError):
        subjects.events_subject("pve1", vmid)


def test_secrets_are_masked_in_messages_and_fields() -> None:
    assert "hunter2" not in mask_secrets("ssh failed: password=hunter2")
    record = logging.LogRecord("x", logging.INFO, "f", 1, "token: abc123 done", None, None)
    record.ssh_password = "hunter2"
    record.stderr = "line1\nline2\x1b[31m"
    line = JsonFormatter("actuator").format(record)
    entry = json.loads(line)
    assert "\n" not in line.strip()
    assert entry["ssh_password"] == "***REDACTED***"
    assert "abc123" not in entry["msg"]
    assert entry["stderr"] == "line1?line2?[31m"
