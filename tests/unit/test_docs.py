"""The documentation: the MkDocs site builds with --strict (a broken link or missing page fails), the params reference
is generated from the typed config, and the two front doors (README.md, README.zh-CN.md) stay short, link each
other and keep the commands CI runs."""
from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from lmtune.config import Params

ROOT = Path(__file__).resolve().parents[2]
READMES = ("README.md", "README.zh-CN.md")
REPRO_COMMAND = "pip install torch==2.13.0 && pip install -e . && dvc repro"
TEST_COMMAND = 'pip install torch==2.13.0 && pip install -e ".[dev]" && python -m pytest'


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], capture_output=True, text=True, timeout=120)


def _hook():
    spec = importlib.util.spec_from_file_location("params_reference", ROOT / "docs/hooks/params_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_site_builds_with_strict_and_has_the_params_reference(tmp_path):
    result = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    page = (tmp_path / "site/reference/params/index.html").read_text(encoding="utf-8")
    assert "<!-- params-reference -->" not in page, "the hook did not replace the marker on the params page"
    for section in dataclasses.fields(Params):
        assert f"<code>{section.name}</code>" in page, f"params section {section.name} missing from the reference"
    assert not (tmp_path / "site/hooks").exists(), "the build hook was copied into the site"


def test_strict_build_fails_on_a_broken_link(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs")
    for name in ("mkdocs.yml", "params.yaml"):
        shutil.copy(ROOT / name, project / name)
    with open(project / "docs/troubleshooting.md", "a", encoding="utf-8") as page:
        page.write("\nSee [the missing page](no-such-page.md).\n")
    result = _build(project / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0, "a link to a missing page passed mkdocs build --strict"
    assert "no-such-page.md" in result.stdout + result.stderr


def test_params_reference_lists_every_field_of_the_typed_config():
    text = _hook().render(ROOT)
    for section in dataclasses.fields(Params):
        assert f"## `{section.name}`" in text, f"section {section.name} has no heading"
        for field in dataclasses.fields(typing.get_type_hints(Params)[section.name]):
            assert re.search(rf"^\| `{field.name}` \| \S", text, re.M), f"{section.name}.{field.name} has no row"


def test_params_reference_reads_trailing_and_continued_comments():
    hook = _hook()
    source = (
        "@dataclass(frozen=True)\n"
        "class DemoParams:\n"
        "    size: int  # rows per batch\n"
        "    mode: Literal[\"a\", \"b\"]  # a: first;\n"
        "    # b: second\n"
        "    plain: str\n"
    )
    assert hook._config_comments(source) == {"DemoParams": {"size": "rows per batch", "mode": "a: first; b: second",
                                                             "plain": ""}}
    yaml_text = 'demo:\n  sep: "|"   # the # inside quotes stays\n  lang: auto  # detect;\n              # or a code\n'
    entries = hook._yaml_entries(yaml_text)
    assert entries["demo.sep"] == ('"|"', "the # inside quotes stays")
    assert entries["demo.lang"] == ("auto", "detect; or a code")


@pytest.mark.parametrize("name", READMES)
def test_readme_is_a_short_front_door_with_the_two_commands(name):
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, f"{name} has {len(lines)} lines; move detail into docs/ (front door: under 200)"
    text = "\n".join(lines)
    assert REPRO_COMMAND in text, f"{name} lost the install + dvc repro command"
    assert TEST_COMMAND in text, f"{name} lost the install + test command that .ci/run runs"


def test_readmes_link_each_other():
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    assert "](README.zh-CN.md)" in english, "README.md does not link README.zh-CN.md"
    assert "](README.md)" in chinese, "README.zh-CN.md does not link README.md"


@pytest.mark.parametrize("name", READMES)
def test_readme_links_into_docs_resolve(name):
    text = (ROOT / name).read_text(encoding="utf-8")
    targets = re.findall(r"\]\(((?!https?://)[^)#]+)(?:#[^)]*)?\)", text)
    assert any(t.startswith("docs/") for t in targets), f"{name} links nowhere into docs/"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"{name} links to files that do not exist: {missing}"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci/run").read_text(encoding="utf-8")
    assert "pip install --quiet -e \".[dev]\"" in ci and "python3 -m pytest" in ci
