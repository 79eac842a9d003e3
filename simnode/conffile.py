"""Read and edit `/etc/pve/lxc/<vmid>.conf` the way pve-container parses it.

Parsing follows `PVE::LXC::Config::parse_pct_config`: `#` lines are the (URI-encoded)
description, `[name]` starts a snapshot section, `[pve:pending]` the pending one,
`lxc.*` keys are raw LXC settings, other lines are `key: value`.

Editing is line based on purpose: only the lines of keys that change are touched,
so comments, snapshots and unknown keys survive byte for byte (see README).
"""

from __future__ import annotations

import re

from simnode import schema

_SECTION_RE = re.compile(r"^\[([a-z][a-z0-9_\-]+)\]\s*$", re.IGNORECASE)
_PENDING_RE = re.compile(r"^\[pve:pending\]\s*$", re.IGNORECASE)
_LXC_RE = re.compile(r"^(lxc\.[a-z0-9_\-\.]+)(:|\s*=)\s*(.*?)\s*$")
_DESC_RE = re.compile(r"^(description):\s*(.*\S)\s*$")
_KEY_RE = re.compile(r"^([a-z][a-z_]*\d*):\s*(.+?)\s*$")
_KEY_PREFIX_RE = re.compile(r"^([a-z][a-z_]*\d*):")
_SNAPSTATE_RE = re.compile(r"snapstate:\s*(prepare|delete)\s*$")  # unanchored, as parse_pct_config
_PCT_ENC_RE = re.compile(r"%([0-9A-Fa-f]{2})")


class Section:
    """One section of a config: the current config, a snapshot, or pending changes."""

    __slots__ = ("description", "keys", "lxc")

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}
        self.description = ""
        self.lxc: list[tuple[str, str]] = []


class ParsedConf:
    __slots__ = ("main", "pending", "raw", "snapshots", "warnings")

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.main = Section()
        self.snapshots: dict[str, Section] = {}
        self.pending: Section | None = None
        self.warnings: list[str] = []

    @property
    def digest(self) -> str:
        return digest(self.raw)


def digest(raw: str) -> str:
    """SHA1 of the raw file, the `digest` Proxmox uses for optimistic concurrency."""
    import hashlib  # lazy: only `pct set -digest` needs it

    data = raw.encode("utf-8", "surrogateescape")
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def encode_text(text: str) -> str:
    """`PVE::Tools::encode_text`: escape control and non-ASCII bytes and ':' as %XX."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        if 0x20 <= byte <= 0x39 or 0x3B <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def decode_text(text: str) -> str:
    """`PVE::Tools::decode_text`: URI-unescape, then decode UTF-8."""
    raw = text.encode("utf-8", "surrogateescape")
    unescaped = _PCT_ENC_RE.sub(lambda m: chr(int(m.group(1), 16)), raw.decode("latin-1"))
    return unescaped.encode("latin-1").decode("utf-8", "replace")


def parse(raw: str, vmid: int) -> ParsedConf:
    res = ParsedConf(raw)
    conf = res.main
    descr = ""
    for line in raw.split("\n"):
        if not line.strip():
            continue
        is_pending = _PENDING_RE.match(line)
        section = None if is_pending else _SECTION_RE.match(line)
        if is_pending or section:
            conf.description = descr
            descr = ""
            conf = Section()
            if section:
                res.snapshots[section.group(1)] = conf
            else:
                res.pending = conf
            continue
        if line.startswith("#"):
            descr += decode_text(line[1:]) + "\n"
            continue
        descr = _parse_line(res, conf, line, vmid, descr)
    conf.description = descr
    return res


def _parse_line(res: ParsedConf, conf: Section, line: str, vmid: int, descr: str) -> str:
    """Parse one non-comment line into `conf`; returns the description so far."""
    m = _LXC_RE.match(line)
    if m:
        conf.lxc.append((m.group(1), m.group(3)))
        return descr
    m = _DESC_RE.match(line)
    if m:
        return descr + decode_text(m.group(2))
    m = _SNAPSTATE_RE.search(line)
    if m:
        conf.keys["snapstate"] = m.group(1)
        return descr
    m = _KEY_RE.match(line)
    if not m:
        res.warnings.append(f"vm {vmid} - unable to parse config: {line}\n")
        return descr
    key, value = m.group(1), m.group(2)
    if key == "delete" and conf is res.pending:
        conf.keys[key] = value  # the pending deletions, a list of option names
        return descr
    value, err = schema.check_conf_value(key, value)
    if err:
        res.warnings.append(f"vm {vmid} - unable to parse value of '{key}' - {err}\n")
    conf.keys[key] = value
    return descr


def render(section: Section) -> str:
    """What `pct config` prints: keys sorted, `digest` skipped, description encoded, lxc last."""
    items = dict(section.keys)
    if section.description:
        items["description"] = encode_text(section.description)
    lines = [f"{k}: {items[k]}\n" for k in sorted(items) if k != "digest"]
    lines.extend(f"{k}: {v}\n" for k, v in section.lxc)
    return "".join(lines)


_NOT_WRITTEN = frozenset({"digest", "description", "pending", "snapshots", "snapname", "env", "lxc"})


def _generate_section(section: Section) -> str:
    """`write_pct_config`'s `generate_raw_config`: description as `#` lines, sorted keys, lxc."""
    out = [f"#{encode_text(line)}\n" for line in section.description.split("\n") if line]
    out.extend(f"{k}: {section.keys[k]}\n" for k in sorted(section.keys) if k not in _NOT_WRITTEN)
    out.extend(f"{k}: {v}\n" for k, v in section.lxc)
    return "".join(out)


def generate(conf: ParsedConf) -> str:
    """The whole file as `PVE::LXC::Config::write_pct_config` writes it: the current
    section (without `snapstate`), `[pve:pending]` when it has keys, then the snapshots
    sorted by name, each after a blank line. Used where Proxmox rewrites the config
    through `write_config` (snapshots, clone, destroy)."""
    conf.main.keys.pop("snapstate", None)  # "just to be sure", as Proxmox
    raw = _generate_section(conf.main)
    if conf.pending is not None and conf.pending.keys:
        raw += "\n[pve:pending]\n" + _generate_section(conf.pending)
    for name in sorted(conf.snapshots):
        raw += f"\n[{name}]\n" + _generate_section(conf.snapshots[name])
    return raw


def merged(conf: ParsedConf) -> Section:
    """The current section with `[pve:pending]` applied, as `load_current_config` gives it
    to `pct config` without `--current`: pending values win, pending deletions drop keys."""
    if conf.pending is None:
        return conf.main
    out = Section()
    out.keys = dict(conf.main.keys)
    out.description = conf.pending.description or conf.main.description
    out.lxc = list(conf.main.lxc)
    for key, value in conf.pending.keys.items():
        if key != "delete":
            out.keys[key] = value
    for key in schema.split_list(conf.pending.keys.get("delete", "")):
        out.keys.pop(key, None)
    return out


def set_pending(raw: str, keys: dict[str, str]) -> str:
    """Replace the `[pve:pending]` section with `keys` (none: no section), written where
    `write_pct_config` puts it: after the current section, before the snapshots."""
    lines = raw.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if _PENDING_RE.match(ln.rstrip("\n"))), None)
    if start is not None:
        end = next(
            (i for i in range(start + 1, len(lines)) if _SECTION_RE.match(lines[i].rstrip("\n"))),
            len(lines),
        )
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1  # the blank line before the next section stays with it
        first = start
        while first > 0 and not lines[first - 1].strip():
            first -= 1
        del lines[first:end]
    if keys:
        pos = _main_end(lines)
        while pos > 0 and not lines[pos - 1].strip():
            pos -= 1
        if pos > 0 and not lines[pos - 1].endswith("\n"):
            lines[pos - 1] += "\n"
        block = ["\n", "[pve:pending]\n", *(f"{k}: {keys[k]}\n" for k in sorted(keys))]
        if pos < len(lines) and lines[pos].strip():
            block.append("\n")
        lines[pos:pos] = block
    return "".join(lines)


def _main_end(lines: list[str]) -> int:
    """Index of the first line of the first `[section]` (or len(lines))."""
    for i, line in enumerate(lines):
        text = line.rstrip("\n")
        if _SECTION_RE.match(text) or _PENDING_RE.match(text):
            return i
    return len(lines)


def _key_of(line: str) -> str | None:
    m = _KEY_PREFIX_RE.match(line)
    return m.group(1) if m else None


def _insert_sorted(lines: list[str], end: int, key: str, new_line: str) -> int:
    """Insert a new key line where Proxmox's sorted writer would put it; returns new end."""
    key_idx = [i for i in range(end) if _key_of(lines[i]) is not None]
    after = [i for i in key_idx if (_key_of(lines[i]) or "") > key]
    if after:
        pos = after[0]
    elif key_idx:
        pos = key_idx[-1] + 1
    else:
        pos = end
        while pos > 0 and not lines[pos - 1].strip():
            pos -= 1
    if pos > 0 and not lines[pos - 1].endswith("\n"):
        lines[pos - 1] += "\n"
    lines.insert(pos, new_line)
    return end + 1


def edit(
    raw: str,
    updates: dict[str, str],
    deletes: list[str] | None = None,
    description: str | None = None,
) -> str:
    """Apply `pct set` changes to the current (main) section only, line by line."""
    lines = raw.splitlines(keepends=True)
    end = _main_end(lines)
    for key in deletes or []:
        keep = [ln for ln in lines[:end] if _key_of(ln) != key]
        lines[:end] = keep
        end = len(keep)
    if description is not None:
        end = _replace_description(lines, end, description)
    for key, value in updates.items():
        new_line = f"{key}: {value}\n"
        hits = [i for i in range(end) if _key_of(lines[i]) == key]
        if hits:
            last = hits[-1]
            lines[last] = new_line if lines[last].endswith("\n") else new_line.rstrip("\n")
        else:
            end = _insert_sorted(lines, end, key, new_line)
    return "".join(lines)


def _replace_description(lines: list[str], end: int, description: str) -> int:
    """Proxmox stores the description as `#` lines at the top of the file."""
    keep = [ln for ln in lines[:end] if not ln.startswith("#") and _key_of(ln) != "description"]
    encoded = [f"#{encode_text(part)}\n" for part in description.split("\n") if part]
    lines[:end] = encoded + keep
    return len(encoded) + len(keep)
