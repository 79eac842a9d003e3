from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import ConfigError, load_config, parse_config

FIXTURE = Path(__file__).parent.parent / "fixtures" / "lxc_autoscale.yaml"


def test_the_original_shipped_yaml_loads_with_its_tiers() -> None:
    config = load_config(FIXTURE, env={"SSH_SECRET": "hunter2"})
    assert set(config.tiers) == {"webservers", "other"}
    web = config.policy_for(102)
    assert (web.cpu_upper_threshold, web.min_memory, web.memory_min_increment) == (70, 4096, 1024)


def test_a_tier_inherits_what_it_does_not_set_from_default_not_from_code_defaults() -> None:
    config = load_config(FIXTURE, env={})
    other = config.policy_for(103)
    # memory_lower_threshold and min_memory come from DEFAULT (20, 256), not the code default 512.
    assert other.min_memory == 256
    assert other.memory_upper_threshold == 50
    assert other.cpu_lower_threshold == 20


def test_a_container_in_no_tier_gets_default() -> None:
    config = load_config(FIXTURE, env={})
    assert config.policy_for(999) is config.defaults
    assert config.defaults.memory_upper_threshold == 70


def test_ignore_lxc_accepts_the_original_string_ids() -> None:
    config = load_config(FIXTURE, env={})
    assert config.is_ignored(104)
    assert not config.is_ignored(102)


def test_env_expansion_uses_the_variable_or_its_default() -> None:
    config = load_config(FIXTURE, env={"SSH_SECRET": "hunter2", "TZ_NAME": "UTC"})
    assert config.defaults.timezone == "UTC"
    assert config.defaults.ssh_password is not None
    assert config.defaults.ssh_password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(config)
    defaulted = load_config(FIXTURE, env={})
    assert defaulted.defaults.timezone == "Europe/Rome"


def test_an_unset_variable_without_default_is_reported() -> None:
    config = load_config(FIXTURE, env={})
    assert any("SSH_SECRET" in w and "DEFAULT.ssh_password" in w for w in config.warnings)


def test_legacy_environment_overrides_win_over_the_file() -> None:
    config = load_config(
        FIXTURE,
        env={"SSH_SECRET": "x", "LXC_AUTOSCALE_SSH_PASSWORD": "from-env", "LXC_AUTOSCALE_MAX_CORES": "8"},
    )
    assert config.defaults.ssh_password is not None
    assert config.defaults.ssh_password.get_secret_value() == "from-env"
    assert config.defaults.max_cores == 8


def test_every_error_names_the_file_and_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "DEFAULT:\n  reserve_cpu_percent: 150\n  timezone: Mars/Olympus\n"
        "TIER_web:\n  lxc_containers: [101]\n  min_cores: 8\n  max_cores: 2\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(bad, env={})
    problems = caught.value.problems
    assert any(p.startswith(f"{bad}: DEFAULT.reserve_cpu_percent") for p in problems)
    assert any("TIER_web" in p and "min_cores must not exceed max_cores" in p for p in problems)
    assert str(bad) in str(caught.value)


def test_lower_threshold_above_upper_is_refused() -> None:
    with pytest.raises(ConfigError, match="cpu_lower_threshold must be below cpu_upper_threshold"):
        parse_config({"DEFAULT": {"cpu_lower_threshold": 90, "cpu_upper_threshold": 80}}, env={})


def test_unknown_keys_and_sections_are_reported_not_silently_accepted() -> None:
    config = parse_config(
        {"DEFAULT": {"cpu_uper_threshold": 70}, "TIER_x": {"lxc_containers": [101], "colour": 1}, "FOO": {}},
        path="f.yaml",
        env={},
    )
    assert "f.yaml: DEFAULT.cpu_uper_threshold: unknown key, ignored" in config.warnings
    assert "f.yaml: TIER_x.colour: unknown key, ignored" in config.warnings
    assert "f.yaml: FOO: unknown section, ignored" in config.warnings


def test_invalid_yaml_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("DEFAULT: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "absent.yaml")


def test_the_last_tier_listing_a_container_wins_with_a_warning() -> None:
    config = parse_config(
        {
            "TIER_a": {"lxc_containers": [101], "max_cores": 3},
            "TIER_b": {"lxc_containers": [101], "max_cores": 6},
        },
        env={},
    )
    assert config.policy_for(101).max_cores == 6
    assert any("101 is also in TIER_a" in w for w in config.warnings)


def test_policy_version_changes_when_a_threshold_changes() -> None:
    a = parse_config({"DEFAULT": {"cpu_upper_threshold": 80}}, env={})
    b = parse_config({"DEFAULT": {"cpu_upper_threshold": 85}}, env={})
    assert a.policy_version != b.policy_version
    assert a.policy_version == parse_config({"DEFAULT": {"cpu_upper_threshold": 80}}, env={}).policy_version


def test_remote_mode_without_a_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="proxmox_host is not set"):
        parse_config({"DEFAULT": {"use_remote_proxmox": True}}, env={})
    with pytest.raises(ConfigError, match="proxmox_host"):
        parse_config({"DEFAULT": {"use_remote_proxmox": True, "proxmox_host": "pve; rm -rf /"}}, env={})


def test_config_check_command_reports_ok_and_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    assert main(["config", "check", str(FIXTURE)]) == 0
    assert "OK (policy version" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("DEFAULT:\n  min_memory: 8\n")
    assert main(["config", "check", str(bad)]) == 2
    assert "DEFAULT.min_memory" in capsys.readouterr().err


def test_policy_version_ignores_settings_that_do_not_shape_decisions() -> None:
    base = parse_config({"DEFAULT": {"cpu_upper_threshold": 80}}, env={})
    rotated = parse_config(
        {
            "DEFAULT": {
                "cpu_upper_threshold": 80,
                "ssh_password": "new-secret",
                "ssh_user": "ops",
                "smtp_server": "mail.example.com",
                "smtp_password": "other",
                "log_file": "/tmp/x.log",
            },
            "DECIDER": {"batch": 64},
            "NATS": {"url": "nats://10.0.0.1:4222"},
        },
        env={},
    )
    assert rotated.policy_version == base.policy_version
    energy = parse_config({"DEFAULT": {"cpu_upper_threshold": 80, "energy_mode": True}}, env={})
    assert energy.policy_version != base.policy_version


# ---------------------------------------------------------------- one resolution


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "autoscale.yaml"
    path.write_text(text)
    return path


def test_resolve_applies_file_then_environment_then_flags(tmp_path: Path) -> None:
    from shared.service_config import resolve

    path = _write(
        tmp_path,
        "DEFAULT:\n  max_cores: 6\nNATS:\n  url: nats://file:4222\n  user: from-file\n"
        "ACTUATOR:\n  node: pve-file\n  pct_path: /file/pct\n",
    )
    only_file = resolve(path, env={})
    assert (only_file.nats.url, only_file.nats.user) == ("nats://file:4222", "from-file")
    env = {"NATS_URL": "nats://env:4222", "NATS_PASSWORD": "pw", "LXC_AUTOSCALE_MAX_CORES": "8"}
    with_env = resolve(path, env=env)
    assert (with_env.nats.url, with_env.nats.user) == ("nats://env:4222", "from-file")
    assert with_env.nats.password is not None and with_env.nats.password.get_secret_value() == "pw"
    assert with_env.defaults.max_cores == 8
    flags = {"nats": {"url": "nats://flag:4222"}, "actuator": {"node": "pve-flag", "pct_path": None}}
    with_flags = resolve(path, env=env, flags=flags)
    assert with_flags.nats.url == "nats://flag:4222"
    assert with_flags.nats.password is not None  # a flag changes only what it names
    assert (with_flags.actuator.node, with_flags.actuator.pct_path) == ("pve-flag", "/file/pct")


def test_resolve_reads_only_the_environment_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.service_config import resolve

    monkeypatch.setenv("NATS_URL", "nats://process-env:4222")
    monkeypatch.setenv("LXC_AUTOSCALE_MAX_CORES", "7")
    config = resolve(_write(tmp_path, "DEFAULT:\n  max_cores: 6\n"), env={})
    assert config.nats.url == "nats://127.0.0.1:4222"
    assert config.defaults.max_cores == 6


def test_resolve_reports_bad_environment_and_bad_flags_as_config_errors(tmp_path: Path) -> None:
    from shared.service_config import resolve

    path = _write(tmp_path, "DEFAULT: {}\n")
    with pytest.raises(ConfigError, match="NATS_"):
        resolve(path, env={"NATS_URL": "http://wrong"})
    with pytest.raises(ConfigError, match=r"actuator\.node"):
        resolve(path, env={}, flags={"actuator": {"node": "bad node;"}})
    with pytest.raises(ConfigError, match="cannot read the file"):
        resolve(tmp_path / "absent.yaml", env={})


def test_a_horizontal_group_loads_the_original_keys_as_they_are() -> None:
    config = parse_config(
        {
            "DEFAULT": {"timeout_extended": 240},
            "HORIZONTAL_SCALING_GROUP_1": {
                "base_snapshot_name": "101", "min_containers": 2, "max_instances": 4,
                "starting_clone_id": 300, "lxc_containers": ["102"], "clone_network_type": "static",
                "static_ip_range": ["192.168.1.50", "192.168.1.51/25"],
                "horiz_cpu_upper_threshold": 75, "scale_out_grace_period": 120,
            },
        }
    )  # fmt: skip
    group = config.groups["1"]
    assert (group.source_vmid, group.min_size, group.max_instances) == (101, 2, 4)
    assert group.lxc_containers == [102]
    assert [str(ip) for ip in group.static_ip_range] == ["192.168.1.50/24", "192.168.1.51/25"]
    assert (group.scale_in_policy, group.bridge, group.placement) == ("stop", "vmbr0", "same-node")
    assert group.gateway is None and group.clone_mode is None
    assert group.clone_timeout(config.defaults) == 240  # the original's timeout_extended
    assert not group.is_dry_run(config.defaults)


PATH = "/etc/g.yaml"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"scale_in_policy": "destroy"}, "scale_in_policy: destroy also needs allow_destroy: true"),
        ({"min_instances": 2, "min_containers": 3}, "min_instances and its alias min_containers disagree"),
        ({"min_instances": 6, "max_instances": 5}, "min_instances 6 exceeds max_instances 5"),
        ({"clone_mode": "linked", "target_storage": "local-lvm"}, "target_storage needs clone_mode: full"),
        ({"clone_network_type": "static"}, "clone_network_type: static needs static_ip_range"),
        ({"horiz_cpu_lower_threshold": 90}, "horiz_cpu_lower_threshold must be below"),
        ({"base_snapshot_name": "snap-1"}, "base_snapshot_name: Value error, the source container's CTID"),
        ({"bridge": "vmbr0; reboot"}, "HORIZONTAL_SCALING_GROUP_web.bridge"),
        ({"static_ip_range": ["10.0.0.300"], "clone_network_type": "static"}, "static_ip_range.0"),
        ({"static_ip_range": ["10.0.0.21", "fd00::21/64"], "clone_network_type": "static"},
         "static_ip_range: Value error, IPv6 is not supported (fd00::21/64): a clone's net0 gets an IPv4"),
        ({"gateway": "fd00::1"}, "gateway: Value error, IPv6 is not supported (fd00::1)"),
    ],
)
def test_a_group_with_unsafe_or_contradicting_keys_is_refused_naming_file_and_key(
    section: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"HORIZONTAL_SCALING_GROUP_web": {"base_snapshot_name": "101", **section}}, path=PATH)
    assert "/etc/g.yaml: HORIZONTAL_SCALING_GROUP_web" in str(caught.value)
    assert expected in str(caught.value)


def test_destroy_with_allow_destroy_and_the_new_keys_load() -> None:
    config = parse_config({"HORIZONTAL_SCALING_GROUP_Web": {
        "base_snapshot_name": 101, "scale_in_policy": "destroy", "allow_destroy": True, "clone_mode": "full",
        "target_storage": "local-lvm", "bridge": "vmbr1", "gateway": "10.0.0.1", "ready_after_s": 30,
        "placement": "least-loaded", "dry_run": True, "clone_timeout_s": 600,
    }})  # fmt: skip
    group = config.groups["web"]  # the tag is lower case, so is the name
    assert (group.scale_in_policy, str(group.gateway)) == ("destroy", "10.0.0.1")
    assert group.placement == "least-loaded"
    assert group.clone_timeout(config.defaults) == 600 and group.is_dry_run(config.defaults)


def test_an_address_in_two_groups_pools_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({
            "HORIZONTAL_SCALING_GROUP_a": {"base_snapshot_name": "101",
                                           "static_ip_range": ["10.0.0.21", "10.0.0.22"]},
            "HORIZONTAL_SCALING_GROUP_b": {"base_snapshot_name": "102", "static_ip_range": ["10.0.0.22/25"]},
        }, path="/etc/g.yaml")  # fmt: skip
    assert str(caught.value).count("also in") == 1  # the prefix is the netmask: .22/25 is .22
    assert (
        "/etc/g.yaml: HORIZONTAL_SCALING_GROUP_b.static_ip_range: 10.0.0.22 is also in "
        "HORIZONTAL_SCALING_GROUP_a.static_ip_range; give each group its own addresses"
    ) in str(caught.value)
    disjoint = parse_config({
        "HORIZONTAL_SCALING_GROUP_a": {"base_snapshot_name": "101", "static_ip_range": ["10.0.0.21"]},
        "HORIZONTAL_SCALING_GROUP_b": {"base_snapshot_name": "102", "static_ip_range": ["10.0.0.22"]},
    })  # fmt: skip
    assert set(disjoint.groups) == {"a", "b"}


def test_a_container_in_two_groups_or_a_bad_group_name_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({
            "HORIZONTAL_SCALING_GROUP_a": {"base_snapshot_name": "101"},
            "HORIZONTAL_SCALING_GROUP_b": {"base_snapshot_name": "102", "lxc_containers": [101]},
            "HORIZONTAL_SCALING_GROUP_c.d": {"base_snapshot_name": "103"},
        }, path="/etc/g.yaml")  # fmt: skip
    text = str(caught.value)
    assert "HORIZONTAL_SCALING_GROUP_b: container 101 is also in group 'a'" in text
    assert "HORIZONTAL_SCALING_GROUP_c.d: the group name 'c.d' must be" in text
