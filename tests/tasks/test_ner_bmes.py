"""NER tag schemes: BMES files (M- for the middle of an entity, as many Chinese corpora are distributed) read as
IOBES, the scheme found reported in reports/clean.json, and IOBES/BMES entities scored in seqeval's strict mode."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmtune import cli
from lmtune.config import load_params
from lmtune.errors import DataError
from lmtune.tasks import ner
from tests.conftest import FIXTURES
from tests.stages.test_pipeline_stages import run_all
from tests.tasks.test_ner import EN_CONLL, EN_JSONL, JSONL_COLUMNS, ZH_CONLL, ner_params

BMES = FIXTURES / "ner_zh_bmes.conll"  # 36 character-tagged Chinese sentences: S-, B- E- and B- M-.. E- entities


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def bmes(tmp_path_factory, tiny_model) -> Path:
    root = tmp_path_factory.mktemp("ner-bmes")
    return run_all(root, ner_params(root / "params.yaml", tiny_model), BMES)


def file_entities(path: Path) -> dict[str, int]:
    """Entities per type counted from the file's own B-/S- tags."""
    counts: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.split() and line.split()[1][0] in "BS":
            kind = line.split()[1][2:]
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def test_bmes_is_read_as_iobes_and_the_scheme_is_reported(bmes):
    summary = read(bmes / "reports/clean.json")
    assert summary["tag_scheme"] == "BMES" and summary["scored_as"] == "strict IOBES"
    assert summary["entity_counts"] == file_entities(BMES), "M- middles join their B- .. E- entity"
    labels = read(bmes / "interim/meta.json")["labels"]
    assert "I-ORG" in labels and not any(tag.startswith("M-") for tag in labels)
    assert summary["tag_counts"]["I-ORG"] == sum(line.endswith("M-ORG") for line in
                                                 BMES.read_text(encoding="utf-8").splitlines())


def test_bmes_runs_every_stage_and_lmtune_predict_tags_each_character(bmes, tmp_path, capsys):
    metrics = read(bmes / "reports/metrics.json")
    assert all(0.0 <= metrics[key] <= 1.0 for key in ("precision", "recall", "f1", "accuracy"))
    assert (bmes / "model/config.json").is_file()
    (tmp_path / "in.txt").write_text("张伟在杭州工作。\n", encoding="utf-8")
    capsys.readouterr()
    cli.main(["predict", "--model", str(bmes / "model"), "--input", str(tmp_path / "in.txt")])
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    labels = set(read(bmes / "interim/meta.json")["labels"])
    assert row["tokens"] == list("张伟在杭州工作。") and len(row["tags"]) == 8 and set(row["tags"]) <= labels


def test_the_scheme_found_is_reported_for_iob1_and_iob2_files_too(tmp_path, tiny_model):
    params = load_params(ner_params(tmp_path / "p.yaml", tiny_model))
    assert ner.clean(EN_CONLL, params).summary["tag_scheme"] == "IOB2"
    assert ner.clean(ZH_CONLL, params).summary["scored_as"] == "seqeval default (IOB1/IOB2)"
    jsonl = load_params(ner_params(tmp_path / "j.yaml", tiny_model, **JSONL_COLUMNS))
    assert ner.clean(EN_JSONL, jsonl).summary["tag_scheme"] == "IOB1"
    assert ner.tag_scheme([["B-A", "E-A", "S-B", "O"]]) == "IOBES"


def test_a_file_mixing_m_and_i_middles_is_refused_naming_both_lines(tmp_path, tiny_model):
    data = tmp_path / "mixed.conll"
    data.write_text("张 B-PER\n小 M-PER\n明 E-PER\n\n李 B-PER\n小 I-PER\n华 E-PER\n", encoding="utf-8")
    params = load_params(ner_params(tmp_path / "p.yaml", tiny_model))
    with pytest.raises(DataError, match=r"both I- tags \(line 6\) and M- tags \(line 2\)"):
        ner.clean(data, params)


def test_iobes_entities_are_scored_strictly():
    gold = [["B-PER", "I-PER", "E-PER", "O", "S-LOC"]]
    predicted = [["B-PER", "I-PER", "O", "O", "S-LOC"]]  # the PER span has no end tag: no entity in strict IOBES
    strict, _ = ner.seqeval_scores(gold, predicted, strict=True)
    assert strict == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "accuracy": 0.8})
    assert ner.seqeval_scores(gold, predicted)[0]["precision"] == 0.5, "default mode takes B- I- as a wrong PER"
    assert ner.strict_scheme(["O", "B-PER", "E-PER"]) and not ner.strict_scheme(["O", "B-PER", "I-PER"])
