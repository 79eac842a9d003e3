"""API tokens, roles and ACLs of the simulated node, in Proxmox's own file formats.

- `<root>/etc/pve/user.cfg` as `PVE::AccessControl::parse_user_config` reads it:
  `user:<userid>:<enable>:<expire>:::::::`, `token:<userid>!<name>:<expire>:<privsep>:<comment>:`,
  `role:<name>:<priv>,<priv>:`, `acl:<propagate>:<path>:<user or token>:<role>:`.
- `<root>/etc/pve/priv/token.cfg`: `<userid>!<name> <secret>` per line (`PVE::Cluster::verify_token`).

Checks follow `PVE::AccessControl::verify_token` and `roles` and `PVE::RPCEnvironment`
`permissions`/`check`: root@pam may do anything; along the path the deepest level with
an ACL for the principal replaces what was above (a role applies below its own path only
with propagate=1); a privilege-separated token gets only privileges its user also has;
a missing privilege is `403 Permission check failed (<path>, <priv>)`.
Groups, pools and realms other than the token's are not simulated.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

from simnode.atomic import read_text, write_atomic

# The privileges of pve-access-control's built-in roles that the simulation needs.
ALL_PRIVILEGES = frozenset(
    {
        "Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.Audit", "Pool.Audit",
        "Sys.Audit", "Sys.Modify", "Sys.PowerMgmt", "Sys.Console", "Sys.Syslog",
        "VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone", "VM.Config.CDROM", "VM.Config.CPU",
        "VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory",
        "VM.Config.Network", "VM.Config.Options", "VM.Console", "VM.Migrate", "VM.Monitor",
        "VM.PowerMgmt", "VM.Snapshot", "VM.Snapshot.Rollback",
    }
)  # fmt: skip
BUILTIN_ROLES: dict[str, frozenset[str]] = {
    "Administrator": ALL_PRIVILEGES,
    "NoAccess": frozenset(),
    "PVEAuditor": frozenset({"Datastore.Audit", "Pool.Audit", "Sys.Audit", "VM.Audit"}),
}


class AuthError(Exception):
    """401: the text is what pveproxy puts in the status line."""


class PermissionDenied(Exception):
    """403 `Permission check failed (<path>, <priv>)` (`PVE::Exception::raise_perm_exc`)."""

    def __init__(self, path: str, privilege: str) -> None:
        super().__init__(f"Permission check failed ({path}, {privilege})")


def user_cfg_path(root: str) -> str:
    return os.path.join(root, "etc", "pve", "user.cfg")


def token_cfg_path(root: str) -> str:
    return os.path.join(root, "etc", "pve", "priv", "token.cfg")


@dataclass
class AccessConfig:
    users: set[str] = field(default_factory=set)
    tokens: dict[str, bool] = field(default_factory=dict)  # token id -> privsep
    roles: dict[str, frozenset[str]] = field(default_factory=lambda: dict(BUILTIN_ROLES))
    acls: list[tuple[bool, str, str, str]] = field(default_factory=list)  # propagate, path, who, role
    secrets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str) -> AccessConfig:
        cfg = cls()
        for line in _lines(user_cfg_path(root)):
            kind, *data = [part.strip() for part in line.split(":")]
            if kind == "user" and data:
                cfg.users.add(data[0])
            elif kind == "token" and len(data) >= 3:
                cfg.tokens[data[0]] = data[2] != "0"  # privsep defaults to on
            elif kind == "role" and len(data) >= 2:
                cfg.roles[data[0]] = frozenset(p for p in data[1].split(",") if p)
            elif kind == "acl" and len(data) >= 4:
                for who in data[2].split(","):
                    for role in data[3].split(","):
                        cfg.acls.append((data[0] == "1", _normalize(data[1]), who, role))
        for line in _lines(token_cfg_path(root)):
            token_id, _, secret = line.partition(" ")
            cfg.secrets[token_id] = secret.strip()
        return cfg

    def authenticate(self, header: str | None) -> str:
        """The token id from an `Authorization: PVEAPIToken=<id>=<secret>` header."""
        if not header:
            raise AuthError("No ticket")
        scheme, _, value = header.partition("=")
        if scheme.strip() != "PVEAPIToken":
            raise AuthError("No ticket")
        token_id, sep, secret = value.rpartition("=")
        user, _, name = token_id.partition("!")
        if not sep or not name or user not in self.users or token_id not in self.tokens:
            raise AuthError("Authentication failed!")
        expected = self.secrets.get(token_id, "")
        if not expected or not secrets.compare_digest(expected.encode(), secret.encode()):
            raise AuthError("Authentication failed!")
        return token_id

    def privileges(self, principal: str, path: str) -> frozenset[str]:
        if principal == "root@pam":
            return ALL_PRIVILEGES
        user, _, name = principal.partition("!")
        own = self._acl_privileges(principal, path)
        if not name:
            return own
        user_privs = self.privileges(user, path)
        return own & user_privs if self.tokens.get(principal, True) else user_privs

    def check(self, principal: str, path: str, privileges: tuple[str, ...]) -> None:
        held = self.privileges(principal, path)
        for privilege in privileges:
            if privilege not in held:
                raise PermissionDenied(path, privilege)

    def has(self, principal: str, path: str, privilege: str) -> bool:
        return privilege in self.privileges(principal, path)

    def _acl_privileges(self, principal: str, path: str) -> frozenset[str]:
        levels = ["/"] + ["/" + "/".join(path.strip("/").split("/")[: i + 1]) for i in range(path.count("/"))]
        target = _normalize(path)
        roles: set[str] = set()
        for level in dict.fromkeys(levels):
            here = {
                role for propagate, acl_path, who, role in self.acls
                if who == principal and acl_path == level and (propagate or level == target)
            }  # fmt: skip
            if here:
                roles = here  # a deeper ACL replaces what was inherited
        privileges: set[str] = set()
        for role in roles:
            privileges |= self.roles.get(role, frozenset())
        return frozenset(privileges)


def _normalize(path: str) -> str:
    return "/" + path.strip("/") if path.strip("/") else "/"


def _lines(path: str) -> list[str]:
    try:
        text = read_text(path)
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def add_token(
    root: str | os.PathLike[str],
    token_id: str,
    privileges: tuple[str, ...] | None,
    *,
    path: str = "/",
    privsep: bool = True,
) -> str:
    """Create user, token, a role with `privileges` and its ACL (as `pveum` would); returns the secret.

    `privileges=None` gives the token no ACL at all.
    """
    root_s = os.fspath(root)
    user = token_id.partition("!")[0]
    role = "Sim-" + token_id.replace("@", "-").replace("!", "-")
    lines = _lines(user_cfg_path(root_s))
    if not any(line.startswith(f"user:{user}:") for line in lines):
        lines.append(f"user:{user}:1:0::::::")
    lines.append(f"token:{token_id}:0:{int(privsep)}::")
    if privileges is not None:
        lines.append(f"role:{role}:{','.join(privileges)}:")
        if privsep:
            lines.append(f"acl:1:{path}:{token_id}:{role}:")
        lines.append(f"acl:1:{path}:{user}:{role}:")
    os.makedirs(os.path.dirname(user_cfg_path(root_s)), exist_ok=True)
    write_atomic(user_cfg_path(root_s), "\n".join(lines) + "\n")
    secret = _uuid_secret()
    tokens = [line for line in _lines(token_cfg_path(root_s)) if not line.startswith(f"{token_id} ")]
    tokens.append(f"{token_id} {secret}")
    os.makedirs(os.path.dirname(token_cfg_path(root_s)), exist_ok=True)
    write_atomic(token_cfg_path(root_s), "\n".join(tokens) + "\n")
    return secret


def _uuid_secret() -> str:
    import uuid  # Proxmox token secrets are random UUIDs

    return str(uuid.uuid4())
