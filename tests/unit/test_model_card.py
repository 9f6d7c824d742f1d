"""The model card (lmtune.modelcard): models/model/README.md in the Hugging Face form, written by fine-tune, logged
to MLflow with the model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from lmtune import modelcard
from lmtune.config import load_params
from stages import fine_tune
from tests.conftest import prepare_splits, tiny_overrides, write_params

LINEAGE = {"git_commit": "0123456789abcdef", "data_md5": "c0ffee", "dvc_data_md5": "feed.dir",
           "task": "classification", "base_model": "x"}
VALIDATION = {"metric": "f1_macro", "value": 0.87654321, "step": 12}
ROWS = {"train": 30, "validation": 8, "test": 7}


def render(tmp_path: Path, overrides: dict[str, object], **kwargs: object) -> ModelCard:
    params = load_params(write_params(tmp_path / "params.yaml", overrides))
    args = {"params": params, "lineage": LINEAGE, "labels": ["neg", "pos"], "validation": VALIDATION,
            "rows": ROWS, "data_dir": Path("data/processed/splits"), **kwargs}
    return ModelCard(modelcard.render(**args))


def test_card_metadata_has_base_model_task_language_license_and_data_hash_for_the_packaged_model(tmp_path):
    card = render(tmp_path, {})  # params.yaml: packaged:all-MiniLM-L6-v2, classification
    meta = card.data.to_dict()
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["pipeline_tag"] == "text-classification" and "classification" in meta["tags"]
    assert meta["library_name"] == "transformers"
    assert meta["language"] == "en" and meta["license"] == "apache-2.0", "read from the packaged model's own card"
    assert meta["training_data"] == {"path": "data/processed/splits", "source": "data/demo/reviews.csv",
                                     "dvc_md5": "feed.dir", "content_md5": "c0ffee"}


def test_card_model_index_holds_the_best_validation_metric_and_says_test_metrics_are_elsewhere(tmp_path):
    card = render(tmp_path, {})
    result = card.data.eval_results[0]
    assert (result.metric_type, result.metric_value, result.dataset_split) == ("f1_macro", 0.876543, "validation")
    assert result.dataset_revision == "feed.dir"
    assert "Best validation f1_macro: **0.8765** at step 12" in card.text
    assert "reports/summary.json" in card.text and "before the evaluate stage" in card.text


def test_card_without_validation_has_no_model_index_and_says_why(tmp_path):
    card = render(tmp_path, {}, validation={"metric": "f1_macro", "value": None, "step": None})
    assert card.data.eval_results is None and "model-index" not in str(card).split("\n---\n")[0]
    assert "No validation metric" in card.text


def test_card_lists_params_commit_and_how_to_load(tmp_path):
    card = render(tmp_path, {"fine_tune.learning_rate": 3e-5}, run_id="run123", registered_model="lmtune-x",
                  remote_code=True)
    params_block = card.text.split("```yaml\n")[1].split("```")[0]
    assert yaml.safe_load(params_block)["fine_tune"]["learning_rate"] == 3e-5
    assert "`0123456789abcdef`" in card.text and "`run123`" in card.text
    assert "lmtune predict --model models/model" in card.text
    assert 'pipeline("text-classification", model="models/model", trust_remote_code=True)' in card.text
    assert 'mlflow.pyfunc.load_model("models:/lmtune-x/<version>")' in card.text


@pytest.mark.parametrize(("task", "decoder_only", "tag", "snippet"), [
    ("ner", False, "token-classification", 'aggregation_strategy="simple"'),
    ("qa", False, "question-answering", 'pipeline("question-answering"'),
    ("multilabel", False, "text-classification", 'function_to_apply="sigmoid"'),
    ("translation", False, "translation", "AutoModelForSeq2SeqLM"),
    ("summarization", True, "text-generation", "AutoModelForCausalLM"),
])
def test_card_pipeline_tag_and_snippet_follow_the_task(tmp_path, task, decoder_only, tag, snippet):
    card = render(tmp_path, {"task.name": task, "model.name_or_path": "org/some-model",
                             "seq2seq.target_language": "de"}, decoder_only=decoder_only)
    assert card.data.pipeline_tag == tag and snippet in card.text
    assert card.data.base_model == "org/some-model"
    assert card.data.to_dict().get("language") == ("de" if task in ("translation", "summarization") else None)


def test_card_outside_dvc_gives_no_dataset_revision(tmp_path):
    card = render(tmp_path, {}, lineage={**LINEAGE, "dvc_data_md5": "not-in-dvc.lock"})
    assert card.data.eval_results[0].dataset_revision is None


def test_card_of_a_local_base_model_names_no_hub_base_model(tmp_path, tiny_model):
    card = render(tmp_path, {"model.name_or_path": str(tiny_model)})
    assert card.data.base_model is None and f"`{tiny_model}`" in card.text


def test_fine_tune_writes_the_card_and_mlflow_logs_it_with_the_model(tmp_path, tiny_model):
    import mlflow
    from mlflow.tracking import MlflowClient

    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "tracking.log_model": True,
                                                      "tracking.registered_model": "card-test"})
    splits = prepare_splits(tmp_path, params)
    fine_tune.main([str(splits), str(tmp_path / "model"), str(tmp_path / "reports"),
                    "--checkpoints", str(tmp_path / "ckpt"), "--params", str(params)])
    card = ModelCard.load(tmp_path / "model" / "README.md")
    train = json.loads((tmp_path / "reports/train.json").read_text())
    assert card.data.eval_results[0].metric_value == round(train["best_metric"], 6)
    assert card.data.to_dict()["training_data"]["content_md5"] == json.loads(
        (tmp_path / "model/lmtune.json").read_text())["data_md5"]
    version = MlflowClient().get_model_version("card-test", train["registered_version"])
    assert version.description.startswith("# classification fine-tune of")
    logged = Path(mlflow.artifacts.download_artifacts(version.source, dst_path=str(tmp_path / "dl")))
    cards = list(logged.rglob("README.md"))
    assert [c.read_text() for c in cards] == [(tmp_path / "model" / "README.md").read_text()], cards
