"""MLflow tracking and lineage: one run per fine-tune, tagged with the git commit and the data hash, and the
headline numbers that DVC compares.

Default store: `sqlite:///mlflow.db` in the project folder (no server). `MLFLOW_TRACKING_URI` points it at a
real tracking server. The run id is saved with the model so that evaluate logs test metrics onto the same run.
The run is named after the DVC experiment (`dvc exp run` sets DVC_EXP_NAME), else task + short commit; its
description and the registered version's tags carry the headline test metrics once evaluate has them.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainerCallback

from lmtune.errors import LmtuneError

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
MAX_PARAM_CHARS = 500  # older MLflow servers reject longer param values; 6000 on current ones
RUN_FILE = "mlflow_run.json"  # written into the model directory
SUMMARY = "summary.json"  # reports/: the DVC metrics: headline test metrics, then TRAIN_SUMMARY's (see summary())
TRAIN_SUMMARY = "train_summary.json"  # reports/, by fine-tune: best validation metric, steps, speed
# Test metrics that DVC shows and MLflow's description quotes, first = the headline one; few, so that
# `dvc metrics show` fits a 160-column terminal. reports/metrics.json keeps every metric and count.
HEADLINE_METRICS = {
    "classification": ("f1_macro", "accuracy", "precision_macro", "recall_macro"),
    "multilabel": ("f1_micro", "f1_macro", "subset_accuracy", "hamming_loss"),
    "regression": ("rmse", "mae", "r2", "spearman"),
    "ner": ("f1", "precision", "recall", "accuracy"),
    "qa": ("f1", "exact_match"),
    "summarization": ("rougeL", "rouge1", "rouge2", "bleu"),
    "translation": ("bleu", "chrf", "rougeL"),
    "sft": ("exact_match", "rougeL", "loss", "perplexity"),
}


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def connect(required: bool) -> bool:
    """Point MLflow at the store and check it answers; fail fast (or warn once, when not required)."""
    import mlflow

    uri = tracking_uri()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail fast on a server that is down
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.search_experiments(max_results=1)
    except Exception as err:  # noqa: BLE001 - any failure to reach the store means the same thing here
        message = f"MLflow tracking store {uri} is unreachable ({type(err).__name__}: {str(err)[:200]})"
        if required:
            raise LmtuneError(f"{message}. Start the server, unset MLFLOW_TRACKING_URI to use the local store, "
                              f"or set tracking.required: false to train without tracking") from None
        logger.warning("%s; continuing without MLflow tracking (tracking.required is false)", message)
        return False
    return True


def truncate_params(params: dict[str, Any]) -> dict[str, str]:
    """MLflow param values as strings, cut to MAX_PARAM_CHARS with a marker so no server rejects them."""
    out = {}
    for key, value in params.items():
        text = str(value)
        out[key] = text if len(text) <= MAX_PARAM_CHARS else text[:MAX_PARAM_CHARS - 15] + "...[truncated]"
    return out


def git_commit() -> str:
    """HEAD commit, with "-dirty" when tracked files have uncommitted changes; "unknown" outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def require_a_commit() -> None:
    """Inside a git repository with no commit yet, DVCLive fails with a traceback (and lineage has no commit to
    name): stop before any work and say what to do. Outside git, runs go on (lineage says "unknown")."""
    try:
        inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True)
        head = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "HEAD"], capture_output=True, text=True)
    except OSError:
        return
    if inside.returncode == 0 and head.returncode != 0:
        raise LmtuneError("the git repository has no commits yet, and DVCLive (per-step metrics) and the run's "
                          "lineage need one: run `git add -A && git commit -m 'first commit'`, then `dvc repro` again")


def dvc_lock_md5(path: str | Path, lock: str | Path | None = None) -> str | None:
    """The md5 DVC recorded for the output `path`, or None when it has none. Without `lock`, the nearest dvc.lock
    above `path` that records it: a pipeline folder's (`lmtune new`: pipelines/ner/dvc.lock records
    pipelines/ner/data/processed/splits, paths relative to the project root), else the project's."""
    for candidate in [Path(lock)] if lock else [parent / "dvc.lock" for parent in Path(path).parents]:
        try:
            stages = yaml.safe_load(candidate.read_text()).get("stages", {})
        except (OSError, AttributeError, yaml.YAMLError):
            continue
        for stage in stages.values():
            for out in stage.get("outs", []):
                if Path(out.get("path", "")) == Path(path):
                    return out.get("md5")
    return None


class MlflowMetricsCallback(TrainerCallback):
    """Logs every Trainer log entry (loss, learning rate, validation metrics) to the active run, rank 0 only."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        import mlflow

        if state.is_world_process_zero and logs and mlflow.active_run():
            numeric = {k.replace("/", "_"): float(v) for k, v in logs.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
            mlflow.log_metrics(numeric, step=state.global_step)


class DvcLiveCallback(TrainerCallback):
    """Training loss, learning rate and validation metrics per optimizer step into a DVCLive folder (rank 0 only),
    written as training goes, where `dvc exp show`, `dvc plots show` and `dvc plots diff` find them.

    dvc.yaml declares the folder; DVCLive itself neither edits dvc.yaml nor makes experiments here (the pipeline
    already is one). A resumed run appends to the curves it has.
    """

    def __init__(self, directory: Path, resume: bool) -> None:
        self.directory, self.resume, self.live = directory, resume, None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            from dvclive import Live

            self.live = Live(str(self.directory), resume=self.resume, dvcyaml=False, save_dvc_exp=False)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.live is None or not logs:
            return
        self.live.step = state.global_step
        for key, value in logs.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not key.endswith(
                    ("_runtime", "_per_second")) and key not in ("epoch", "total_flos"):
                name = f"eval/{key.removeprefix('eval_')}" if key.startswith("eval_") else f"train/{key}"
                self.live.log_metric(name, float(value))
        self.live.make_summary()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.live is not None:
            self.live.end()


def log_model(model_dir: Path, registered_model: str, input_fields: tuple[str, ...]) -> str | None:
    """Log the fine-tuned model once (not its checkpoints) as an MLflow pyfunc and register a new version;
    its input signature is the task's input fields, as string columns. The model card (README.md, in model_dir)
    travels inside the model's artifacts, and its markdown becomes the registered version's description."""
    import pandas as pd
    from mlflow.models import infer_signature

    signature = infer_signature(pd.DataFrame({name: ["some text"] for name in input_fields}))
    with warnings.catch_warnings():  # advice about type hints and input examples; the signature above covers it
        warnings.simplefilter("ignore", UserWarning)
        info = _log_pyfunc(model_dir, registered_model, signature)
    version = getattr(info, "registered_model_version", None)
    card = model_dir / "README.md"  # lmtune.modelcard: logged inside the model; its text describes the version too
    if version is not None and registered_model and card.is_file():
        from huggingface_hub import ModelCard
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=tracking_uri()).update_model_version(
            registered_model, str(version), description=ModelCard(card.read_text(encoding="utf-8")).text.strip())
    return str(version) if version is not None else None


def _log_pyfunc(model_dir: Path, registered_model: str, signature: Any) -> Any:
    import mlflow

    import lmtune
    from lmtune import serving

    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)  # its CloudPickle notice: the class is ours
    return mlflow.pyfunc.log_model(
        name="model", python_model=serving.LmtuneModel(), artifacts={"model_dir": str(model_dir)},
        code_paths=[str(Path(lmtune.__file__).parent)],  # loads where lmtune is not installed too
        pip_requirements=serving.pip_requirements(), registered_model_name=registered_model or None,
        signature=signature,
    )


def headline_metrics(task: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """The task's HEADLINE_METRICS found in `metrics`, in that order (the first four for a task with no entry)."""
    names = HEADLINE_METRICS.get(task) or tuple(metrics)[:4]
    return {name: metrics[name] for name in names if name in metrics}


def summary(task: str, metrics: dict[str, Any], reports_dir: Path) -> dict[str, Any]:
    """reports/summary.json, the one DVC metrics file: the task's headline test metrics and the fine-tune's
    TRAIN_SUMMARY in `reports_dir` (when there). One file, because DVC orders the rows of `dvc metrics diff` by
    file in no fixed order but by name within a file, and its training names sort after every test metric's."""
    train = Path(reports_dir) / TRAIN_SUMMARY
    return {**headline_metrics(task, metrics), **(json.loads(train.read_text()) if train.is_file() else {})}


def train_summary(summary: dict[str, Any], metric: str) -> dict[str, Any]:
    """reports/train_summary.json from reports/train.json's figures, with names that sort after every test
    metric's (`dvc metrics` lists them by name)."""
    return {f"val_best_{metric}": summary.get("best_metric"), "train_steps": summary.get("global_steps"),
            "train_samples_per_s": summary.get("train_samples_per_second")}


def run_name(task: str, commit: str) -> str:
    """The DVC experiment's name under `dvc exp run` (DVC passes it to every stage as DVC_EXP_NAME; dvc.env),
    else "<task>-<short commit>"."""
    return os.environ.get("DVC_EXP_NAME") or f"{task}-{commit[:7]}{'-dirty' if commit.endswith('-dirty') else ''}"


def describe(lineage: dict[str, str], data_dir: Path, test_metrics: dict[str, Any] | None = None) -> str:
    """The run's description (MLflow shows the mlflow.note.content tag as markdown on the run page)."""
    lines = [f"**{lineage['task']}** fine-tune of `{lineage['base_model']}` on `{data_dir}` "
             f"(DVC hash `{lineage['dvc_data_md5']}`) at commit `{lineage['git_commit'][:12]}`."]
    if test_metrics:
        lines.append("Test: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in test_metrics.items()))
    else:
        lines.append("Test metrics: added by the evaluate stage.")
    return "\n\n".join(lines)


def _dataset_source(path: str, rev: str) -> Any:
    from mlflow.data.dataset_source import DatasetSource

    class Source(DatasetSource):
        """A DVC-tracked path at a git commit: `dvc get <repo> <path> --rev <rev>` fetches it."""

        def __init__(self, path: str, rev: str) -> None:
            self.path, self.rev = path, rev

        @staticmethod
        def _get_source_type() -> str:
            return "dvc"

        def load(self, **kwargs: Any) -> Any:
            raise NotImplementedError(f"fetch it with `dvc get <repo> {self.path} --rev {self.rev}`")

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any) -> Any:
            raise NotImplementedError

        def to_dict(self) -> dict[str, Any]:
            return {"uri": f"{self.path}@{self.rev}", "path": self.path, "rev": self.rev}

        @classmethod
        def from_dict(cls, source_dict: dict[str, Any]) -> Any:
            return cls(source_dict["path"], source_dict["rev"])

    return Source(path, rev)


def log_datasets(data_dir: Path, lineage: dict[str, str], rows: dict[str, int]) -> None:
    """The train, validation and test splits as MLflow dataset inputs of the active run (the run page's
    "Datasets"): digest = the DVC hash of the split directory, source = its path at the commit (HEAD; "-dirty"
    dropped, as the hash pins the content). MLflow keeps one dataset per name and digest, so a later run on the
    same data links to the dataset first logged, with the commit of that run."""
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset

    digest = lineage["dvc_data_md5"]
    source = _dataset_source(Path(data_dir).as_posix(), lineage["git_commit"].removesuffix("-dirty"))
    for split, context in (("train", "training"), ("validation", "validation"), ("test", "testing")):
        if split in rows:
            mlflow.log_input(MetaDataset(source, name=f"{Path(data_dir).name}/{split}", digest=digest),
                             context=context, tags={"rows": str(rows[split])})


def log_to_run(run_id: str, metrics: dict[str, float], artifacts: list[Path], task: str | None = None) -> None:
    """Add the evaluate stage's test metrics and plots to the fine-tune run; with `task`, its description gets the
    headline test metrics and the run's registered model version the headline metric as a tag."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri())
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
    for path in artifacts:
        client.log_artifact(run_id, str(path), artifact_path="evaluation")
    if task is None:
        return
    run = client.get_run(run_id)
    headline = headline_metrics(task, {k.removeprefix("test_"): v for k, v in metrics.items()})
    lineage = {k.removeprefix("lmtune."): v for k, v in run.data.tags.items() if k.startswith("lmtune.")}
    if {"task", "base_model", "dvc_data_md5", "git_commit", "data_dir"} <= set(lineage):
        client.set_tag(run_id, "mlflow.note.content", describe(lineage, Path(lineage["data_dir"]), headline))
    if headline:
        name, value = next(iter(headline.items()))
        for version in client.search_model_versions(f"run_id = '{run_id}'"):
            client.set_model_version_tag(version.name, version.version, f"test_{name}", str(value))


def start_run(experiment: str, params: dict[str, Any], tags: dict[str, str], data_dir: Path | None = None,
              rows: dict[str, int] | None = None) -> Any:
    """Start the fine-tune's MLflow run with flattened params and lineage tags; use as a context manager. Named
    by run_name; with `data_dir`, a description and the splits as dataset inputs (log_datasets)."""
    import mlflow

    mlflow.set_experiment(experiment)
    lineage = {**tags, **({"data_dir": Path(data_dir).as_posix()} if data_dir is not None else {})}
    run_tags = {f"lmtune.{k}": str(v) for k, v in lineage.items()}
    if data_dir is not None and {"task", "base_model", "dvc_data_md5", "git_commit"} <= set(tags):
        run_tags["mlflow.note.content"] = describe(tags, Path(data_dir))
    run = mlflow.start_run(run_name=run_name(tags.get("task", "run"), tags.get("git_commit", "unknown")),
                           tags=run_tags)
    mlflow.log_params(truncate_params(params))
    if data_dir is not None:
        log_datasets(Path(data_dir), tags, rows or {})
    return run


def tag_version(registered_model: str, version: str | None, tags: dict[str, Any]) -> None:
    """Tag a registered model version with the run's lineage (git commit, DVC data hash, task, base model) and
    any other `tags` given (the best validation metric); evaluate adds the headline test metric (log_to_run)."""
    if version is None or not registered_model:
        return
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri())
    for key, value in tags.items():
        if value is not None and key not in ("data_md5",):
            client.set_model_version_tag(registered_model, version, key, str(value))
