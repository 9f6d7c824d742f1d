"""Multi-label classification: every stage on the tiny model (CSV and JSONL input), label-set cleaning rules,
the threshold, the metric definitions, `lmtune predict`, a real `dvc repro`, and a quality floor (slow)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from datasets import load_from_disk

from lmtune import cli, metrics
from lmtune.config import load_params
from stages import clean, evaluate
from tests.conftest import FIXTURES, copy_project, run_module, tiny_overrides, write_params
from tests.integration.test_dvc_pipeline import init_repo, repro
from tests.stages.test_pipeline_stages import run_all

LABELS = ["food", "politics", "sports", "technology"]
JSONL = {"task.name": "multilabel", "task.label_column": "labels"}


def read(path: Path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("multilabel-csv")
    params = write_params(root / "params.yaml", {**tiny_overrides(tiny_model), "task.name": "multilabel"})
    return run_all(root, params, data=FIXTURES / "multilabel_topics.csv")


@pytest.fixture(scope="module")
def jsonl_run(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("multilabel-jsonl")
    params = write_params(root / "params.yaml", {**tiny_overrides(tiny_model), **JSONL})
    return run_all(root, params, data=FIXTURES / "multilabel_topics.jsonl")


def test_clean_reports_label_counts_and_labels_per_text_from_csv(csv_run):
    summary = read(csv_run / "reports/clean.json")
    assert summary["rows_kept"] == 48 and summary["num_labels"] == 4
    assert summary["label_counts"] == {"food": 24, "politics": 15, "sports": 25, "technology": 27}
    assert summary["mean_labels_per_text"] == pytest.approx(91 / 48, abs=1e-4)
    assert read(csv_run / "interim/meta.json")["labels"] == LABELS


def test_clean_keeps_jsonl_empty_lists_as_texts_without_labels(jsonl_run):
    summary = read(jsonl_run / "reports/clean.json")
    assert summary["rows_kept"] == 40 and summary["texts_without_labels"] == 3
    assert read(jsonl_run / "interim/meta.json")["labels"] == LABELS


@pytest.mark.parametrize("run", ["csv_run", "jsonl_run"])
def test_tokenize_writes_multi_hot_float_labels_and_split_keeps_every_example(run, request):
    root = request.getfixturevalue(run)
    ds = load_from_disk(str(root / "tokenized"))
    assert ds.features["labels"].feature.dtype == "float32", "BCEWithLogitsLoss needs float targets"
    labels = np.asarray(ds["labels"])
    assert labels.shape == (len(ds), 4) and set(np.unique(labels)) <= {0.0, 1.0}
    split = read(root / "reports/split.json")
    assert sum(s["examples"] for s in split.values()) == len(ds)
    train_counts = labels[np.asarray(load_from_disk(str(root / "splits"))["train"]["example_id"])].sum(axis=0)
    assert list(split["train"]["label_counts"].values()) == train_counts.astype(int).tolist(), "texts per label"


def test_fine_tune_saves_a_sigmoid_head_with_label_names(csv_run):
    config = read(csv_run / "model/config.json")
    assert config["problem_type"] == "multi_label_classification"
    assert [config["id2label"][str(i)] for i in range(4)] == LABELS
    assert read(csv_run / "model/lmtune.json")["task"] == "multilabel"
    assert (csv_run / "reports/live/plots/metrics/eval/f1_micro.tsv").is_file(), "validated on f1_micro"


@pytest.mark.parametrize("run", ["csv_run", "jsonl_run"])
def test_evaluate_writes_metrics_per_label_report_plots_and_predictions(run, request):
    root = request.getfixturevalue(run)
    m = read(root / "reports/metrics.json")
    for key in ("f1_micro", "f1_macro", "f1_samples", "precision_micro", "recall_macro", "subset_accuracy",
                "hamming_loss"):
        assert 0.0 <= m[key] <= 1.0, key
    per_label = read(root / "reports/eval/per_label.json")
    assert set(per_label) == set(LABELS) and set(per_label["food"]) == {"precision", "recall", "f1-score", "support"}
    assert [row["label"] for row in read(root / "reports/plots/f1_by_label/test.json")] == LABELS
    assert all(0 <= p["recall"] <= 1 for p in read(root / "reports/plots/precision_recall/test.json"))
    assert not (root / "reports/plots/confusion/test.json").exists()
    for name in ("per_label_f1.png", "precision_recall.png"):
        assert (root / "reports/eval/figures" / name).stat().st_size > 1000, name
    rows = [json.loads(line) for line in (root / "reports/eval/predictions.jsonl").read_text().splitlines()]
    assert len(rows) == m["test_examples"] and set(rows[0]) == {"text", "labels", "predicted", "scores"}
    assert set(rows[0]["scores"]) == set(LABELS) and set(rows[0]["labels"]) <= set(LABELS)


def test_evaluate_applies_the_threshold_param(csv_run, tmp_path, tiny_model):
    params = write_params(tmp_path / "p.yaml", {**tiny_overrides(tiny_model), "task.name": "multilabel",
                                                 "multilabel.threshold": 0.001})
    evaluate.main([str(csv_run / "splits"), str(csv_run / "model"), str(tmp_path / "reports"), "--params", str(params)])
    m = read(tmp_path / "reports/metrics.json")
    assert m["recall_micro"] == 1.0, "a threshold near 0 predicts every label"
    assert m != read(csv_run / "reports/metrics.json")


def test_validation_metrics_use_the_threshold_param(tmp_path, tiny_model):
    from lmtune.tasks.multilabel import compute_metrics

    pred = SimpleNamespace(predictions=np.array([[2.0, -2.0], [0.5, -0.5]]),
                           label_ids=np.array([[1.0, 0.0], [0.0, 0.0]]))
    for threshold, subset_accuracy in ((0.5, 0.5), (0.7, 1.0)):  # sigmoid(0.5) = 0.62: predicted at 0.5 only
        params = load_params(write_params(tmp_path / "p.yaml", {"task.name": "multilabel",
                                                                 "multilabel.threshold": threshold}))
        assert compute_metrics(["a", "b"], params, None, None)(pred)["subset_accuracy"] == subset_accuracy


def lmtune_predict(model_dir: Path, tmp_path: Path, capsys) -> list[dict]:
    texts = tmp_path / "in.txt"
    texts.write_text('the team won the final match\n{"text": "the chef baked bread with wild yeast"}\n')
    cli.main(["predict", "--model", str(model_dir), "--input", str(texts)])
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_lmtune_predict_returns_labels_at_or_above_the_trained_threshold(csv_run, tmp_path, capsys):
    rows = lmtune_predict(csv_run / "model", tmp_path, capsys)
    assert [r["text"] for r in rows] == ["the team won the final match", "the chef baked bread with wild yeast"]
    for row in rows:
        assert set(row["scores"]) == set(LABELS) and all(0 < s < 1 for s in row["scores"].values())
        assert row["labels"] == [name for name in LABELS if row["scores"][name] >= 0.5]
    model = shutil.copytree(csv_run / "model", tmp_path / "model")
    info = read(model / "lmtune.json")
    for threshold, expected in ((0.001, LABELS), (0.999, [])):
        info["params"]["multilabel"]["threshold"] = threshold
        (model / "lmtune.json").write_text(json.dumps(info))
        assert all(r["labels"] == expected for r in lmtune_predict(model, tmp_path, capsys)), threshold


def clean_summary(tmp_path: Path, params: Path, name: str, content: str) -> tuple[dict, list[str]]:
    (tmp_path / name).write_text(content)
    clean.main([str(tmp_path / name), str(tmp_path / "out"), str(tmp_path / "c.json"), "--params", str(params)])
    return read(tmp_path / "c.json"), (tmp_path / "out/rejected.csv").read_text().splitlines()


def test_clean_compares_label_sets_so_reordered_labels_are_duplicates_not_conflicts(tmp_path, tiny_model):
    params = write_params(tmp_path / "p.yaml", {**tiny_overrides(tiny_model), "task.name": "multilabel"})
    summary, rejected = clean_summary(tmp_path, params, "d.csv", "text,label\nbig news today,sports|politics\n"
                                      "big news today,politics| sports\nother news,food\nother news,food|tech\n"
                                      "more news,food\n")
    assert summary["rejected_by_reason"] == {"conflicting_labels": 2, "duplicate": 1}
    assert "3,duplicate,politics|sports,big news today" in rejected
    assert summary["label_counts"] == {"food": 1, "politics": 1, "sports": 1}


def test_clean_keeps_explicit_empty_label_sets_and_rejects_blank_ones(tmp_path, tiny_model):
    params = write_params(tmp_path / "p.yaml", {**tiny_overrides(tiny_model), **JSONL})
    summary, _ = clean_summary(tmp_path, params, "d.jsonl", '{"text": "quiet day", "labels": []}\n'
                               '{"text": "calm night", "labels": "[]"}\n{"text": "no idea", "labels": null}\n'
                               '{"text": "blank one", "labels": ""}\n{"text": "big match", "labels": ["sports"]}\n')
    assert summary["rows_kept"] == 3 and summary["texts_without_labels"] == 2
    assert summary["rejected_by_reason"] == {"missing_label": 2}


@pytest.mark.parametrize("content,fragment", [
    ('{"text": "quiet day", "labels": []}\n{"text": "calm night", "labels": []}\n', "every kept row has an empty"),
    ('{"text": "big match", "labels": ["sports|news"]}\n', "label 'sports|news' contains multilabel.label_separator"),
])
def test_clean_fails_with_one_clear_message_on_unusable_label_sets(content, fragment, tmp_path, tiny_model):
    params = write_params(tmp_path / "p.yaml", {**tiny_overrides(tiny_model), **JSONL})
    (tmp_path / "d.jsonl").write_text(content)
    result = run_module("stages.clean", str(tmp_path / "d.jsonl"), str(tmp_path / "out"), str(tmp_path / "c.json"),
                        "--params", str(params))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "d.jsonl" in result.stderr and fragment in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_multilabel_metrics_match_hand_computed_values():
    y_true = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    y_pred = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]])  # 2 TP, 1 FP, 1 FN over 9 decisions
    m = metrics.multilabel_metrics(y_true, y_pred)
    assert m["precision_micro"] == pytest.approx(2 / 3) and m["recall_micro"] == pytest.approx(2 / 3)
    assert m["f1_micro"] == pytest.approx(2 / 3) and m["f1_macro"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["hamming_loss"] == pytest.approx(2 / 9) and m["subset_accuracy"] == pytest.approx(1 / 3)
    assert m["f1_samples"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3), "an empty set predicted as empty scores 1"
    perfect = metrics.multilabel_metrics(y_true, y_true)
    assert perfect["f1_micro"] == perfect["subset_accuracy"] == 1.0 and perfect["hamming_loss"] == 0.0


def repro_on_fixture(tmp_path: Path, tiny_model: Path, fixture: Path, overrides: dict[str, object]) -> dict:
    """`dvc repro` of a git + DVC copy of the project whose clean stage reads `fixture`; returns the test metrics."""
    repo = copy_project(tmp_path)
    shutil.copy(fixture, repo / "data" / fixture.name)
    write_params(repo / "params.yaml", {**tiny_overrides(tiny_model), **overrides, "data.path": f"data/{fixture.name}"})
    init_repo(repo)
    assert repro(repo) == {"clean", "tokenize", "split", "fine-tune", "evaluate"}
    return read(repo / "reports/metrics.json")


def test_dvc_repro_runs_the_multilabel_pipeline_end_to_end(tmp_path, tiny_model):
    m = repro_on_fixture(tmp_path, tiny_model, FIXTURES / "multilabel_topics.csv", {"task.name": "multilabel"})
    assert 0 <= m["f1_micro"] <= 1 and 0 <= m["hamming_loss"] <= 1 and m["test_examples"] == 10


@pytest.mark.slow
def test_packaged_checkpoint_learns_the_multilabel_topics(tmp_path):
    """240 generated topic texts (36 in the test split), 10 epochs. Measured on a 2-core CPU (bf16, about 20 s of
    pipeline): f1_micro 0.980, f1_macro 0.981, subset accuracy 0.917."""
    params = write_params(tmp_path / "params.yaml", {"task.name": "multilabel", "fine_tune.epochs": 10,
                                                     "tracking.log_model": False})
    run_all(tmp_path, params, data=FIXTURES / "multilabel_topics_large.csv")
    m = read(tmp_path / "reports/metrics.json")
    assert m["f1_micro"] >= 0.93 and m["f1_macro"] >= 0.93 and m["subset_accuracy"] >= 0.8, m
