"""MkDocs hook: writes the params reference from the typed config at build time, so it cannot drift.

The page `reference/params.md` holds the marker `<!-- params-reference -->`; this hook replaces it with one table
per params.yaml section, built from `lmtune.config.Params` (sections, fields and their types), the default values
in the project's params.yaml, and the comments: the field's trailing comment in `src/lmtune/config.py`, or, where
that has none, the key's comment in params.yaml. A field added to config.py appears here on the next build.
Also importable by the tests: `render(root)` returns the generated markdown.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any, Literal

MARKER = "<!-- params-reference -->"
PAGE = "reference/params.md"

_FIELD = re.compile(r"^    (\w+): ([^#]+?)\s*(?:#\s*(.*))?$")
_COMMENT = re.compile(r"^\s+#\s?(.*)$")
_YAML_KEY = re.compile(r"^(\s*)([\w-]+):(.*)$")


def _config_comments(source: str) -> dict[str, dict[str, str]]:
    """{class name: {field: comment}} from config.py's source; an indented comment line continues the field above."""
    out: dict[str, dict[str, str]] = {}
    cls = field = None
    for line in source.splitlines():
        if line.startswith("class "):
            cls, field = line[6:].split("(")[0].split(":")[0].strip(), None
            out[cls] = {}
        elif cls and (m := _FIELD.match(line)):
            field = m.group(1)
            out[cls][field] = (m.group(3) or "").strip()
        elif cls and field and (m := _COMMENT.match(line)):
            out[cls][field] = (out[cls][field] + " " + m.group(1).strip()).strip()
        elif line and not line.startswith(" "):
            cls = field = None
        elif not line.strip() or line.strip().startswith('"""'):
            field = None
    return out


def _split_comment(rest: str) -> tuple[str, str]:
    """A YAML line's value text and its comment: the first ' #' outside quotes starts the comment."""
    quote = None
    for i, ch in enumerate(rest):
        if ch in "\"'" and quote in (None, ch):
            quote = None if quote else ch
        elif ch == "#" and quote is None and (i == 0 or rest[i - 1].isspace()):
            return rest[:i].strip(), rest[i + 1:].strip()
    return rest.strip(), ""


def _yaml_entries(text: str) -> dict[str, tuple[str, str]]:
    """{dotted key: (value as written, comment)} from params.yaml; an indented comment line continues the key above."""
    out: dict[str, tuple[str, str]] = {}
    stack: list[tuple[int, str]] = []
    last = None
    for line in text.splitlines():
        if (m := _COMMENT.match(line)) and last:
            value, comment = out[last]
            out[last] = (value, (comment + " " + m.group(1).strip()).strip())
            continue
        m = _YAML_KEY.match(line)
        if not m or line.lstrip().startswith("#"):
            last = None if not line.startswith(" ") else last
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = ".".join([k for _, k in stack] + [m.group(2)])
        value, comment = _split_comment(m.group(3))
        out[key] = (value, comment)
        stack.append((indent, m.group(2)))
        last = key
    return out


def _type_text(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in typing.get_args(hint))
    if typing.get_args(hint):
        return f"`{hint}`".replace("typing.", "")
    return getattr(hint, "__name__", str(hint))


def _cell(text: str) -> str:
    """A table cell: a pipe outside a code span is escaped (Python-Markdown leaves pipes inside code spans alone)."""
    parts = text.replace("\n", " ").split("`")
    return "`".join(part if i % 2 else part.replace("|", "\\|") for i, part in enumerate(parts))


def _value_text(value: str) -> str:
    if value == "":
        return ""
    return f"`{value}`" if "`" not in value else value


def _docstring(cls: type) -> str:
    doc = cls.__dict__.get("__doc__") or ""
    return "" if doc.startswith(cls.__name__ + "(") else " ".join(doc.split())


def _table(prefix: str, cls: type, comments: dict[str, dict[str, str]], yaml_entries: dict) -> list[str]:
    rows, nested = [], []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            nested.append((key, hints[f.name]))
            continue
        value, yaml_comment = yaml_entries.get(key, ("", ""))
        description = comments.get(cls.__name__, {}).get(f.name) or yaml_comment
        rows.append(f"| `{f.name}` | {_cell(_type_text(hints[f.name]))} | {_cell(_value_text(value))} | "
                    f"{_cell(description)} |")
    lines = ["| key | type | params.yaml | meaning |", "|---|---|---|---|", *rows, ""] if rows else []
    for key, sub in nested:
        lines += [f"### `{key}`", "", *_table(key, sub, comments, yaml_entries)]
    return lines


def render(root: str | Path) -> str:
    """The generated reference: one section per params.yaml section, in config.py's order."""
    import lmtune.config as config

    root = Path(root)
    comments = _config_comments(Path(config.__file__).read_text(encoding="utf-8"))
    yaml_entries = _yaml_entries((root / "params.yaml").read_text(encoding="utf-8"))
    rules = getattr(config, "_RULES", [])
    lines: list[str] = []
    for section, cls in typing.get_type_hints(config.Params).items():
        lines += [f"## `{section}`", ""]
        intro = _docstring(cls) or yaml_entries.get(section, ("", ""))[1]
        if intro:
            lines += [intro, ""]
        lines += _table(section, cls, comments, yaml_entries)
        checks = [message for name, _, message in rules if name == section]
        if checks:
            lines += ["Checked before any work: " + "; ".join(checks) + ".", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs hook signature)
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/{PAGE}: the marker {MARKER} is missing; the params tables go there")
    root = Path(config["config_file_path"]).parent
    return markdown.replace(MARKER, render(root))
