"""Command-line option parsing as `PVE::JSONSchema::get_options` does it with Getopt::Long.

Behaviour copied from there: `-opt` and `--opt` both work (`prefix_pattern=(--|-)`),
`--opt=value` works, names are case-insensitive and may be abbreviated to a unique
prefix, options and positional arguments may be interleaved, `--` ends options.
Non-boolean options take the next argument whatever it looks like (`=s`); boolean ones
take it only if it does not start with `-` (`:s`). Getopt warnings go to stderr
and the parse fails with "unable to parse option".
"""

from __future__ import annotations

from collections.abc import Callable

BOOL = "boolean"


class GetoptError(Exception):
    def __init__(self, warnings: list[str]) -> None:
        super().__init__("unable to parse option")
        self.warnings = warnings


class BooleanError(Exception):
    """`get_options` raises "unable to parse boolean option" for values like `maybe`."""


Lookup = Callable[[str], str | None]


def _resolve(name: str, lookup: Lookup, all_names: Callable[[], list[str]]) -> tuple[str, str]:
    """Map a typed name to (canonical name, kind), or raise with Getopt's warning."""
    low = name.lower()
    kind = lookup(low)
    if kind is not None:
        return low, kind
    hits = [n for n in all_names() if n.startswith(low)]
    if len(hits) == 1:
        found = lookup(hits[0])
        if found is not None:
            return hits[0], found
    if len(hits) > 1:
        raise ValueError(f"Option {name} is ambiguous ({', '.join(hits)})\n")
    raise ValueError(f"Unknown option: {name}\n")


def _bool_value(value: str) -> str:
    low = value.lower()
    if value == "" or low in ("1", "true", "yes", "on"):
        return "1"
    if low in ("0", "false", "no", "off"):
        return "0"
    raise BooleanError("unable to parse boolean option")


def get_options(
    args: list[str], lookup: Lookup, all_names: Callable[[], list[str]]
) -> tuple[dict[str, str], list[str]]:
    """Returns (options, positional args). `lookup(name)` gives the option's type."""
    opts: dict[str, str] = {}
    positional: list[str] = []
    warnings: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        name, has_eq, inline = arg[2 if arg.startswith("--") else 1 :].partition("=")
        try:
            canon, kind = _resolve(name, lookup, all_names)
        except ValueError as exc:
            warnings.append(str(exc))
            continue
        if has_eq:
            value = inline
        elif kind == BOOL:
            take = i < len(args) and not args[i].startswith("-")
            value = args[i] if take else ""
            i += 1 if take else 0
        elif i < len(args):
            value = args[i]
            i += 1
        else:
            warnings.append(f"Option {name} requires an argument\n")
            continue
        opts[canon] = value
    if warnings:
        raise GetoptError(warnings)
    for key, value in opts.items():
        if lookup(key) == BOOL:
            opts[key] = _bool_value(value)
    return opts, positional
