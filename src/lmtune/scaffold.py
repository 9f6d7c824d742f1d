"""`lmtune new <dir>`: a second (third, ...) pipeline in the same project, e.g. sentiment and NER side by side.

The folder gets its own dvc.yaml and params.yaml, made from the project's: the same stages and library, run from the
project root (DVC's `wdir`), so `python -m stages.clean` and the data paths resolve as at the root; every output
(data/interim, data/processed, models/, reports/, checkpoints/) lives under the folder, and each stage reads the
folder's params.yaml (`--params`). DVC interpolates `${data.path}` from the folder's params.yaml (the one next to its
dvc.yaml), so `dvc exp run -S <dir>/params.yaml:data.path=...` switches that pipeline's data alone.
MLflow keeps pipelines apart: tracking.experiment is the folder's path and the registered model is named after it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from lmtune.config import NO_TARGET, params_from_dict
from lmtune.errors import LmtuneError

# Paths in dvc.yaml that a stage writes: in a pipeline folder they move under it. Inputs (the data file, stages/,
# src/, data/no-target) stay where they are, relative to the project root.
OWN_PATHS = ("data/interim", "data/processed", "models/", "reports", "checkpoints/")


def _own(path: str) -> bool:
    return any(path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/") for p in OWN_PATHS)


def _local(path: str, folder: str) -> str:
    return f"{folder}/{path}" if _own(path) else path


def _set_value(text: str, dotted: str, value: str) -> str:
    """params.yaml text with `section.key`'s value replaced, its comment and every other line kept."""
    section, key = dotted.split(".")
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(rf"{section}:(\s|$)", line)), None)
    for i in range(start + 1 if start is not None else len(lines), len(lines)):
        if re.match(r"\S", lines[i]):  # the next section: the key is missing
            break
        match = re.match(rf"(  {key}:\s*)(\"[^\"]*\"|'[^']*'|[^#\s]+|)(\s*#.*)?$", lines[i].rstrip("\n"))
        if match:
            comment = match.group(3) or ""
            lines[i] = f"{match.group(1)}{value}{comment}\n"
            return "".join(lines)
    raise LmtuneError(f"params.yaml: no {dotted} key to set; is it the project's params.yaml?")


def _quote(value: str) -> str:
    return yaml.safe_dump(value, default_style=None, width=1000).strip().removesuffix("\n...")


def pipeline_params(root_params: str, folder: str, task: str, data: str, target: str) -> str:
    """The folder's params.yaml: the project's, with its data, task and MLflow names (comments kept)."""
    name = folder.replace("/", "-")
    text = root_params
    for dotted, value in (("data.path", data), ("data.target_path", target), ("task.name", task),
                          ("tracking.experiment", folder), ("tracking.registered_model", f"{name}-{{task}}")):
        text = _set_value(text, dotted, _quote(value))
    return text


def pipeline_dvc_yaml(root_dvc: dict[str, Any], folder: str) -> dict[str, Any]:
    """The folder's dvc.yaml from the project's: stages run from the root (wdir), write under the folder and read
    its params.yaml; top-level plots are relative to the folder already (DVC reads them next to dvc.yaml)."""
    wdir = os.path.relpath(".", folder).replace(os.sep, "/")
    params_file = f"{folder}/params.yaml"
    stages = {}
    for name, stage in root_dvc["stages"].items():
        cmd = " ".join(_local(word, folder) for word in stage["cmd"].split()) + f" --params {params_file}"
        if "--checkpoints" not in cmd and name == "fine-tune":
            cmd += f" --checkpoints {folder}/checkpoints/fine-tune"
        keys = [k for item in stage.get("params", []) for k in ([item] if isinstance(item, str) else item)]
        new = {"wdir": wdir, "cmd": cmd,
               "deps": [_local(d, folder) for d in stage.get("deps", [])],
               "params": [{params_file: keys}]}
        for kind in ("outs", "metrics", "plots"):
            if kind in stage:
                new[kind] = [_local(o, folder) if isinstance(o, str) else {_local(k, folder): v for k, v in o.items()}
                             for o in stage[kind]]
        stages[name] = new
    return {"stages": stages, **({"plots": root_dvc["plots"]} if "plots" in root_dvc else {})}


def new_pipeline(folder: Path, task: str, data: Path, target: Path | None, root: Path = Path(".")) -> list[Path]:
    """Write `folder`/{dvc.yaml, params.yaml, .gitignore}; returns the files written. Refuses to overwrite."""
    if not (root / "dvc.yaml").is_file() or not (root / "params.yaml").is_file() or not (root / "stages").is_dir():
        raise LmtuneError("lmtune new runs from the project root (the folder with dvc.yaml, params.yaml and "
                          "stages/); cd there and run it again")
    folder_abs = (root / folder).resolve()
    if not folder_abs.is_relative_to(root.resolve()) or folder_abs == root.resolve():
        raise LmtuneError(f"{folder}: a pipeline folder must lie inside the project, below its root")
    rel = folder_abs.relative_to(root.resolve()).as_posix()
    if (folder_abs / "dvc.yaml").exists() or (folder_abs / "params.yaml").exists():
        raise LmtuneError(f"{rel}: already holds a pipeline (dvc.yaml or params.yaml); pick another folder or "
                          f"edit its params.yaml")
    for path, what in ((data, "--data"), (target, "--target")):
        if path is not None and not (root / path).is_file():
            raise LmtuneError(f"{path}: {what} file not found; give its path relative to the project root")
    text = pipeline_params((root / "params.yaml").read_text(encoding="utf-8"), rel, task, data.as_posix(),
                           target.as_posix() if target else NO_TARGET)
    params_from_dict(yaml.safe_load(text), source=f"{rel}/params.yaml")  # the task name, target rules, ...
    pipeline = pipeline_dvc_yaml(yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")), rel)
    folder_abs.mkdir(parents=True, exist_ok=True)
    header = (f"# The {rel} pipeline, written by `lmtune new` from the project's dvc.yaml: the same stages and "
              f"library,\n# run from the project root (wdir); outputs under {rel}/; params from {rel}/params.yaml.\n"
              f"# Run: dvc repro {rel}/dvc.yaml (or dvc repro --all-pipelines)\n")
    written = [folder_abs / "params.yaml", folder_abs / "dvc.yaml", folder_abs / ".gitignore"]
    written[0].write_text(f"# The {rel} pipeline's params (lmtune new); same keys as the project's params.yaml.\n"
                          + text, encoding="utf-8")
    written[1].write_text(header + yaml.safe_dump(pipeline, sort_keys=False, width=1000), encoding="utf-8")
    written[2].write_text("/checkpoints/\n", encoding="utf-8")  # resumable checkpoints: not for git, not for DVC
    return written
