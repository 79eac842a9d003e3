"""argparse types for the values commands take on their command line (`--node`,
`--vmid`): checked once, with the same message as everywhere else."""

from __future__ import annotations

import argparse

from shared.validation import check_node_name, check_vmid


def node_argument(text: str) -> str:
    try:
        return check_node_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def vmid_argument(text: str) -> int:
    try:
        return check_vmid(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
