"""Export the JSON Schema of every wire model, so other services can consume events
without reading this code. Run: `python -m shared.schemas docs/schemas`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shared.models import WIRE_MODELS


def render_schemas() -> dict[str, str]:
    return {
        f"{name}.schema.json": json.dumps(
            model.model_json_schema(mode="serialization"), indent=2, sort_keys=True
        )
        + "\n"
        for name, model in WIRE_MODELS.items()
    }


def main(argv: list[str] | None = None) -> int:
    target = Path((argv or sys.argv[1:] or ["docs/schemas"])[0])
    target.mkdir(parents=True, exist_ok=True)
    for filename, text in render_schemas().items():
        (target / filename).write_text(text)
        print(f"wrote {target / filename}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
