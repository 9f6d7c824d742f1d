"""task.label_names: numeric class labels get names in reports, plots, predictions and the model (id2label), while
the data keeps the numbers; a count that does not match the labels found stops clean with exit code 2."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from lmtune import cli
from lmtune.config import params_from_dict
from lmtune.errors import ParamsError
from tests.conftest import FIXTURES, ROOT, run_module, tiny_overrides, write_params
from tests.stages.test_pipeline_stages import run_all

# Numeric labels whose numeric order (2, 3, 10) differs from their text order ("10", "2", "3"): names follow the
# numeric order, as the labels themselves do.
SENTIMENT_CODES = {"neutral": "2", "positive": "3", "negative": "10"}
SENTIMENT_NAMES = ["Neutral", "Positive", "Negative"]
TOPIC_CODES = {"food": "1", "politics": "2", "sports": "3", "technology": "4"}
TOPIC_NAMES = ["Food", "Politics", "Sports", "Tech"]


def read(path: Path):
    return json.loads(path.read_text())


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def classified(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("label-names")
    frame = pd.read_csv(FIXTURES / "sentiment.csv")
    frame.assign(label=frame["label"].map(SENTIMENT_CODES)).to_csv(root / "coded.csv", index=False)
    params = write_params(root / "params.yaml", {**tiny_overrides(tiny_model), "task.label_names": SENTIMENT_NAMES})
    return run_all(root, params, data=root / "coded.csv")


@pytest.fixture(scope="module")
def multilabelled(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("label-names-multi")
    frame = pd.read_csv(FIXTURES / "multilabel_topics.csv")
    coded = frame["label"].map(lambda cell: "|".join(TOPIC_CODES[t] for t in cell.split("|")))
    frame.assign(label=coded).to_csv(root / "coded.csv", index=False)
    params = write_params(root / "params.yaml", {**tiny_overrides(tiny_model), "task.name": "multilabel",
                                                 "task.label_names": TOPIC_NAMES, "fine_tune.epochs": 1})
    return run_all(root, params, data=root / "coded.csv")


def test_the_data_keeps_the_numbers_and_meta_carries_the_names(classified):
    data = pd.read_parquet(classified / "interim/data.parquet")
    assert set(data["label"]) == {"2", "3", "10"}, "the numbers stay in the data"
    assert (data["label_id"] == data["label"].map({"2": 0, "3": 1, "10": 2})).all(), "ids in numeric label order"
    assert read(classified / "interim/meta.json")["labels"] == SENTIMENT_NAMES
    summary = read(classified / "reports/clean.json")
    assert summary["label_names"] == {"2": "Neutral", "3": "Positive", "10": "Negative"}
    assert summary["label_counts"] == {"Neutral": 15, "Positive": 15, "Negative": 15}


def test_the_model_config_names_its_classes(classified):
    config = read(classified / "model/config.json")
    assert config["id2label"] == {"0": "Neutral", "1": "Positive", "2": "Negative"}
    assert config["label2id"] == {"Neutral": 0, "Positive": 1, "Negative": 2}


def test_reports_plots_and_predictions_use_the_names_for_the_right_rows(classified):
    truth = pd.read_csv(FIXTURES / "sentiment.csv").set_index("text")["label"].str.capitalize().to_dict()
    rows = jsonl(classified / "reports/eval/predictions.jsonl")
    assert rows and all(r["label"] == truth[r["text"]] for r in rows), "label 10 is Negative, 2 Neutral, 3 Positive"
    assert {r["predicted"] for r in rows} <= set(SENTIMENT_NAMES)
    per_class = read(classified / "reports/eval/per_class.json")
    assert set(SENTIMENT_NAMES) <= set(per_class)
    confusion = read(classified / "reports/plots/confusion/test.json")
    assert {c["actual"] for c in confusion} <= set(SENTIMENT_NAMES)
    assert {p["label"] for p in read(classified / "reports/plots/f1_by_label/test.json")} <= set(SENTIMENT_NAMES)


def test_lmtune_predict_and_the_mlflow_model_answer_with_names(classified, tmp_path, capsys):
    from lmtune.serving import LmtuneModel

    (tmp_path / "in.txt").write_text("Great little speaker with surprisingly deep bass\n")
    cli.main(["predict", "--model", str(classified / "model"), "--input", str(tmp_path / "in.txt")])
    row = json.loads(capsys.readouterr().out)
    assert row["label"] in SENTIMENT_NAMES and set(row["scores"]) == set(SENTIMENT_NAMES)
    served = LmtuneModel()
    served.load_context(SimpleNamespace(artifacts={"model_dir": str(classified / "model")}))
    assert served.predict(None, pd.DataFrame({"text": ["Great little speaker"]}))["label"][0] in SENTIMENT_NAMES


def test_multilabel_names_reach_reports_predictions_and_the_model(multilabelled):
    data = pd.read_parquet(multilabelled / "interim/data.parquet")
    assert set("|".join(data["label"]).split("|")) == {"1", "2", "3", "4"}
    assert read(multilabelled / "interim/meta.json")["labels"] == TOPIC_NAMES
    assert list(read(multilabelled / "model/config.json")["id2label"].values()) == TOPIC_NAMES
    truth = pd.read_csv(FIXTURES / "multilabel_topics.csv").set_index("text")["label"].to_dict()
    names = dict(zip(TOPIC_CODES, TOPIC_NAMES))
    rows = jsonl(multilabelled / "reports/eval/predictions.jsonl")
    assert rows and all(sorted(r["labels"]) == sorted(names[t] for t in truth[r["text"]].split("|")) for r in rows)
    assert set(TOPIC_NAMES) <= set(read(multilabelled / "reports/eval/per_label.json"))


def test_a_name_count_unlike_the_labels_found_stops_clean_naming_them(tmp_path, tiny_model):
    frame = pd.read_csv(FIXTURES / "sentiment.csv")
    frame.assign(label=frame["label"].map(SENTIMENT_CODES)).to_csv(tmp_path / "coded.csv", index=False)
    params = write_params(tmp_path / "p.yaml", {**tiny_overrides(tiny_model), "task.label_names": ["Bad", "Good"]})
    result = run_module("stages.clean", str(tmp_path / "coded.csv"), str(tmp_path / "out"), str(tmp_path / "c.json"),
                        "--params", str(params))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "task.label_names has 2 name(s) but column 'label' holds 3 label(s) after cleaning: '2', '3', '10'" \
        in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def params_with(**task):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["task"].update(task)
    return params_from_dict(raw, source="params.yaml")


def test_label_names_are_checked_at_params_load():
    assert params_with(label_names=["World", "Sports"]).task.label_names == ["World", "Sports"]
    assert params_with(label_names=[]).task.label_names == []
    with pytest.raises(ParamsError, match="task.label_names: regression has no class labels to name"):
        params_with(name="regression", label_names=["a", "b"])
    with pytest.raises(ParamsError, match="label_names must not repeat a name"):
        params_with(label_names=["a", "a"])
    with pytest.raises(ParamsError, match="label_names must be non-empty strings"):
        params_with(label_names=["a", " "])
    with pytest.raises(ParamsError, match=r"task.label_names: must be a list of str, got \[True, False\]"):
        params_with(label_names=[True, False])  # YAML's `[yes, no]`
    with pytest.raises(ParamsError, match="task.label_names: must be a list of str"):
        params_with(label_names="World,Sports")
