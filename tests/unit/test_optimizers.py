"""fine_tune.optimizer and fine_tune.momentum: each choice builds that optimizer in the Trainer (checked on the object
the Trainer creates, not on the arguments), SGD gets its momentum, and bad combinations stop at params load."""
import dataclasses

import pytest
import torch
from transformers.optimization import Adafactor

from lmtune import training
from lmtune.config import load_params, params_from_dict
from lmtune.errors import ParamsError
from lmtune.tasks import classification
from tests.conftest import ROOT

BUILT = {"adamw": torch.optim.AdamW, "adagrad": torch.optim.Adagrad, "adadelta": torch.optim.Adadelta,
         "sgd": torch.optim.SGD, "adafactor": Adafactor}


@pytest.fixture
def ft():
    return load_params(ROOT / "params.yaml").fine_tune


def tiny_data():
    from datasets import Dataset, DatasetDict

    rows = [{"input_ids": [2, 5 + n, 3], "attention_mask": [1, 1, 1], "labels": n % 2, "length": 3} for n in range(8)]
    return DatasetDict({"train": Dataset.from_list(rows), "validation": Dataset.from_list(rows[:2])})


def trainer_for(ft, tiny_model, tmp_path, **changes):
    from transformers import AutoTokenizer, DataCollatorWithPadding

    cfg = dataclasses.replace(ft, batch_size=4, max_steps=1, **changes)
    args = training.training_arguments(cfg, tmp_path, "fp32", has_validation=False, metric="loss")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = classification.load_model(str(tiny_model), ["a", "b"], "main")
    return training.build_trainer(model, args, tiny_data(), tok, DataCollatorWithPadding(tok), None, [], 0,
                                  group_by_length=False)


def test_the_default_optimizer_is_fused_adamw_as_before(ft, tiny_model, tmp_path):
    assert ft.optimizer == "adamw" and ft.momentum == 0.0
    optimizer = trainer_for(ft, tiny_model, tmp_path).create_optimizer()
    assert type(optimizer) is torch.optim.AdamW and optimizer.defaults["fused"] is True


@pytest.mark.parametrize("name", list(BUILT))
def test_each_optimizer_choice_is_the_optimizer_the_trainer_builds(ft, tiny_model, tmp_path, name):
    lr = 1.0 if name == "adadelta" else 3e-4
    optimizer = trainer_for(ft, tiny_model, tmp_path, optimizer=name, learning_rate=lr).create_optimizer()
    assert type(optimizer) is BUILT[name], f"fine_tune.optimizer {name} built {type(optimizer).__name__}"
    assert optimizer.defaults["lr"] == lr
    decays = sorted(group["weight_decay"] for group in optimizer.param_groups)
    assert decays == [0.0, ft.weight_decay], "weight decay on weights, none on biases and LayerNorm"


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_gets_the_momentum_param(ft, tiny_model, tmp_path, momentum):
    optimizer = trainer_for(ft, tiny_model, tmp_path, optimizer="sgd", momentum=momentum).create_optimizer()
    assert type(optimizer) is torch.optim.SGD
    assert {group["momentum"] for group in optimizer.param_groups} == {momentum}


def test_adadelta_is_the_optimizer_that_actually_steps_in_training(ft, tiny_model, tmp_path):
    """Adadelta is not one of transformers' optimizer names: the class reaches the Trainer by build_trainer; a
    training step must use it (not the placeholder `optim` of its TrainingArguments) and move the weights."""
    trainer = trainer_for(ft, tiny_model, tmp_path, optimizer="adadelta", learning_rate=1.0, warmup_ratio=0.0)
    before = trainer.model.classifier.weight.detach().clone()
    trainer.train()
    inner = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    assert type(inner) is torch.optim.Adadelta and inner.state, "Adadelta kept state for the step it took"
    assert not torch.equal(before, trainer.model.classifier.weight.detach())


def params_with(**fine_tune):
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["fine_tune"].update(fine_tune)
    return params_from_dict(raw, source="params.yaml")


@pytest.mark.parametrize("optimizer", ["adamw", "adagrad", "adadelta", "adafactor"])
def test_a_nonzero_momentum_without_sgd_is_refused_at_params_load(optimizer):
    with pytest.raises(ParamsError, match="momentum applies to optimizer sgd only; set momentum: 0.0 or optimizer: sgd"):
        params_with(optimizer=optimizer, momentum=0.9, learning_rate=0.5)


def test_momentum_range_unknown_optimizers_and_adadeltas_learning_rate_are_checked():
    assert params_with(optimizer="sgd", momentum=0.9).fine_tune.momentum == 0.9
    assert params_with(optimizer="sgd", momentum=0).fine_tune.momentum == 0.0  # an int in YAML is a float
    with pytest.raises(ParamsError, match=r"momentum must lie in \[0, 1\)"):
        params_with(optimizer="sgd", momentum=1.5)
    with pytest.raises(ParamsError, match="fine_tune.optimizer: must be one of 'adamw', 'adagrad', 'adadelta'"):
        params_with(optimizer="rmsprop")
    assert params_with(optimizer="adadelta", learning_rate=1.0).fine_tune.learning_rate == 1.0
    with pytest.raises(ParamsError, match=r"learning_rate must lie in \(0, 1\)"):
        params_with(optimizer="adamw", learning_rate=1.0)
