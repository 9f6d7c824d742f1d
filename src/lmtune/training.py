"""Building the Trainer from typed params: precision, freezing, speed options, checkpoints and resume."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from transformers import EarlyStoppingCallback, ProgressCallback, Seq2SeqTrainer, Seq2SeqTrainingArguments, Trainer, \
    TrainerCallback, TrainingArguments
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import sort_checkpoints

from lmtune import causal, io
from lmtune.config import FineTuneParams
from lmtune.errors import LmtuneError
from lmtune.sampling import ShuffledLengthGroupedSampler
from lmtune.tasks import LOWER_IS_BETTER, regression

logger = logging.getLogger(__name__)

# fine_tune.optimizer -> TrainingArguments.optim, which transformers builds (transformers.trainer_optimizer). Adadelta
# has no name there: its arguments carry "torch_optimizer=adadelta" in optim_args, and build_trainer hands the class to
# the Trainer (optimizer_cls_and_kwargs, which overrides optim).
OPTIMIZERS = {"adamw": "adamw_torch_fused", "adagrad": "adagrad", "adadelta": "adamw_torch", "sgd": "sgd",
              "adafactor": "adafactor"}
TORCH_OPTIMIZERS = {"adadelta": torch.optim.Adadelta}
TORCH_OPTIMIZER = "torch_optimizer"  # the optim_args key naming a TORCH_OPTIMIZERS entry
FINGERPRINT_FILE = "lmtune_fingerprint.json"


def _not_mtime_notice(record: logging.LogRecord) -> bool:
    return "mtime may not be reliable" not in record.getMessage()


# The Trainer orders checkpoints by modification time and, when two were saved within a second of each other (a small
# model, a fast disk), warns that it falls back to step numbers: the right order, nothing for the user to do.
logging.getLogger("transformers.trainer_utils").addFilter(_not_mtime_notice)


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 autocast is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """Map the precision param to fp32, bf16 or fp16 for this hardware; an explicit choice must be supported."""
    cuda = torch.cuda.is_available()
    bf16_ok = torch.cuda.is_bf16_supported() if cuda else cpu_has_bf16()
    if precision == "auto":
        return "bf16" if bf16_ok else ("fp16" if cuda else "fp32")
    if precision == "bf16" and not bf16_ok:
        raise LmtuneError("fine_tune.precision: bf16 is not supported on this hardware; use auto or fp32")
    if precision == "fp16" and not cuda:
        raise LmtuneError("fine_tune.precision: fp16 needs a CUDA GPU; use auto, bf16 or fp32 on CPU")
    return precision


def resolve_attention(attention: str, precision: str) -> str:
    """`auto`: eager attention for bf16 training on CPU, where torch's SDPA backward is about 3x slower than eager
    matmuls (measured on a 2-core AMX Xeon: 178 vs 64 ms per MiniLM backward step, batch 32 x 16 tokens); else sdpa."""
    if attention != "auto":
        return attention
    return "eager" if precision == "bf16" and not torch.cuda.is_available() else "sdpa"


def launch_distributed(num_processes: int, module: str, argv: list[str]) -> int:
    """Run `python -m module argv` under torchrun with `num_processes` local processes; return its exit code.

    Multi-node jobs call torchrun (or accelerate launch) themselves; the stage sees LOCAL_RANK and runs as is.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={num_processes}",
           "-m", module, *argv]
    logger.info("launching %d processes with torchrun: %s", num_processes, " ".join(cmd))
    return subprocess.call(cmd)


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 under torchrun, or a single process (before the Trainer sets up distributed training)."""
    return int(os.environ.get("RANK", "0")) == 0


def training_arguments(ft: FineTuneParams, output_dir: Path, precision: str, has_validation: bool, metric: str,
                       generation: dict[str, int] | None = None, loss_only: bool = False) -> TrainingArguments:
    """Map fine_tune params onto TrainingArguments explicitly, field by field. `metric` is the validation metric that
    picks the kept checkpoint; `generation` ({num_beams, max_new_tokens}) makes them Seq2SeqTrainingArguments that
    generate text during validation."""
    keep_best = has_validation
    extra: dict[str, Any] = {}
    if generation is not None:
        extra = {"predict_with_generate": True, "generation_num_beams": generation["num_beams"],
                 "generation_max_length": generation["max_new_tokens"] + 1}  # + the decoder start token
    return (Seq2SeqTrainingArguments if generation is not None else TrainingArguments)(
        output_dir=str(output_dir),
        num_train_epochs=ft.epochs,
        max_steps=ft.max_steps if ft.max_steps > 0 else -1,
        per_device_train_batch_size=ft.batch_size,
        per_device_eval_batch_size=ft.eval_batch_size,
        gradient_accumulation_steps=ft.grad_accum_steps,
        learning_rate=ft.learning_rate,
        lr_scheduler_type=ft.lr_scheduler,
        warmup_steps=ft.warmup_ratio,  # a float in [0, 1) is a fraction of the total steps
        weight_decay=ft.weight_decay,
        optim=OPTIMIZERS[ft.optimizer],
        optim_args=optimizer_args(ft),
        max_grad_norm=ft.max_grad_norm,
        seed=ft.seed,
        data_seed=ft.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        eval_strategy=ft.eval_strategy if has_validation else "no",
        eval_steps=ft.eval_steps,
        save_strategy=ft.eval_strategy,  # must match evaluation so the best checkpoint can be restored
        save_steps=ft.eval_steps,
        save_total_limit=ft.save_total_limit,
        load_best_model_at_end=keep_best,
        metric_for_best_model=metric if keep_best else None,
        greater_is_better=metric not in LOWER_IS_BETTER,  # `metric` without the eval_ prefix (tasks.best_metric)
        logging_strategy="steps",
        logging_steps=ft.logging_steps,
        logging_first_step=True,
        # length grouping is done by LmtuneTrainer on one process; under DDP, transformers' sampler does it
        train_sampling_strategy="group_by_length" if ft.group_by_length and _world_size() > 1 else "random",
        torch_compile=ft.torch_compile,
        deepspeed=ft.deepspeed or None,
        activation_checkpointing=ft.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},  # works with frozen inputs (LoRA) too
        prediction_loss_only=loss_only,  # validation by the loss alone: the logits (vocabulary-wide) are not kept
        dataloader_num_workers=0,
        report_to=[],  # MLflow logging is ours (lmtune.tracking), so it is explicit and rank-0 only
        disable_tqdm=False,
        **extra,
    )


def optimizer_args(ft: FineTuneParams) -> str | None:
    """TrainingArguments.optim_args ("key=value,..."): SGD's momentum, or which torch optimizer build_trainer uses."""
    if ft.optimizer == "sgd":
        return f"momentum={ft.momentum}"
    if ft.optimizer in TORCH_OPTIMIZERS:
        return f"{TORCH_OPTIMIZER}={ft.optimizer}"
    return None


def torch_optimizer(args: TrainingArguments) -> tuple[type[torch.optim.Optimizer], dict[str, Any]] | None:
    """(class, kwargs) of an optimizer transformers does not name (Adadelta), from optim_args; None otherwise.
    Weight decay still comes per parameter group from the Trainer (none on biases and norms)."""
    pairs = dict(item.split("=", 1) for item in (args.optim_args or "").split(",") if "=" in item)
    name = pairs.get(TORCH_OPTIMIZER)
    return (TORCH_OPTIMIZERS[name], {"lr": args.learning_rate}) if name else None


def _encoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The stack of transformer blocks: the first ModuleList with num_hidden_layers entries."""
    n = getattr(model.config, "num_hidden_layers", None)
    for module in model.base_model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise LmtuneError(f"fine_tune.freeze_layers: cannot find the encoder layers of {type(model).__name__}; "
                      f"set freeze_layers: 0")


def freeze(model: torch.nn.Module, ft: FineTuneParams) -> dict[str, int]:
    """Apply train_head_only / freeze_embeddings / freeze_layers; return trainable and frozen parameter counts."""
    frozen: list[torch.nn.Module] = []
    if ft.train_head_only:
        frozen.append(model.base_model)
    else:
        if ft.freeze_embeddings:
            frozen.append(getattr(model.base_model, "embeddings", None) or model.get_input_embeddings())
        if ft.freeze_layers:
            layers = _encoder_layers(model)
            if ft.freeze_layers > len(layers):
                raise LmtuneError(f"fine_tune.freeze_layers: {ft.freeze_layers} is more than the model's "
                                  f"{len(layers)} layers; use 0..{len(layers)}")
            frozen.extend(layers[:ft.freeze_layers])
    for module in frozen:
        module.requires_grad_(False)
    return param_counts(model)


def set_dropout(model: torch.nn.Module, p: float) -> int:
    """Set every dropout layer's probability to `p` (-1: leave the model's); return how many layers were set.
    Attention dropout follows too: transformers' attention functions read their module's `dropout.p`."""
    if p < 0:
        return 0
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    for layer in layers:
        layer.p = p
    return len(layers)


def param_counts(model: torch.nn.Module) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_params": trainable, "frozen_params": total - trainable}


def apply_lora(model: Any, ft: FineTuneParams) -> Any:
    """Wrap the model with LoRA adapters (peft) when lora_rank > 0; the task head stays fully trainable."""
    if ft.lora_rank == 0:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    modules: str | list[str] = [m.strip() for m in ft.lora_target_modules.split(",") if m.strip()]
    if modules == ["all-linear"]:
        modules = "all-linear"  # peft: every linear layer but the output head
    name = type(model).__name__  # peft's task type decides which head stays fully trainable (modules_to_save)
    task_type = (TaskType.TOKEN_CLS if name.endswith("ForTokenClassification") else
                 TaskType.QUESTION_ANS if name.endswith("ForQuestionAnswering") else
                 TaskType.CAUSAL_LM if name.endswith("ForCausalLM") or name.endswith("LMHeadModel") else
                 TaskType.SEQ_2_SEQ_LM if model.config.is_encoder_decoder else TaskType.SEQ_CLS)
    config = LoraConfig(task_type=task_type, r=ft.lora_rank, lora_alpha=ft.lora_alpha,
                        lora_dropout=ft.lora_dropout, target_modules=modules)
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise LmtuneError(f"fine_tune.lora_target_modules: {err}; name linear layers of the model, e.g. "
                          f"query,value for BERT, q_proj,v_proj for Llama and Qwen2, or all-linear") from None


def save_model(trainer: Trainer, out_dir: Path) -> None:
    """Save a plain transformers model; a LoRA run also keeps its adapter in out_dir/adapter, then merges it, so
    evaluate, `lmtune predict` and MLflow load every model the same way."""
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model.save_pretrained(str(out_dir / "adapter"))
        model.merge_and_unload().save_pretrained(str(out_dir))
        trainer.processing_class.save_pretrained(str(out_dir))
    else:
        trainer.save_model(str(out_dir))


def prepare_checkpoints(checkpoint_dir: Path, fingerprint: dict[str, Any], resume: bool) -> str | None:
    """Return the last checkpoint to resume from, or None after clearing checkpoints of other inputs.

    Checkpoints live outside DVC's cached outputs (a plain directory), so a killed run can resume. The
    fingerprint (params + data hash) guards against resuming a run whose inputs have since changed.
    """
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()
    marker = checkpoint_dir / FINGERPRINT_FILE
    same = marker.is_file() and json.loads(marker.read_text()).get("sha256") == digest
    if not (resume and same):
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"sha256": digest, "inputs": fingerprint}, indent=2, default=str))
    return last_complete_checkpoint(checkpoint_dir) if resume and same else None


def last_complete_checkpoint(checkpoint_dir: Path) -> str | None:
    """The newest checkpoint with a readable trainer_state.json, which the Trainer writes after the model, optimizer
    and RNG states. A run killed while saving leaves a checkpoint without it: that one is removed, not resumed."""
    for path in map(Path, reversed(sort_checkpoints(str(checkpoint_dir)))):  # newest step first
        try:
            json.loads((path / TRAINER_STATE_NAME).read_text())
            return str(path)
        except (OSError, ValueError):
            logger.warning("removing incomplete checkpoint %s (the run was stopped while saving it)", path)
            shutil.rmtree(path, ignore_errors=True)
    return None


class ProgressWithLoss(ProgressCallback):
    """The training bar (rate, ETA) shows the latest loss; each validation prints one short line instead of the
    raw log dicts. Full per-step metrics go to DVCLive and MLflow."""

    def __init__(self, metric: str) -> None:
        super().__init__()
        self.metric = metric

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        if "loss" in logs:
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
        if "eval_loss" in logs:
            shown = {k: logs[f"eval_{k}"] for k in dict.fromkeys(("loss", "accuracy", self.metric)) if f"eval_{k}" in logs}
            self.training_bar.write(f"step {state.global_step} validation: " +
                                    ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))


class SkipFinalCheckpoint(TrainerCallback):
    """No checkpoint at the last step when no best model is kept: the finished model is saved by the stage anyway,
    so writing it as a checkpoint too (model and optimizer state) would only cost time."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= state.max_steps:
            control.should_save = False

    on_epoch_end = on_step_end


class LmtuneTrainer(Trainer):
    """Trainer whose length grouping is ShuffledLengthGroupedSampler (see lmtune.sampling for why)."""

    def __init__(self, *args: Any, group_by_length: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group_by_length = group_by_length
        # Task heads here return a loss already averaged over the batch and ignore `num_items_in_batch`. Their
        # forward takes **kwargs, so transformers 5 would otherwise assume a summed loss: it skips the division by
        # gradient accumulation steps and multiplies by the number of DDP processes (gradients k times too large).
        self.model_accepts_loss_kwargs = False
        if self.pop_callback(ProgressCallback) is not None:  # absent when tqdm is disabled
            self.add_callback(ProgressWithLoss(self.args.metric_for_best_model or "loss"))
        if not self.args.load_best_model_at_end:
            self.add_callback(SkipFinalCheckpoint())

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        """Restoring the best checkpoint of a model with tied input and output embeddings (Qwen2, GPT-2) finds the
        output weights "missing": they are saved once, as the input embeddings, and stay tied. Not worth a warning."""
        tied = tuple(getattr(self.model, "_tied_weights_keys", None) or ())
        missing = [k for k in load_result.missing_keys if not k.endswith(tied)] if tied else load_result.missing_keys
        super()._issue_warnings_after_load(load_result._replace(missing_keys=missing)
                                           if hasattr(load_result, "_replace") else load_result)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        if not self.group_by_length or self.args.world_size > 1:
            return super()._get_train_sampler(train_dataset)
        # self.train_dataset still has the `length` column that the tokenize stage wrote
        return ShuffledLengthGroupedSampler(self.train_dataset["length"], self.args.per_device_train_batch_size,
                                            seed=self.args.data_seed or self.args.seed)


class LmtuneSeq2SeqTrainer(LmtuneTrainer, Seq2SeqTrainer):
    """LmtuneTrainer that generates text during validation (sequence-to-sequence tasks)."""


class CausalGenerationTrainer(LmtuneTrainer):
    """Validation computes the loss on the whole row, then generates from the prompt alone (the positions that
    attend and carry no label) and returns the new tokens as predictions, so generation metrics (ROUGE, BLEU) pick
    the kept checkpoint exactly as for encoder-decoder models."""

    def __init__(self, *args: Any, generation: dict[str, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generation = generation

    def prediction_step(self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool,
                        ignore_keys: list[str] | None = None) -> tuple[Any, Any, Any]:
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = model(**inputs).loss.detach()
        if prediction_loss_only:
            return loss, None, None
        labels, mask = inputs["labels"], inputs["attention_mask"].bool()
        prompts = [ids[m & (lab == causal.IGNORE)].tolist() for ids, m, lab in zip(inputs["input_ids"], mask, labels)]
        new = causal.generate(model, self.processing_class, prompts, self.generation["num_beams"],
                              self.generation["max_new_tokens"])
        width = max(1, max(map(len, new)))
        generated = torch.full((len(new), width), causal.IGNORE, dtype=torch.long)
        for row, ids in zip(generated, new):
            row[:len(ids)] = torch.tensor(ids, dtype=torch.long)
        return loss, generated.to(labels.device), labels


def build_trainer(model: Any, args: TrainingArguments, data: Any, tokenizer: Any, collator: Any,
                  compute_metrics: Any, callbacks: list[Any], patience: int, group_by_length: bool,
                  logits_outputs: int = 1, causal_generation: dict[str, int] | None = None) -> Trainer:
    """`causal_generation` ({num_beams, max_new_tokens}): a decoder-only model on a generation task, validated by
    generating from each prompt (CausalGenerationTrainer); Seq2SeqTrainingArguments make an encoder-decoder one.
    A regression head trains on targets standardised with data["train"]'s mean and std (lmtune.tasks.regression)."""
    if patience and args.load_best_model_at_end:
        callbacks = [*callbacks, EarlyStoppingCallback(early_stopping_patience=patience)]
    generates = isinstance(args, Seq2SeqTrainingArguments) or causal_generation is not None
    extra: dict[str, Any] = {"generation": causal_generation} if causal_generation is not None else {}
    trainer_class = CausalGenerationTrainer if causal_generation is not None else \
        LmtuneSeq2SeqTrainer if generates else LmtuneTrainer
    optimizer = torch_optimizer(args)
    if optimizer is not None:  # one transformers does not name (Adadelta)
        extra["optimizer_cls_and_kwargs"] = optimizer
    if getattr(model.config, "problem_type", None) == "regression":  # targets in train-split standard units
        scaling = regression.standardize_targets(model, io.column_numpy(data["train"], "labels"))
        logger.info("regression targets standardised for training: mean %.6g, std %.6g (train split); outputs and "
                    "metrics stay in the original units", scaling["mean"], scaling["std"])
    return trainer_class(model=model, args=args, train_dataset=data["train"],
                         eval_dataset=data["validation"] if args.eval_strategy != "no" else None,
                         processing_class=tokenizer, data_collator=collator, compute_metrics=compute_metrics,
                         callbacks=callbacks, group_by_length=group_by_length,
                         preprocess_logits_for_metrics=None if generates else HeadLogits(logits_outputs), **extra)


class HeadLogits:
    """The head's logits from a validation forward pass: the first `n` outputs (QA: start and end logits).
    Encoder-decoder heads (T5, BART) also return the decoder cache and the encoder states, which the Trainer passes
    on after the logits; the metric functions want the logits alone (and need not hold the rest in memory)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, outputs: Any, labels: Any) -> Any:
        if not isinstance(outputs, (tuple, list)):
            return outputs
        return outputs[0] if self.n == 1 else tuple(outputs[:self.n])


def learning_curves(log_history: list[dict[str, Any]]) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Split Trainer's log history into training rows (step, loss, learning_rate) and validation rows."""
    train = [{"step": r["step"], "loss": r["loss"], "learning_rate": r.get("learning_rate", 0.0)}
             for r in log_history if "loss" in r]
    val = [{"step": r["step"], **{k.removeprefix("eval_"): v for k, v in r.items()
                                  if k.startswith("eval_") and k not in ("eval_runtime",)
                                  and "per_second" not in k}}
           for r in log_history if "eval_loss" in r]
    return train, val


def log_run_summary(args: TrainingArguments, data: Any, sizes: dict[str, int], settings: dict[str, str],
                    resume_from: str | None) -> None:
    """The run's size math, before any heavy work (the nanoGPT / run_glue_no_trainer habit)."""
    n_train = len(data["train"])
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    steps = args.max_steps if args.max_steps > 0 else math.ceil(n_train / per_step) * math.ceil(args.num_train_epochs)
    logger.info("***** Running training *****")
    logger.info("  examples: train %d, validation %d, test %d", n_train, len(data["validation"]), len(data["test"]))
    logger.info("  effective batch size: %d (%d per device x %d accumulation x %d processes)", per_step,
                args.per_device_train_batch_size, args.gradient_accumulation_steps, args.world_size)
    logger.info("  optimizer steps: about %d (epochs %s, max_steps %d)", steps, args.num_train_epochs, args.max_steps)
    logger.info("  parameters: %s trainable, %s frozen", f"{sizes['trainable_params']:,}", f"{sizes['frozen_params']:,}")
    logger.info("  on %s with %d torch threads; %s", args.device, torch.get_num_threads(),
                ", ".join(f"{k} {v}" for k, v in settings.items()))
    if resume_from:
        logger.info("  resuming from %s", resume_from)


def summarize(trainer: Trainer, result: Any, sizes: dict[str, int], precision: str, resumed: bool) -> dict[str, Any]:
    """Figures for reports/train.json: speed, steps, the best validation score."""
    state = trainer.state
    return {
        "train_loss": round(float(result.training_loss), 6),
        "train_runtime_s": round(float(result.metrics["train_runtime"]), 2),
        "train_samples_per_second": round(float(result.metrics["train_samples_per_second"]), 3),
        "global_steps": int(state.global_step),
        "epochs": round(float(state.epoch or 0), 3),
        "best_metric": state.best_metric,
        "best_step": int(state.best_global_step) if getattr(state, "best_global_step", None) else None,
        "precision": precision,
        "resumed": resumed,
        **sizes,
    }


class StopOnSignal(TrainerCallback):
    """Ctrl-C (SIGINT) or SIGTERM: finish the current step, save a checkpoint, and stop; a second Ctrl-C stops now."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        logger.warning("%s received: saving a checkpoint after this step, then stopping (again to abort now)",
                       signal.Signals(signum).name)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True
