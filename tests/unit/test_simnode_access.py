"""Tokens, roles and ACLs of the simulated node, checked the way pve-access-control does."""

from __future__ import annotations

from pathlib import Path

import pytest

from simnode import access


def write(root: Path, user_cfg: str, token_cfg: str = "") -> access.AccessConfig:
    (root / "etc" / "pve" / "priv").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "pve" / "user.cfg").write_text(user_cfg)
    (root / "etc" / "pve" / "priv" / "token.cfg").write_text(token_cfg)
    return access.AccessConfig.load(str(root))


USER_CFG = """\
user:ops@pve:1:0::::::
token:ops@pve!full:0:0::
token:ops@pve!sep:0:1::
token:ops@pve!narrow:0:1::
role:Resize:VM.Audit,VM.Config.CPU,VM.Config.Memory:
role:CpuOnly:VM.Audit,VM.Config.CPU:
acl:1:/vms:ops@pve:Resize:
acl:1:/:ops@pve!sep:Administrator:
acl:1:/vms:ops@pve!narrow:Resize:
acl:0:/vms/101:ops@pve!narrow:CpuOnly:
"""


@pytest.mark.parametrize(
    ("principal", "path", "privilege", "held"),
    [
        ("ops@pve", "/vms/101", "VM.Config.Memory", True),
        ("ops@pve", "/nodes/pve1", "Sys.Audit", False),  # the ACL is on /vms only
        ("ops@pve!full", "/vms/200", "VM.Config.Memory", True),  # privsep=0: the user's privileges
        ("ops@pve!sep", "/vms/101", "VM.Config.CPU", True),  # Administrator ∩ the user's Resize
        ("ops@pve!sep", "/vms/101", "VM.PowerMgmt", False),  # …the user lacks it, so the token does
        ("ops@pve!narrow", "/vms/101", "VM.Config.Memory", False),  # the deeper ACL replaces /vms
        ("ops@pve!narrow", "/vms/102", "VM.Config.Memory", True),
        ("root@pam", "/anything", "Sys.Modify", True),
    ],
    ids=lambda v: str(v),
)
def test_privileges_follow_paths_propagation_and_privilege_separation(
    tmp_path: Path, principal: str, path: str, privilege: str, held: bool
) -> None:
    assert write(tmp_path, USER_CFG).has(principal, path, privilege) is held


def test_a_missing_privilege_is_proxmoxs_403_text(tmp_path: Path) -> None:
    rights = write(tmp_path, USER_CFG)
    expected = r"^Permission check failed \(/vms/101, VM.Config.Memory\)$"
    with pytest.raises(access.PermissionDenied, match=expected):
        rights.check("ops@pve!narrow", "/vms/101", ("VM.Audit", "VM.Config.Memory"))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "No ticket"),
        ("Bearer abc", "No ticket"),
        ("PVEAPIToken=ops@pve!full=wrong", "Authentication failed!"),
        ("PVEAPIToken=ops@pve!nosuch=s3cret", "Authentication failed!"),
        ("PVEAPIToken=ops@pve=s3cret", "Authentication failed!"),
    ],
    ids=["no header", "other scheme", "wrong secret", "unknown token", "no token name"],
)
def test_bad_credentials_get_pveproxys_401_texts(tmp_path: Path, header: str | None, message: str) -> None:
    rights = write(tmp_path, USER_CFG, "ops@pve!full s3cret\n")
    with pytest.raises(access.AuthError, match=f"^{message}$"):
        rights.authenticate(header)


def test_a_good_token_authenticates_as_its_token_id(tmp_path: Path) -> None:
    secret = access.add_token(tmp_path, "auto@pve!act", ("VM.Audit",))
    rights = access.AccessConfig.load(str(tmp_path))
    assert rights.authenticate(f"PVEAPIToken=auto@pve!act={secret}") == "auto@pve!act"
    assert rights.has("auto@pve!act", "/vms/101", "VM.Audit")
    assert not rights.has("auto@pve!act", "/vms/101", "VM.Config.CPU")
