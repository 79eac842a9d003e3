"""msgpack codec for wire models: validates on encode and on decode.

Decoding refuses oversize payloads, oversize lists, unknown schema versions and
anything the model rejects, always with a `CodecError` that says what was wrong.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgpack
from pydantic import ValidationError

from shared.models import SCHEMA_VERSION, AnyIntent, GroupIntent, ScaleIntent, WireModel

MAX_MESSAGE_BYTES = 1024 * 1024  # NATS' default max_payload
MAX_LIST_LENGTH = 20_000
MAX_MAP_LENGTH = 10_000
MAX_STRING_BYTES = 64 * 1024

M = TypeVar("M", bound=WireModel)


class CodecError(ValueError):
    """A message that cannot be encoded or decoded; the text says why."""


def encode(message: WireModel) -> bytes:
    # Re-validate before sending: a model built with model_construct or mutated
    # by accident must not leave the process.
    try:
        payload = type(message).model_validate(message.model_dump()).model_dump(mode="json")
    except ValidationError as exc:
        raise CodecError(f"refusing to send an invalid {type(message).__name__}: {exc}") from exc
    data: bytes = msgpack.packb(payload, use_bin_type=True)
    if len(data) > MAX_MESSAGE_BYTES:
        raise CodecError(
            f"{type(message).__name__} is {len(data)} bytes, over the {MAX_MESSAGE_BYTES} byte limit"
        )
    return data


def decode(data: bytes, model: type[M]) -> M:
    return _validate(_checked_map(data, model.__name__), model)


def decode_intent(data: bytes) -> AnyIntent:
    """An intent from the shared intents subject: a GroupIntent when `kind` is "group",
    else a ScaleIntent (which has no `kind`: older producers never sent one)."""
    raw = _checked_map(data, "intent")
    kind = raw.get("kind")
    if kind == "group":
        return _validate(raw, GroupIntent)
    if kind is not None:
        raise CodecError(f"intent: unknown kind {str(kind)[:40]!r}; this service understands 'group'")
    return _validate(raw, ScaleIntent)


def _checked_map(data: bytes, name: str) -> dict[str, Any]:
    if len(data) > MAX_MESSAGE_BYTES:
        raise CodecError(f"{name}: {len(data)} bytes is over the {MAX_MESSAGE_BYTES} byte limit")
    raw = _unpack(data, name)
    if not isinstance(raw, dict):
        raise CodecError(f"{name}: expected a msgpack map, got {type(raw).__name__}")
    version = raw.get("schema_version")
    # `1.0 == True == 1` in Python: only the integer itself is the version.
    if type(version) is not int or version != SCHEMA_VERSION:
        raise CodecError(
            f"{name}: unsupported schema_version {version!r}; this service understands "
            f"{SCHEMA_VERSION} (upgrade the consumer or downgrade the producer)"
        )
    return raw


def _validate(raw: dict[str, Any], model: type[M]) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise CodecError(f"{model.__name__}: invalid message: {problems}") from exc


def _unpack(data: bytes, name: str) -> Any:
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_STRING_BYTES,
            max_bin_len=MAX_STRING_BYTES,
            max_array_len=MAX_LIST_LENGTH,
            max_map_len=MAX_MAP_LENGTH,
            max_ext_len=0,
        )
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise CodecError(f"{name}: not valid msgpack ({exc})") from exc
