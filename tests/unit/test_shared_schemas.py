from __future__ import annotations

from pathlib import Path

from shared.schemas import render_schemas

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_the_published_json_schemas_match_the_wire_models() -> None:
    rendered = render_schemas()
    assert set(rendered) == {p.name for p in DOCS.glob("*.schema.json")}
    for name, text in rendered.items():
        assert (DOCS / name).read_text() == text, f"docs/schemas/{name} is stale: run `make schemas`"
