"""MLflow tracking and lineage: one run per fine-tune, tagged with the git commit and the data hash.

Default store: `sqlite:///mlflow.db` in the project folder (no server). `MLFLOW_TRACKING_URI` points it at a
real tracking server. The run id is saved with the model so that evaluate logs test metrics onto the same run.
"""
from __future__ import annotations

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


def dvc_lock_md5(path: str | Path, lock: str | Path = "dvc.lock") -> str | None:
    """The md5 DVC recorded in dvc.lock for the output `path`, or None when it has none."""
    try:
        stages = yaml.safe_load(Path(lock).read_text()).get("stages", {})
    except (OSError, AttributeError, yaml.YAMLError):
        return None
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
    its input signature is the task's input fields, as string columns."""
    import pandas as pd
    from mlflow.models import infer_signature

    signature = infer_signature(pd.DataFrame({name: ["some text"] for name in input_fields}))
    with warnings.catch_warnings():  # advice about type hints and input examples; the signature above covers it
        warnings.simplefilter("ignore", UserWarning)
        info = _log_pyfunc(model_dir, registered_model, signature)
    version = getattr(info, "registered_model_version", None)
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


def log_to_run(run_id: str, metrics: dict[str, float], artifacts: list[Path]) -> None:
    """Add the evaluate stage's test metrics and plots to the fine-tune run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri())
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
    for path in artifacts:
        client.log_artifact(run_id, str(path), artifact_path="evaluation")


def start_run(experiment: str, params: dict[str, Any], tags: dict[str, str]) -> Any:
    """Start the fine-tune's MLflow run with flattened params and lineage tags; use as a context manager."""
    import mlflow

    mlflow.set_experiment(experiment)
    run = mlflow.start_run(tags={f"lmtune.{k}": str(v) for k, v in tags.items()})
    mlflow.log_params(truncate_params(params))
    return run
