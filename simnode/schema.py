"""The container option schema of pve-container (`PVE::LXC::Config` $confdesc), trimmed.

Two checkers, as in Proxmox:
- `check_param` is `PVE::JSONSchema::check_prop`, used on `pct set` parameters;
- `check_conf_value` is `PVE::LXC::Config->check_type`, used when parsing a .conf file.
Their error texts are copied from those functions.
"""

from __future__ import annotations

import re

# (type, minimum, maximum, enum, format)
Opt = tuple[str, float | None, float | None, tuple[str, ...] | None, str | None]

_INT = "integer"
_NUM = "number"
_BOOL = "boolean"
_STR = "string"


def _o(
    kind: str,
    lo: float | None = None,
    hi: float | None = None,
    enum: tuple[str, ...] | None = None,
    fmt: str | None = None,
) -> Opt:
    return (kind, lo, hi, enum, fmt)


CONF_OPTIONS: dict[str, Opt] = {
    "arch": _o(_STR, enum=("amd64", "arm64", "armhf", "i386", "riscv32", "riscv64")),
    "cmode": _o(_STR, enum=("console", "shell", "tty")),
    "console": _o(_BOOL),
    "cores": _o(_INT, 1, 8192),
    "cpulimit": _o(_NUM, 0, 8192),
    "cpuunits": _o(_INT, 0, 500000),
    "debug": _o(_BOOL),
    "description": _o(_STR),
    "entrypoint": _o(_STR),
    "env": _o(_STR),
    "features": _o(_STR),
    "hookscript": _o(_STR),
    "hostname": _o(_STR),
    "lock": _o(
        _STR,
        enum=(
            "backup",
            "create",
            "destroyed",
            "disk",
            "fstrim",
            "migrate",
            "mounted",
            "rollback",
            "snapshot",
            "snapshot-delete",
        ),
    ),
    "memory": _o(_INT, 16),
    "nameserver": _o(_STR),
    "onboot": _o(_BOOL),
    "ostype": _o(
        _STR,
        enum=(
            "alpine",
            "archlinux",
            "centos",
            "debian",
            "devuan",
            "fedora",
            "gentoo",
            "nixos",
            "opensuse",
            "ubuntu",
            "unmanaged",
        ),
    ),
    "parent": _o(_STR),
    "protection": _o(_BOOL),
    "rootfs": _o(_STR),
    "searchdomain": _o(_STR),
    "snaptime": _o(_INT, 0),
    "startup": _o(_STR),
    "swap": _o(_INT, 0),
    "tags": _o(_STR),
    "template": _o(_BOOL),
    "timezone": _o(_STR),
    "tty": _o(_INT, 0, 6),
    "unprivileged": _o(_BOOL),
}

# Indexed options: prefix -> (count, schema), e.g. net0..net31.
INDEXED: dict[str, tuple[int, Opt]] = {
    "net": (32, _o(_STR)),
    "mp": (256, _o(_STR)),
    "unused": (256, _o(_STR)),
    "dev": (256, _o(_STR)),
}

# Extra parameters `pct set` accepts besides config keys (API2::LXC::Config update_vm).
SET_EXTRA: dict[str, Opt] = {
    "delete": _o(_STR, fmt="pve-configid-list"),
    "revert": _o(_STR, fmt="pve-configid-list"),
    "digest": _o(_STR),
}

# Keys the API accepts but that only appear inside snapshot sections.
_SET_EXCLUDED = frozenset({"parent", "snaptime"})

_INDEXED_RE = re.compile(r"^(net|mp|unused|dev)(\d+)$")
_IS_INTEGER = re.compile(r"^[+-]?\d+$")
_IS_NUMBER = re.compile(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$")
_VMID_RE = re.compile(r"^[1-9][0-9]{2,8}$")
_CONFIGID_RE = re.compile(r"^[a-z][a-z0-9_\-]+$", re.IGNORECASE)


def conf_option(name: str) -> Opt | None:
    """Schema of a config key, or None if pve-container does not know it."""
    opt = CONF_OPTIONS.get(name)
    if opt is not None:
        return opt
    m = _INDEXED_RE.match(name)
    if m and m.group(2) == str(int(m.group(2))):
        count, indexed = INDEXED[m.group(1)]
        if int(m.group(2)) < count:
            return indexed
    return None


def set_option(name: str) -> Opt | None:
    """Schema of a `pct set` parameter (config keys + delete/revert/digest)."""
    if name in _SET_EXCLUDED:
        return None
    return SET_EXTRA.get(name) or conf_option(name)


def all_set_option_names() -> list[str]:
    """Every `pct set` option name, sorted; only needed to explain an ambiguous prefix."""
    names = [n for n in CONF_OPTIONS if n not in _SET_EXCLUDED] + list(SET_EXTRA)
    for prefix, (count, _) in INDEXED.items():
        names.extend(f"{prefix}{i}" for i in range(count))
    return sorted(names)


def _format_num(value: float) -> str:
    """Perl prints 8192.0 as 8192."""
    return str(int(value)) if float(value).is_integer() else str(value)


def check_vmid(value: str) -> str | None:
    """The `pve-vmid` standard option: integer, format pve-vmid (100 - 999999999)."""
    if not _IS_INTEGER.match(value):
        return f"type check ('integer') failed - got '{value}'"
    if not _VMID_RE.match(value):
        # The format error keeps its trailing newline, as JSONSchema stores `$@`.
        return "invalid format - value does not look like a valid VM ID\n"
    return None


def check_configid(value: str) -> str | None:
    if not _CONFIGID_RE.match(value):
        return f"invalid format - invalid configuration ID '{value}'\n"
    return None


def check_param(opt: Opt, value: str) -> str | None:
    """`PVE::JSONSchema::check_prop` for a scalar: type, format, min/max, enum."""
    kind, lo, hi, enum, fmt = opt
    if kind == _INT and not _IS_INTEGER.match(value):
        return f"type check ('integer') failed - got '{value}'"
    if kind == _NUM and not _IS_NUMBER.match(value):
        return f"type check ('number') failed - got '{value}'"
    if kind == _BOOL and value not in ("0", "1"):
        return f"type check ('boolean') failed - got '{value}'"
    if fmt == "pve-configid-list":
        for item in split_list(value):
            if not _CONFIGID_RE.match(item):
                return f"invalid format - invalid configuration ID '{item}'\n"
    if _IS_NUMBER.match(value):
        if hi is not None and float(value) > hi:
            return f"value must have a maximum value of {_format_num(hi)}"
        if lo is not None and float(value) < lo:
            return f"value must have a minimum value of {_format_num(lo)}"
    if enum is not None and value not in enum:
        return f"value '{value}' does not have a value in the enumeration '{', '.join(enum)}'"
    return None


def check_conf_value(key: str, value: str) -> tuple[str, str | None]:
    """`PVE::LXC::Config->check_type`: returns (normalized value, error or None)."""
    opt = conf_option(key)
    if opt is None:
        return value, f"unknown setting '{key}'"
    kind = opt[0]
    if kind == _BOOL:
        low = value.lower()
        if value == "1" or low in ("on", "yes", "true"):
            return "1", None
        if value == "0" or low in ("off", "no", "false"):
            return "0", None
        return value, f"type check ('boolean') failed - got '{value}'"
    if kind == _INT:
        if value.isdigit() and value.isascii():
            return str(int(value)), None
        return value, f"type check ('integer') failed - got '{value}'"
    if kind == _NUM and not re.match(r"^(\d+)(\.\d+)?$", value):
        return value, f"type check ('number') failed - got '{value}'"
    return value, None


def split_list(value: str) -> list[str]:
    """`PVE::Tools::split_list`: items separated by commas, semicolons or whitespace."""
    return [item for item in re.split(r"[,;\s]+", value.strip()) if item]


# ----------------------------------------------------------------------------- formats
# Messages of the registered format checkers in pve-common `PVE/JSONSchema.pm`; a failed
# format check is reported as "invalid format - <message>" (keeping its newline).

_DNS_LABEL = r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)"
_DNS_NAME_RE = re.compile(rf"^({_DNS_LABEL}\.)*{_DNS_LABEL}$")
_NODE_RE = re.compile(r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$")
_STORAGE_ID_RE = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
_TAG_RE = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.IGNORECASE)
SNAPNAME_MAX = 40  # `pve-snapshot-name`: pve-configid, maxLength 40
# `$netconf_desc` in pve-container `src/PVE/LXC/Config.pm`.
NET_KEYS = frozenset(
    {
        "type", "name", "bridge", "hwaddr", "mtu", "ip", "gw", "ip6", "gw6", "firewall", "tag",
        "trunks", "rate", "link_down", "host-managed",
    }
)  # fmt: skip


def check_snapname(value: str) -> str | None:
    """`pve-snapshot-name`: the format first, then the length (check_prop's order)."""
    err = check_configid(value)
    if err:
        return err
    if len(value) > SNAPNAME_MAX:
        return f"value may only be {SNAPNAME_MAX} characters long"
    return None


def check_dns_name(value: str) -> str | None:
    if not _DNS_NAME_RE.match(value):
        return "invalid format - value does not look like a valid DNS name\n"
    return None


def check_node_name(value: str) -> str | None:
    if not _NODE_RE.match(value):
        return "invalid format - value does not look like a valid node name\n"
    return None


def check_storage_id(value: str) -> str | None:
    """`parse_storage_id` (`parse_id`): at least 2 characters, then the allowed ones."""
    if len(value) < 2:
        return f"invalid format - storage ID '{value}' cannot be shorter than 2 characters\n"
    if not _STORAGE_ID_RE.match(value):
        return f"invalid format - storage ID '{value}' contains illegal characters\n"
    return None


def check_tags(value: str) -> str | None:
    """`pve-tag-list`: every item of the split list must be a `pve-tag`."""
    for tag in split_list(value):
        if not _TAG_RE.match(tag):
            return "invalid format - invalid characters in tag\n"
    return None


def unique_tags(value: str) -> str:
    """`PVE::GuestHelpers::get_unique_tags` with the default tag style: lower-cased,
    sorted, duplicates dropped, joined with `;`."""
    return ";".join(sorted({tag.lower() for tag in split_list(value)}))


def check_net(value: str) -> str | None:
    """`pve-lxc-network` as `parse_property_string` checks it: `key=value` parts with
    known keys, no key twice. **[simplified]** the values' own formats are not checked."""
    seen: set[str] = set()
    for part in value.split(","):
        if not part.strip():
            continue
        key, eq, val = part.partition("=")
        if not eq:
            return "invalid format - value without key, but schema does not define a default key\n"
        if not key or not val:
            return "invalid format - missing key in comma-separated list property\n"
        if key in seen:
            return f"invalid format - duplicate key in comma-separated list property: {key}\n"
        if key not in NET_KEYS:
            return f"invalid format - invalid key in comma-separated list property: {key}\n"
        seen.add(key)
    return None


def is_net_key(name: str) -> bool:
    m = _INDEXED_RE.match(name)
    return bool(m) and name.startswith("net")


def check_set_format(name: str, value: str) -> str | None:
    """The format checks of `pct set` parameters that have one (hostname, tags, netN)."""
    if name == "hostname":
        return check_dns_name(value)
    if name == "tags":
        return check_tags(value)
    if is_net_key(name):
        return check_net(value)
    return None
