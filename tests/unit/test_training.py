"""Trainer construction: speed options, precision, freezing and checkpoint resume rules are applied."""
import dataclasses

import pytest
import torch

from lmtune import training
from lmtune.config import load_params
from lmtune.errors import LmtuneError
from lmtune.tasks import classification
from tests.conftest import ROOT


@pytest.fixture
def ft():
    return load_params(ROOT / "params.yaml").fine_tune


@pytest.fixture
def model(tiny_model):
    return classification.load_model(str(tiny_model), ["a", "b"], "main")


def test_training_arguments_apply_length_grouping_precision_and_optimizer(ft, tmp_path):
    args = training.training_arguments(ft, tmp_path, "bf16", has_validation=True, metric="f1_macro")
    assert args.bf16 and not args.fp16
    assert args.optim == "adamw_torch_fused"
    assert args.load_best_model_at_end and args.metric_for_best_model == "f1_macro" and args.greater_is_better
    off = training.training_arguments(dataclasses.replace(ft, group_by_length=False, optimizer="sgd"), tmp_path,
                                      "fp32", has_validation=False, metric="f1_macro")
    assert off.optim == "sgd" and not off.bf16
    assert off.eval_strategy == "no" and not off.load_best_model_at_end


def test_training_arguments_know_which_metrics_are_better_lower_and_when_to_generate(ft, tmp_path):
    from transformers import Seq2SeqTrainingArguments

    assert not training.training_arguments(ft, tmp_path, "fp32", True, metric="mse").greater_is_better
    args = training.training_arguments(ft, tmp_path, "fp32", True, metric="bleu",
                                       generation={"num_beams": 3, "max_new_tokens": 20})
    assert isinstance(args, Seq2SeqTrainingArguments) and args.predict_with_generate
    assert (args.generation_num_beams, args.generation_max_length) == (3, 21)


def test_dynamic_padding_pads_each_batch_to_its_longest_sequence(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    features = [{"input_ids": [2, 5, 3], "attention_mask": [1, 1, 1], "labels": 0},
                {"input_ids": [2, 5, 6, 7, 3], "attention_mask": [1] * 5, "labels": 1}]
    params = load_params(ROOT / "params.yaml")
    for dynamic, width in ((True, 5), (False, 128)):
        p = dataclasses.replace(params, fine_tune=dataclasses.replace(params.fine_tune, dynamic_padding=dynamic))
        assert classification.collator(tok, None, p, 128)(features)["input_ids"].shape == (2, width)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU rules")
def test_precision_auto_on_cpu_is_bf16_only_with_native_support_and_fp16_is_refused():
    assert training.resolve_precision("auto") == ("bf16" if training.cpu_has_bf16() else "fp32")
    with pytest.raises(LmtuneError, match="fp16 needs a CUDA GPU"):
        training.resolve_precision("fp16")


def test_train_head_only_freezes_the_whole_encoder(ft, model):
    sizes = training.freeze(model, dataclasses.replace(ft, train_head_only=True))
    head = sum(p.numel() for p in model.classifier.parameters())
    assert sizes["trainable_params"] == head
    assert all(not p.requires_grad for p in model.base_model.parameters())


def test_freeze_embeddings_and_first_layers(ft, model):
    training.freeze(model, dataclasses.replace(ft, freeze_embeddings=True, freeze_layers=1))
    bert = model.base_model
    assert not any(p.requires_grad for p in bert.embeddings.parameters())
    assert not any(p.requires_grad for p in bert.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in bert.encoder.layer[1].parameters())


def test_dropout_param_sets_every_dropout_layer_or_keeps_the_models(model):
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and {m.p for m in dropouts} != {0.0}
    before = [m.p for m in dropouts]
    assert training.set_dropout(model, -1) == 0 and [m.p for m in dropouts] == before
    assert training.set_dropout(model, 0.0) == len(dropouts) and {m.p for m in dropouts} == {0.0}
    model.train()  # attention dropout reads the module's p: with 0, training-mode outputs are deterministic
    ids = torch.tensor([[2, 5, 6, 7, 3]])
    torch.testing.assert_close(model(input_ids=ids).logits, model(input_ids=ids).logits)


def test_freezing_more_layers_than_the_model_has_is_a_clear_error(ft, model):
    with pytest.raises(LmtuneError, match="more than the model's 2 layers"):
        training.freeze(model, dataclasses.replace(ft, freeze_layers=3))


def test_checkpoints_resume_only_for_identical_inputs(tmp_path):
    ckpt = tmp_path / "ckpt"
    assert training.prepare_checkpoints(ckpt, {"lr": 1}, resume=True) is None
    (ckpt / "checkpoint-5").mkdir()
    (ckpt / "checkpoint-5/trainer_state.json").write_text("{}")
    assert training.prepare_checkpoints(ckpt, {"lr": 1}, resume=True).endswith("checkpoint-5")
    assert training.prepare_checkpoints(ckpt, {"lr": 2}, resume=True) is None  # inputs changed: start over
    assert not (ckpt / "checkpoint-5").exists()


def test_resume_skips_and_removes_a_checkpoint_killed_while_it_was_written(tmp_path):
    ckpt = tmp_path / "ckpt"
    training.prepare_checkpoints(ckpt, {"lr": 1}, resume=True)
    for step, state in ((40, "{}"), (80, "{}"), (120, None), (160, '{"glob')):  # 120: no state yet; 160: cut short
        (ckpt / f"checkpoint-{step}").mkdir()
        if state is not None:
            (ckpt / f"checkpoint-{step}/trainer_state.json").write_text(state)
    assert training.prepare_checkpoints(ckpt, {"lr": 1}, resume=True).endswith("checkpoint-80")
    assert sorted(p.name for p in ckpt.glob("checkpoint-*")) == ["checkpoint-40", "checkpoint-80"]


def test_learning_curves_split_train_and_validation_rows():
    history = [{"step": 1, "loss": 0.9, "learning_rate": 1e-4}, {"step": 2, "eval_loss": 0.7, "eval_f1_macro": 0.5,
                                                                  "eval_runtime": 0.1}]
    train, val = training.learning_curves(history)
    assert train == [{"step": 1, "loss": 0.9, "learning_rate": 1e-4}]
    assert val == [{"step": 2, "loss": 0.7, "f1_macro": 0.5}]


@pytest.mark.parametrize("group", [True, False])
def test_trainer_uses_the_shuffled_length_grouped_sampler_only_when_asked(ft, model, tiny_model, tmp_path, group):
    from datasets import Dataset, DatasetDict
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from lmtune.sampling import ShuffledLengthGroupedSampler

    rows = [{"input_ids": [2] + [5] * n + [3], "attention_mask": [1] * (n + 2), "labels": n % 2, "length": n + 2}
            for n in range(1, 21)]
    data = DatasetDict({"train": Dataset.from_list(rows), "validation": Dataset.from_list(rows[:4])})
    args = training.training_arguments(dataclasses.replace(ft, batch_size=4), tmp_path, "fp32", has_validation=False,
                                       metric="loss")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    trainer = training.build_trainer(model, args, data, tok, DataCollatorWithPadding(tok), None, [], 0,
                                     group_by_length=group)
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, ShuffledLengthGroupedSampler) is group


def test_gradient_accumulation_matches_one_big_batch(ft, tiny_model, tmp_path):
    """batch 4 x 2 accumulation steps must take the same optimizer step as batch 8 (a mean, not a sum)."""
    from datasets import Dataset, DatasetDict
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    rows = [{"input_ids": [2, 5 + n, 3], "attention_mask": [1, 1, 1], "labels": n % 2, "length": 3} for n in range(8)]
    data = DatasetDict({"train": Dataset.from_list(rows), "validation": Dataset.from_list(rows[:2])})
    tok = AutoTokenizer.from_pretrained(tiny_model)
    weights = []
    for batch, accum in ((8, 1), (4, 2)):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(
            tiny_model, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        cfg = dataclasses.replace(ft, batch_size=batch, grad_accum_steps=accum, max_steps=1, optimizer="sgd",
                                  learning_rate=0.5, warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=0.0)
        args = training.training_arguments(cfg, tmp_path / f"{batch}", "fp32", has_validation=False, metric="loss")
        trainer = training.build_trainer(model, args, data, tok, DataCollatorWithPadding(tok), None, [], 0,
                                         group_by_length=False)
        trainer.train()
        weights.append(model.classifier.weight.detach().clone())
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not (torch.cuda.is_available() or training.cpu_has_bf16()), reason="needs native bf16")
def test_bf16_training_keeps_fp32_weights_and_finite_loss(ft, model, tiny_model, tmp_path):
    """Mixed precision: bf16 autocast for the matmuls, fp32 master weights (so evaluation runs in fp32), no NaN."""
    from datasets import Dataset, DatasetDict
    from transformers import AutoTokenizer, DataCollatorWithPadding

    rows = [{"input_ids": [2, 5 + n, 6 + n, 3], "attention_mask": [1] * 4, "labels": n % 2, "length": 4}
            for n in range(16)]
    data = DatasetDict({"train": Dataset.from_list(rows), "validation": Dataset.from_list(rows[:4])})
    args = training.training_arguments(dataclasses.replace(ft, batch_size=4, epochs=2, logging_steps=1), tmp_path,
                                       "bf16", has_validation=False, metric="loss")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    trainer = training.build_trainer(model, args, data, tok, DataCollatorWithPadding(tok), None, [], 0,
                                     group_by_length=True)
    trainer.train()
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert len(losses) == 8 and all(torch.isfinite(torch.tensor(losses)))
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("has_validation", [False, True])
def test_no_checkpoint_is_written_at_the_last_step_unless_a_best_model_is_kept(ft, model, tiny_model, tmp_path,
                                                                               has_validation):
    from datasets import Dataset, DatasetDict
    from transformers import AutoTokenizer, DataCollatorWithPadding

    rows = [{"input_ids": [2, 5 + n, 3], "attention_mask": [1, 1, 1], "labels": n % 2, "length": 3} for n in range(8)]
    data = DatasetDict({"train": Dataset.from_list(rows), "validation": Dataset.from_list(rows[:4])})
    cfg = dataclasses.replace(ft, batch_size=4, epochs=2, early_stopping_patience=0)  # 2 steps per epoch
    args = training.training_arguments(cfg, tmp_path, "fp32", has_validation=has_validation, metric="loss")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    trainer = training.build_trainer(model, args, data, tok, DataCollatorWithPadding(tok), None, [], 0,
                                     group_by_length=False)
    trainer.train()
    saved = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    assert saved == (["checkpoint-2", "checkpoint-4"] if has_validation else ["checkpoint-2"])


@pytest.mark.parametrize("auto_class, head", [("AutoModelForTokenClassification", "classifier"),
                                              ("AutoModelForQuestionAnswering", "qa_outputs"),
                                              ("AutoModelForSequenceClassification", "classifier")])
def test_lora_keeps_each_task_head_fully_trainable(ft, tiny_model, auto_class, head):
    import transformers

    model = getattr(transformers, auto_class).from_pretrained(tiny_model, num_labels=3)
    lora = training.apply_lora(model, dataclasses.replace(ft, lora_rank=2, lora_alpha=4))
    trainable = {name for name, p in lora.named_parameters() if p.requires_grad}
    assert any(f"{head}.modules_to_save" in name for name in trainable), sorted(trainable)
    assert any("lora_A" in name for name in trainable)
    assert not any("word_embeddings" in name for name in trainable)
