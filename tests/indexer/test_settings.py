"""indexer.settings: one table of settings, read from the environment, documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from indexer.settings import SETTINGS, load_config, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def configuration_section(text: str) -> str:
    """The README's section whose heading mentions configuration, up to the next heading of its level."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(#{1,6})\s+.*\bconfiguration\b", line, re.I)
        if m:
            level = len(m.group(1))
            end = next((j for j in range(i + 1, len(lines))
                        if re.match(rf"#{{1,{level}}}\s", lines[j])), len(lines))
            return "\n".join(lines[i:end])
    raise AssertionError("README.md has no section whose heading mentions 'Configuration'")


def test_readme_configuration_section_contains_the_settings_table_verbatim():
    assert README.is_file(), "README.md is missing: its configuration section must hold markdown_table()"
    section = configuration_section(README.read_text(encoding="utf-8"))
    assert markdown_table() in section, "README's configuration table is stale: paste `make settings-doc` output"


def test_markdown_table_has_one_row_per_setting():
    rows = markdown_table().splitlines()
    assert rows[:2] == ["| variable | default | what it does |", "| --- | --- | --- |"]
    assert len(rows) == 2 + len(SETTINGS)
    for setting, row in zip(SETTINGS, rows[2:], strict=True):
        assert row.startswith(f"| `{setting.env}` |")


def test_defaults_apply_when_the_environment_is_empty():
    config = load_config(env={})
    assert config.corpus_dir == Path("corpus")
    assert config.index_dir == Path("var/index")
    assert config.content_selector is None
    assert config.max_section_loss == pytest.approx(0.10)
    assert config.keep_generations == 3
    assert config.reindex_token is None
    assert config.cors_origins == ()


def test_load_config_reads_environment_variables():
    config = load_config(env={
        "FAQ_CORPUS_DIR": "/srv/site",
        "FAQ_KEEP_GENERATIONS": "5",
        "FAQ_MAX_SECTION_LOSS": "0.25",
        "FAQ_CORS_ORIGINS": "https://a.example, https://b.example,",
        "FAQ_CONTENT_SELECTOR": ".entry-content",
        "WEB_CONCURRENCY": "4",
    })
    assert config.corpus_dir == Path("/srv/site")
    assert config.keep_generations == 5
    assert config.max_section_loss == pytest.approx(0.25)
    assert config.cors_origins == ("https://a.example", "https://b.example")
    assert config.content_selector == ".entry-content"
    assert config.workers == 4


def test_load_config_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("FAQ_MAX_FILE_BYTES", "1234")
    assert load_config().max_file_bytes == 1234


@pytest.mark.parametrize(("variable", "value"), [("FAQ_KEEP_GENERATIONS", "three"), ("PORT", "80.5"),
                                                 ("FAQ_MAX_SECTION_LOSS", "ten percent")])
def test_a_bad_value_names_its_variable_in_the_error(variable, value):
    with pytest.raises(ValueError, match=rf"^{variable}='{re.escape(value)}' is not valid"):
        load_config(env={variable: value})


def test_explicit_overrides_win_over_the_environment():
    config = load_config(env={"FAQ_INDEX_DIR": "/from/env"}, index_dir=Path("/explicit"))
    assert config.index_dir == Path("/explicit")


def test_unknown_overrides_and_attributes_are_errors():
    with pytest.raises(TypeError, match="unknown settings: nope"):
        load_config(env={}, nope=1)
    with pytest.raises(AttributeError):
        _ = load_config(env={}).nope


def test_replace_returns_a_new_config_and_leaves_the_old_one():
    config = load_config(env={})
    other = config.replace(keep_generations=7)
    assert (config.keep_generations, other.keep_generations) == (3, 7)
    assert other.as_dict()["keep_generations"] == 7
