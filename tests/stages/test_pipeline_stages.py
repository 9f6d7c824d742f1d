"""Each stage's contract, run in-process through its main(argv) on the fixture data with the tiny model."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
from datasets import load_from_disk
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from lmtune import cli
from lmtune.errors import ParamsError
from stages import clean, evaluate, fine_tune, split, tokenize
from tests.conftest import FIXTURES, tiny_overrides, write_params


def run_all(root: Path, params: Path, data: Path = FIXTURES / "sentiment.csv") -> Path:
    """clean -> tokenize -> split -> fine-tune -> evaluate under `root`, with the dvc.yaml layout."""
    p = ["--params", str(params)]
    clean.main([str(data), str(root / "interim"), str(root / "reports/clean.json"), *p])
    tokenize.main([str(root / "interim"), str(root / "tokenized"), str(root / "reports/tokenize.json"), *p])
    split.main([str(root / "tokenized"), str(root / "splits"), str(root / "reports/split.json"), *p])
    fine_tune.main([str(root / "splits"), str(root / "model"), str(root / "reports"),
                    "--checkpoints", str(root / "checkpoints"), *p])
    evaluate.main([str(root / "splits"), str(root / "model"), str(root / "reports"), *p])
    return root


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    params = write_params(root / "params.yaml", {**tiny_overrides(tiny_model), "tracking.log_model": True,
                                                  "tracking.registered_model": "tiny-stage-test"})
    return run_all(root, params)


def read(path: Path):
    return json.loads(path.read_text())


def test_clean_writes_data_labels_and_counts(pipeline):
    summary = read(pipeline / "reports/clean.json")
    assert summary["rows_in"] == 45 and summary["rows_kept"] == 45 and summary["num_labels"] == 3
    assert read(pipeline / "interim/meta.json")["labels"] == ["negative", "neutral", "positive"]
    assert (pipeline / "interim/data.parquet").is_file() and (pipeline / "interim/rejected.csv").is_file()


def test_clean_writes_every_dropped_row_with_its_reason(tmp_path, tiny_params):
    data = tmp_path / "dirty.csv"
    data.write_text("text,label\nGreat phone,pos\n   ,pos\nGreat  phone,pos\nok ok,neg\nok ok,pos\nfine,neg\n"
                    "bad,\n")
    clean.main([str(data), str(tmp_path / "out"), str(tmp_path / "clean.json"), "--params", str(tiny_params)])
    summary = read(tmp_path / "clean.json")
    assert summary["rejected_by_reason"] == {"conflicting_labels": 2, "duplicate": 1, "empty_text": 1,
                                             "missing_label": 1}
    rejected = (tmp_path / "out/rejected.csv").read_text().splitlines()
    assert rejected[0] == "row,reason,label,text" and "3,empty_text,pos," in rejected[1]


def test_tokenize_does_not_pad_and_counts_truncated_texts(pipeline, tmp_path, tiny_model):
    ds = load_from_disk(str(pipeline / "tokenized"))
    lengths = {len(ids) for ids in ds["input_ids"]}
    assert len(lengths) > 1, "sequences must keep their own lengths (padding happens per batch)"
    assert set(ds.column_names) >= {"input_ids", "attention_mask", "labels", "length", "example_id", "text"}
    params = write_params(tmp_path / "p.yaml", {**tiny_overrides(tiny_model), "tokenize.max_length": 8})
    tokenize.main([str(pipeline / "interim"), str(tmp_path / "tok"), str(tmp_path / "t.json"), "--params", str(params)])
    summary = read(tmp_path / "t.json")
    assert summary["truncated_texts"] > 0
    assert max(len(ids) for ids in load_from_disk(str(tmp_path / "tok"))["input_ids"]) == 8


def test_tokenize_output_is_byte_identical_wherever_the_model_is_installed(pipeline, tmp_path, tiny_model):
    """Same input and tokenizer, same bytes (the dataset fingerprint too), even from another install path (another
    venv, another machine): otherwise DVC would give the data a new hash and rerun split and fine-tune."""
    for name in ("a", "b"):
        model = shutil.copytree(tiny_model, tmp_path / f"model-{name}")
        params = write_params(tmp_path / f"{name}.yaml", tiny_overrides(model))
        tokenize.main([str(pipeline / "interim"), str(tmp_path / name), str(tmp_path / f"{name}.json"),
                       "--params", str(params)])
    files = sorted(f.relative_to(tmp_path / "a") for f in (tmp_path / "a").rglob("*") if f.is_file())
    assert files and files == sorted(f.relative_to(tmp_path / "b") for f in (tmp_path / "b").rglob("*") if f.is_file())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), f"{name} differs"


def test_split_is_disjoint_and_reports_sizes_and_label_counts(pipeline):
    splits = load_from_disk(str(pipeline / "splits"))
    texts = {name: set(splits[name]["text"]) for name in ("train", "validation", "test")}
    assert not (texts["train"] & texts["test"]) and not (texts["train"] & texts["validation"])
    assert not (texts["validation"] & texts["test"])
    summary = read(pipeline / "reports/split.json")
    assert sum(s["examples"] for s in summary.values()) == 45
    assert summary["test"]["label_counts"] == {"negative": 3, "neutral": 3, "positive": 3}


def test_split_uses_the_split_column_when_configured(tmp_path, tiny_model):
    rows = ["text,label,part"] + [f"sentence number {i} is {lab},{lab},{part}" for i, (lab, part) in enumerate(
        [("good", "train"), ("bad", "train")] * 4 + [("good", "dev"), ("bad", "dev"), ("good", "test"), ("bad", "test")])]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    params = write_params(tmp_path / "p.yaml", {**tiny_overrides(tiny_model), "task.split_column": "part"})
    p = ["--params", str(params)]
    clean.main([str(tmp_path / "d.csv"), str(tmp_path / "i"), str(tmp_path / "c.json"), *p])
    tokenize.main([str(tmp_path / "i"), str(tmp_path / "t"), str(tmp_path / "t.json"), *p])
    split.main([str(tmp_path / "t"), str(tmp_path / "s"), str(tmp_path / "s.json"), *p])
    assert {k: v["examples"] for k, v in read(tmp_path / "s.json").items()} == {"train": 8, "validation": 2, "test": 2}


def test_fine_tune_writes_model_info_curves_and_removes_checkpoints(pipeline):
    model = pipeline / "model"
    assert (model / "config.json").is_file() and (model / "tokenizer.json").is_file()
    info = read(model / "lmtune.json")
    assert info["labels"] == ["negative", "neutral", "positive"] and info["task"] == "classification"
    summary = read(pipeline / "reports/train.json")
    assert math.isfinite(summary["train_loss"]) and summary["global_steps"] > 0
    live = pipeline / "reports/live"
    train_loss = (live / "plots/metrics/train/loss.tsv").read_text().splitlines()
    assert train_loss[0].split("\t") == ["step", "loss"] and len(train_loss) > 2
    assert int(train_loss[1].split("\t")[0]) >= 1, "curves are indexed by optimizer step"
    assert (live / "plots/metrics/eval/f1_macro.tsv").is_file()
    assert "f1_macro" in read(live / "metrics.json")["eval"]
    assert (pipeline / "reports/learning_curves.png").stat().st_size > 1000
    assert not (pipeline / "checkpoints").exists(), "finished runs leave no checkpoints behind"


def test_evaluate_writes_metrics_in_range_predictions_and_confusion(pipeline):
    metrics = read(pipeline / "reports/metrics.json")
    for key in ("accuracy", "f1_macro", "f1_micro", "f1_weighted", "precision_macro", "recall_weighted"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["test_examples"] == 9 and metrics["leaked_test_texts"] == 0
    predictions = (pipeline / "reports/eval/predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 9 and set(json.loads(predictions[0])) == {"text", "label", "predicted", "score"}
    assert len(read(pipeline / "reports/plots/confusion/test.json")) == 9
    assert [r["label"] for r in read(pipeline / "reports/plots/f1_by_label/test.json")] == \
        ["negative", "neutral", "positive"]
    assert read(pipeline / "reports/plots/precision_recall/test.json")[0].keys() == {"recall", "precision"}
    assert set(read(pipeline / "reports/eval/per_class.json")) == {"negative", "neutral", "positive"}
    for png in ("confusion_matrix.png", "per_class_f1.png", "precision_recall.png"):
        assert (pipeline / "reports/eval/figures" / png).stat().st_size > 1000, png


def test_same_seed_gives_byte_identical_metrics(pipeline, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(pipeline / "splits", again / "splits")
    p = ["--params", str(pipeline / "params.yaml")]
    fine_tune.main([str(again / "splits"), str(again / "model"), str(again / "reports"),
                    "--checkpoints", str(again / "ckpt"), *p])
    evaluate.main([str(again / "splits"), str(again / "model"), str(again / "reports"), *p])
    assert (again / "reports/metrics.json").read_bytes() == (pipeline / "reports/metrics.json").read_bytes()


def test_mlflow_run_has_params_step_metrics_test_metrics_lineage_tags_and_registered_model(pipeline):
    run_id = read(pipeline / "model/mlflow_run.json")["run_id"]
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.data.params["fine_tune.learning_rate"] == "0.001"
    assert "tiny-bert" in run.data.params["model.name_or_path"]
    assert "loss" in run.data.metrics and "eval_f1_macro" in run.data.metrics
    assert len(client.get_metric_history(run_id, "loss")) > 1, "training loss is logged per step"
    metrics = read(pipeline / "reports/metrics.json")
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["accuracy"])
    tags = run.data.tags
    assert tags["lmtune.task"] == "classification" and len(tags["lmtune.data_md5"]) == 32
    assert "lmtune.git_commit" in tags
    versions = client.search_model_versions("name='tiny-stage-test'")
    assert run_id in [v.run_id for v in versions], "each fine-tune registers a new model version"
    artifacts = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert "evaluation/confusion_matrix.png" in artifacts


def test_registered_model_loads_back_through_mlflow_and_predicts(pipeline):
    version = read(pipeline / "reports/train.json")["registered_version"]
    model = mlflow.pyfunc.load_model(f"models:/tiny-stage-test/{version}")
    import pandas as pd

    out = model.predict(pd.DataFrame({"text": ["great phone", "terrible service"]}))
    assert list(out.columns) == ["label", "score"] and len(out) == 2
    assert set(out["label"]) <= {"negative", "neutral", "positive"}


def test_lmtune_predict_labels_texts_from_a_file_as_json_lines(pipeline, tmp_path, capsys):
    texts = tmp_path / "in.txt"
    texts.write_text('great phone\n{"text": "terrible service"}\n\n')
    cli.main(["predict", "--model", str(pipeline / "model"), "--input", str(texts)])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["great phone", "terrible service"]
    assert all(r["label"] in r["scores"] and np.isclose(sum(r["scores"].values()), 1, atol=1e-4) for r in rows)


def test_lora_trains_few_params_keeps_the_adapter_and_writes_a_merged_model(pipeline, tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "fine_tune.lora_rank": 4,
                                                     "fine_tune.lora_alpha": 8})
    p = ["--params", str(params)]
    fine_tune.main([str(pipeline / "splits"), str(tmp_path / "model"), str(tmp_path / "reports"),
                    "--checkpoints", str(tmp_path / "ckpt"), *p])
    summary = read(tmp_path / "reports/train.json")
    full = read(pipeline / "reports/train.json")
    assert summary["trainable_params"] < full["trainable_params"] / 4
    assert (tmp_path / "model/adapter/adapter_config.json").is_file()
    weights = load_file(str(tmp_path / "model/model.safetensors"))
    assert not any("lora" in key for key in weights), "the saved model is merged: plain weights, no LoRA layers"
    evaluate.main([str(pipeline / "splits"), str(tmp_path / "model"), str(tmp_path / "reports"), *p])
    assert 0 <= read(tmp_path / "reports/metrics.json")["accuracy"] <= 1


def test_mean_pooling_with_lora_fine_tunes_saves_its_head_and_evaluates_and_predicts(pipeline, tmp_path, tiny_model,
                                                                                     capsys):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "fine_tune.pooling": "mean",
                                                     "fine_tune.lora_rank": 4, "fine_tune.lora_alpha": 8})
    p = ["--params", str(params)]
    fine_tune.main([str(pipeline / "splits"), str(tmp_path / "model"), str(tmp_path / "reports"),
                    "--checkpoints", str(tmp_path / "ckpt"), *p])
    config = read(tmp_path / "model/config.json")
    assert config["model_type"] == "lmtune-mean-pooling" and (tmp_path / "model/modeling.py").is_file()
    assert not any(key.startswith("encoder.pooler") for key in load_file(str(tmp_path / "model/model.safetensors")))
    evaluate.main([str(pipeline / "splits"), str(tmp_path / "model"), str(tmp_path / "reports"), *p])
    assert 0 <= read(tmp_path / "reports/metrics.json")["accuracy"] <= 1
    (tmp_path / "in.txt").write_text("great phone\n")
    cli.main(["predict", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "in.txt")])
    prediction = json.loads(capsys.readouterr().out.splitlines()[-1])  # after fine_tune's validation lines
    assert prediction["text"] == "great phone" and prediction["label"] in {"negative", "neutral", "positive"}


def test_fine_tune_refuses_a_pooling_choice_for_a_task_that_predicts_per_token(tmp_path, tiny_model):
    params = write_params(tmp_path / "params.yaml", {**tiny_overrides(tiny_model), "task.name": "ner",
                                                     "fine_tune.pooling": "mean"})
    with pytest.raises(ParamsError, match="fine_tune.pooling: mean applies to tasks with one prediction per text"):
        fine_tune.main([str(tmp_path / "none"), str(tmp_path / "model"), str(tmp_path / "reports"),
                        "--params", str(params)])
    assert not (tmp_path / "model").exists()


def test_clean_drops_null_and_whitespace_only_texts_from_jsonl(tmp_path, tiny_params):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": null, "label": "a"}\n{"text": " \\t ", "label": "b"}\n{"text": "ok then", "label": "a"}\n'
                    '{"text": "fine", "label": "b"}\n')
    clean.main([str(data), str(tmp_path / "out"), str(tmp_path / "clean.json"), "--params", str(tiny_params)])
    assert read(tmp_path / "clean.json")["rejected_by_reason"] == {"empty_text": 2}
