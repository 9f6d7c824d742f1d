"""fine_tune.pooling: the mean-pooling head (lmtune.modeling), how auto picks it, and how its models load back."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import BertForSequenceClassification

from lmtune.errors import ParamsError
from lmtune.modeling import MeanPoolingForSequenceClassification
from lmtune.tasks import classification, multilabel, regression

BATCH = {"input_ids": torch.tensor([[2, 5, 6, 3, 0, 0], [2, 7, 8, 9, 10, 3]]),
         "attention_mask": torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])}


@pytest.fixture
def sentence_model(tiny_model, tmp_path):
    """The tiny encoder laid out as a sentence-transformers checkpoint trained on mean pooling (as all-MiniLM-L6-v2)."""
    path = shutil.copytree(tiny_model, tmp_path / "sentence-model")
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling/config.json").write_text(json.dumps({"pooling_mode_cls_token": False,
                                                             "pooling_mode_mean_tokens": True}))
    return path


def test_pooling_auto_is_mean_for_a_mean_trained_sentence_checkpoint_and_cls_otherwise(tiny_model, sentence_model):
    assert isinstance(classification.load_model(str(sentence_model), ["a", "b"], "main"),
                      MeanPoolingForSequenceClassification)
    assert isinstance(classification.load_model(str(tiny_model), ["a", "b"], "main"), BertForSequenceClassification)
    assert isinstance(classification.load_model(str(sentence_model), ["a", "b"], "main", pooling="cls"),
                      BertForSequenceClassification)
    assert isinstance(classification.load_model(str(tiny_model), ["a", "b"], "main", pooling="mean"),
                      MeanPoolingForSequenceClassification)


def test_the_packaged_checkpoint_declares_mean_pooling():
    from lmtune import models

    assert models.sentence_pooling(models.resolve("packaged:all-MiniLM-L6-v2"), "main") == "mean"


def test_mean_pooling_head_reads_the_mean_of_unpadded_token_states_and_keeps_the_pretrained_encoder(tiny_model):
    from transformers import AutoModel

    model = classification.load_model(str(tiny_model), ["a", "b", "c"], "main", pooling="mean").eval()
    pretrained = AutoModel.from_pretrained(tiny_model).eval()
    for name, tensor in pretrained.state_dict().items():
        if not name.startswith("pooler."):
            assert torch.equal(model.encoder.state_dict()[name], tensor), f"encoder weight {name} was not loaded"
    assert model.encoder.pooler is None, "the [CLS] pooler, unused here, is dropped"
    with torch.no_grad():
        states = pretrained(**BATCH).last_hidden_state
        expected = torch.stack([states[0, :4].mean(0), states[1].mean(0)]) @ model.classifier.weight.T \
            + model.classifier.bias
        torch.testing.assert_close(model(**BATCH).logits, expected)
        padded_more = {k: torch.nn.functional.pad(v, (0, 3)) for k, v in BATCH.items()}
        torch.testing.assert_close(model(**padded_more).logits, expected)


def test_mean_pooling_loss_follows_the_task_problem_type(tiny_model):
    for load, labels, target in ((classification.load_model, ["a", "b"], torch.tensor([0, 1])),
                                 (multilabel.load_model, ["a", "b"], torch.tensor([[1.0, 0.0], [1.0, 1.0]])),
                                 (regression.load_model, [], torch.tensor([0.5, -1.0]))):
        model = load(str(tiny_model), labels, "main", pooling="mean")
        out = model(**BATCH, labels=target)
        assert out.loss.ndim == 0 and torch.isfinite(out.loss), load
        out.loss.backward()
        assert model.classifier.weight.grad is not None


def test_mean_pooled_model_loads_back_with_its_head_in_lmtune_and_refuses_a_cls_head(tiny_model, tmp_path):
    model = classification.load_model(str(tiny_model), ["neg", "pos"], "main", pooling="mean").eval()
    model.save_pretrained(tmp_path / "ft")
    again = classification.load_model(str(tmp_path / "ft"), ["neg", "pos"], "main").eval()
    assert isinstance(again, MeanPoolingForSequenceClassification) and again.config.id2label == {0: "neg", 1: "pos"}
    with torch.no_grad():
        torch.testing.assert_close(again(**BATCH).logits, model(**BATCH).logits)
    with pytest.raises(ParamsError, match="mean-pooling head"):
        classification.load_model(str(tmp_path / "ft"), ["neg", "pos"], "main", pooling="cls")


def test_mean_pooled_model_loads_without_lmtune_only_with_trust_remote_code(tiny_model, tmp_path):
    model = classification.load_model(str(tiny_model), ["neg", "pos"], "main", pooling="mean").eval()
    model.save_pretrained(tmp_path / "ft")
    assert (tmp_path / "ft/modeling.py").is_file(), "the model carries its own code"
    with torch.no_grad():
        expected = model(**BATCH).logits.tolist()
    script = f"""
import json, sys, torch
from transformers import AutoModelForSequenceClassification as Auto
try:
    Auto.from_pretrained({str(tmp_path / "ft")!r})
    sys.exit("a plain load must not silently build a [CLS] head")
except ValueError as err:
    assert "trust_remote_code" in str(err), err
model = Auto.from_pretrained({str(tmp_path / "ft")!r}, trust_remote_code=True).eval()
assert "lmtune" not in sys.modules
batch = {json.dumps({k: v.tolist() for k, v in BATCH.items()})}
print(json.dumps(model(**{{k: torch.tensor(v) for k, v in batch.items()}}).logits.tolist()))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-2000:]
    logits = out.stdout.rsplit("[y/N] ", 1)[-1]  # after transformers' prompt (stdin is closed: the answer is no)
    torch.testing.assert_close(torch.tensor(json.loads(logits)), torch.tensor(expected))


def test_mean_pooling_config_wraps_an_encoder_config_and_reads_back_its_own(tiny_model, tmp_path):
    from lmtune.modeling import MeanPoolingConfig

    wrapped = MeanPoolingConfig.from_pretrained(tiny_model)  # as peft reads the base model's config
    assert (wrapped.encoder_model_type, wrapped.hidden_size, wrapped.num_hidden_layers) == ("bert", 32, 2)
    assert type(wrapped.encoder_config()).__name__ == "BertConfig"
    wrapped.save_pretrained(tmp_path)
    again = MeanPoolingConfig.from_pretrained(tmp_path).to_dict()
    assert again == {**wrapped.to_dict(), "_name_or_path": again["_name_or_path"]}
