"""Every setting is documented (compare datasette's tests/test_docs.py)."""

from __future__ import annotations

from pathlib import Path

from placeharm.config import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "settings.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"`{name}`" in text, f"docs/settings.md does not document {name}"
        assert f"PLACEHARM_{name.upper()}" in text
        assert field.description, f"setting {name} has no help text"


def test_soc_schema_reference_is_current() -> None:
    from placeharm.soc.schema import schema_markdown

    text = (DOCS / "reference" / "soc-schema.md").read_text()
    assert text == schema_markdown(), (
        "docs/reference/soc-schema.md is out of date: regenerate it with "
        "`python -c 'from placeharm.soc.schema import schema_markdown; print(schema_markdown())'`"
    )
