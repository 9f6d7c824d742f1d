"""Correct numbers: fp32 master weights from half-precision checkpoints, the best-model metric's name and direction,
and the logits that validation metrics read from encoder-decoder heads."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from transformers import AutoModel

from lmtune import training
from lmtune.config import load_params, params_from_dict
from lmtune.errors import ParamsError
from lmtune.tasks import TASKS, best_metric, classification, ner, qa, regression, seq2seq
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory, tiny_model):
    """The tiny BERT saved in bf16, as most current Hub checkpoints are."""
    out = tmp_path_factory.mktemp("tiny-bert-bf16")
    AutoModel.from_pretrained(tiny_model).to(torch.bfloat16).save_pretrained(out)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        if (tiny_model / name).exists():
            (out / name).write_bytes((tiny_model / name).read_bytes())
    assert AutoModel.from_pretrained(out).dtype == torch.bfloat16, "transformers 5 keeps the saved dtype by default"
    return out


@pytest.mark.parametrize("load", [
    lambda p: classification.load_model(p, ["a", "b"], "main", pooling="cls"),
    lambda p: classification.load_model(p, ["a", "b"], "main", pooling="mean"),
    lambda p: regression.load_model(p, [], "main"),
    lambda p: ner.load_model(p, ["O", "B-X", "I-X"], "main"),
    lambda p: qa.load_model(p, [], "main"),
    lambda p: seq2seq.load_model(p, [], "main"),
], ids=["classification-cls", "classification-mean", "regression", "ner", "qa", "seq2seq-bert2bert"])
def test_a_bf16_saved_checkpoint_loads_with_fp32_weights_for_every_task(bf16_checkpoint, load):
    model = load(str(bf16_checkpoint))
    dtypes = {p.dtype for p in model.parameters()}
    assert dtypes == {torch.float32}, f"half-precision master weights: {dtypes}"


def test_a_bf16_saved_checkpoint_trains_every_weight_like_its_fp32_copy(bf16_checkpoint):
    """4 AdamW steps at lr 2e-5 move every trained weight; with bf16 master weights most updates round away."""
    torch.manual_seed(0)
    model = classification.load_model(str(bf16_checkpoint), ["a", "b"], "main", pooling="cls")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    batch = {"input_ids": torch.randint(5, 50, (4, 12)), "attention_mask": torch.ones(4, 12, dtype=torch.long),
             "labels": torch.tensor([0, 1, 0, 1])}
    for _ in range(4):
        loss = model(**batch).loss
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = [(p != before[n]).float().mean().item() for n, p in model.named_parameters()
               if "encoder.layer" in n and p.dim() == 2]
    assert min(changed) > 0.99, f"share of encoder weights an update changed: {min(changed):.3f}"


def test_metric_for_best_model_accepts_the_trainers_eval_prefix_and_knows_loss_is_lower_better(tmp_path):
    spec = TASKS["classification"]
    assert best_metric(spec, "eval_loss") == "loss" and best_metric(spec, "auto") == "f1_macro"
    assert best_metric(TASKS["regression"], "eval_mse") == "mse"
    ft = load_params(ROOT / "params.yaml").fine_tune
    args = training.training_arguments(ft, tmp_path, "fp32", True, metric=best_metric(spec, "eval_loss"))
    assert args.metric_for_best_model == "loss" and args.greater_is_better is False


def test_a_metric_the_task_does_not_produce_is_refused_with_the_params_listing_the_ones_it_does():
    raw = dataclasses.asdict(load_params(ROOT / "params.yaml"))
    raw["fine_tune"]["metric_for_best_model"] = "bleu"
    with pytest.raises(ParamsError, match=r"classification has no validation metric 'bleu'.*f1_macro"):
        params_from_dict(raw)


def test_every_tasks_declared_metrics_are_what_its_metric_functions_return():
    """TaskSpec.metrics is what the best-model check accepts: it must match the functions' real output."""
    from lmtune import metrics

    y = np.array([0, 1, 1])
    assert set(metrics.classification_metrics(y, y, 2)) == set(TASKS["classification"].metrics)
    assert set(metrics.multilabel_metrics(np.eye(3, dtype=int), np.eye(3, dtype=int))) == \
        set(TASKS["multilabel"].metrics)
    assert set(metrics.regression_metrics(y.astype(float), y.astype(float))) == set(TASKS["regression"].metrics)
    assert set(ner.seqeval_scores([["B-X", "O"]], [["B-X", "O"]])[0]) == set(TASKS["ner"].metrics)
    assert set(qa.squad_metrics(["a"], [["a"]])) == set(TASKS["qa"].metrics)
    scoring = seq2seq.scoring_for("auto", ["a b c d"])
    assert set(TASKS["translation"].metrics) <= set(seq2seq.generation_metrics(["a b c d"], [["a b c d"]], scoring))


def test_validation_logits_skip_the_cache_and_encoder_states_of_encoder_decoder_heads():
    logits, cache, states = np.ones((2, 3)), (np.zeros(1),), np.zeros((2, 5, 4))
    assert training.HeadLogits(1)((logits, cache, states), None) is logits
    start, end = np.ones((2, 7)), np.zeros((2, 7))
    assert training.HeadLogits(2)((start, end, states), None) == (start, end)
    assert training.HeadLogits(1)(logits, None) is logits
