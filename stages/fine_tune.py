"""Fine-tune the pretrained model on the train split with Hugging Face Trainer, keeping the best checkpoint by the
validation metric, and record the run in MLflow (params, per-step metrics, model, registered version, lineage tags).

dvc.yaml: python -m stages.fine_tune data/processed/splits models/model reports --checkpoints checkpoints/fine-tune
In: the split DatasetDict. Out: model + tokenizer + lmtune.json + mlflow_run.json; reports/train.json,
reports/live/ (DVCLive: per-step metrics), reports/learning_curves.png. Params: task, model, fine_tune, tracking.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import sys
from pathlib import Path

import torch
from datasets import load_from_disk
from transformers import set_seed

from lmtune import families, io, modelcard, models, plots, tracking, training
from lmtune.cli import run_stage, setup_logging, stage_parser
from lmtune.config import Params, flatten, load_params, params_line
from lmtune.errors import Interrupted, ParamsError
from lmtune.io import INFO_FILE, META_FILE
from lmtune.tasks import TASKS, best_metric, input_fields

logger = logging.getLogger(__name__)
INFERENCE_PARAMS = ("task", "clean", "tokenize", "ner", "multilabel", "qa", "seq2seq", "sft")  # saved with the model


def run(params: Params, data_dir: Path, model_dir: Path, reports_dir: Path, checkpoint_dir: Path) -> dict:
    spec, ft = TASKS[params.task.name], params.fine_tune
    if ft.pooling != "auto" and not spec.pools:
        pooled = ", ".join(name for name, task in TASKS.items() if task.pools)
        raise ParamsError(f"fine_tune.pooling: {ft.pooling} applies to tasks with one prediction per text "
                          f"({pooled}), not {spec.name}; set it to auto")
    metric = best_metric(spec, ft.metric_for_best_model)  # checked with the params too; here for the name
    # fail fast, before any heavy work; only rank 0 tracks, and the ranks must not all create a new store at once
    tracking_ok = training.is_main_process() and tracking.connect(params.tracking.required)
    tracking.require_a_commit()
    io.check_writable(Path(model_dir).parent, reports_dir)  # a read-only folder stops the stage before training
    if ft.num_threads:
        torch.set_num_threads(ft.num_threads)
    set_seed(ft.seed)  # before the model is built: the new head's initial weights depend on it
    data, meta = load_from_disk(str(data_dir)), io.read_json(data_dir / META_FILE)
    labels = meta["labels"]
    tokenizer = models.load_tokenizer(params.model.name_or_path, params.model.revision, spec, params)
    precision = training.resolve_precision(ft.precision)
    model = spec.load_model(params.model.name_or_path, labels, params.model.revision,
                            attn_implementation=training.resolve_attention(ft.attention, precision),
                            **({"pooling": ft.pooling} if spec.pools else {}),
                            **({"quantization": ft.quantization} if ft.quantization != "none" else {}))
    # decoder heads find each row's last token by the pad id
    families.pad_token_ids(model.config, tokenizer, getattr(model, "generation_config", None))
    training.freeze(model, ft)
    training.set_dropout(model, ft.dropout)
    model = training.apply_lora(model, ft)
    sizes = training.param_counts(model)
    data_md5 = io.content_md5(data_dir)
    lineage = {"git_commit": tracking.git_commit(), "data_md5": data_md5, "task": params.task.name,
               "dvc_data_md5": tracking.dvc_lock_md5(data_dir) or "not-in-dvc.lock",
               "base_model": params.model.name_or_path}
    fingerprint = {**{k: dataclasses.asdict(getattr(params, k)) for k in ("task", "model", "fine_tune", "sft")},
                   "data_md5": data_md5}
    generation = {"num_beams": params.seq2seq.num_beams, "max_new_tokens": params.seq2seq.max_new_tokens} \
        if spec.generates else None
    causal = generation if families.generates_causally(spec, model.config) else None  # decoder-only: prompt -> text
    validation_metrics = spec.compute_metrics(labels, params, data["validation"], tokenizer)  # None: the loss alone
    args = training.training_arguments(ft, checkpoint_dir, precision, has_validation=len(data["validation"]) > 0,
                                       metric=metric, generation=None if causal else generation,
                                       loss_only=validation_metrics is None)
    with args.main_process_first(desc="checkpoints"):  # under DDP rank 0 clears stale checkpoints first
        resume_from = training.prepare_checkpoints(checkpoint_dir, fingerprint, ft.resume)
    settings = {"precision": precision, "attention": model.config._attn_implementation,
                "batches": "length-grouped" if ft.group_by_length else "random", "lora rank": str(ft.lora_rank)}
    training.log_run_summary(args, data, sizes, settings, resume_from)
    tracking_on = tracking_ok and args.process_index == 0
    stopper = training.StopOnSignal()
    callbacks = [stopper, tracking.DvcLiveCallback(reports_dir / "live", resume=resume_from is not None)]
    callbacks += [tracking.MlflowMetricsCallback()] if tracking_on else []
    trainer = training.build_trainer(
        model, args, data, tokenizer, spec.collator(tokenizer, model, params, meta["max_length"]),
        validation_metrics, callbacks=callbacks,
        patience=ft.early_stopping_patience, group_by_length=ft.group_by_length, logits_outputs=spec.logits_outputs,
        causal_generation=causal)
    run_ctx = tracking.start_run(params.tracking.experiment, flatten(params), lineage, data_dir=data_dir,
                                 rows={split: len(ds) for split, ds in data.items()}) if tracking_on \
        else contextlib.nullcontext(None)
    with run_ctx as mlflow_run:
        result = trainer.train(resume_from_checkpoint=resume_from)
        # a signal during the last step lets the run finish: no checkpoint is written there (SkipFinalCheckpoint)
        if stopper.received is not None and trainer.state.global_step < trainer.state.max_steps:
            raise Interrupted(f"training stopped at step {trainer.state.global_step} with a checkpoint in "
                              f"{checkpoint_dir}; run `dvc repro` again to resume from it")
        if not trainer.is_world_process_zero():
            return {}
        summary = training.summarize(trainer, result, sizes, precision, resumed=resume_from is not None)
        train_rows, val_rows = training.learning_curves(trainer.state.log_history)
        reports = [reports_dir / name for name in ("learning_curves.png", "train.json", tracking.TRAIN_SUMMARY)]
        # the model and its reports move in together, or none of them (e.g. a full disk while saving)
        with io.atomic_outputs(model_dir, *reports) as (tmp, curves, train_json, train_summary):
            training.save_model(trainer, tmp)
            io.write_json(tmp / INFO_FILE, {**meta, **lineage, "params": {
                section: dataclasses.asdict(getattr(params, section)) for section in INFERENCE_PARAMS}})
            registered = params.tracking.registered_model.format(task=params.task.name) \
                if mlflow_run is not None and params.tracking.log_model else ""
            modelcard.write(tmp, params=params, lineage=lineage, labels=labels, data_dir=data_dir,  # README.md
                            validation={"metric": metric, "value": summary["best_metric"],
                                        "step": summary["best_step"]},
                            rows={split: len(ds) for split, ds in data.items()}, decoder_only=causal is not None,
                            run_id=mlflow_run.info.run_id if mlflow_run is not None else None,
                            registered_model=registered, load_path=Path(model_dir).as_posix())
            if mlflow_run is not None:
                io.write_json(tmp / tracking.RUN_FILE, {"run_id": mlflow_run.info.run_id,
                                                        "tracking_uri": tracking.tracking_uri()})
                if params.tracking.log_model:
                    summary["registered_version"] = tracking.log_model(
                        tmp, params.tracking.registered_model.format(task=params.task.name),
                        input_fields(spec, params.task.text_pair_column))  # text_pair too for a pair model
                    tracking.tag_version(params.tracking.registered_model.format(task=params.task.name),
                                         summary["registered_version"],
                                         {**lineage, f"val_best_{metric}": summary["best_metric"]})
            plots.learning_curves(train_rows, val_rows, metric, curves, best_step=summary["best_step"])
            io.write_json(train_json, summary)
            io.write_json(train_summary, tracking.train_summary(summary, metric))
    shutil.rmtree(checkpoint_dir, ignore_errors=True)  # finished: nothing left to resume
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, ["data_dir"], ["model_dir", "reports_dir"])
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints/fine-tune"),
                        help="resumable checkpoints, kept outside DVC's cached outputs (default: %(default)s)")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    if params.fine_tune.num_processes > 1 and "LOCAL_RANK" not in os.environ:
        sys.exit(training.launch_distributed(params.fine_tune.num_processes, "stages.fine_tune",
                                             sys.argv[1:] if argv is None else argv))
    logger.info("params: %s", params_line(params, "task.name", "model", "fine_tune"))
    summary = run(params, args.data_dir, args.model_dir, args.reports_dir, args.checkpoints)
    if summary:  # rank 0
        logger.info("training done: %s", summary)


if __name__ == "__main__":
    run_stage(main)
