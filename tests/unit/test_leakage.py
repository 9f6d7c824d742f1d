"""The evaluate stage's leakage check: test texts also in train or validation, each counted once."""
import pytest
from datasets import Dataset, DatasetDict

from lmtune.config import load_params
from lmtune.errors import DataError
from stages import evaluate
from tests.conftest import write_params


def splits(train: list[str], validation: list[str], test: list[str], test_ids: list[int] | None = None) -> DatasetDict:
    def part(texts: list[str], ids: list[int] | None = None) -> Dataset:
        return Dataset.from_dict({"text": texts, "example_id": ids or list(range(len(texts)))})

    return DatasetDict({"train": part(train), "validation": part(validation), "test": part(test, test_ids)})


def test_test_texts_found_in_validation_are_reported_apart_from_train():
    data = splits(train=["Great phone", "meh"], validation=["Broke in a week"],
                  test=["great  phone", "broke in a week", "new text"])
    assert evaluate.leakage(data) == {"train": ["great  phone"], "validation": ["broke in a week"]}


def test_qa_windows_of_one_question_count_once():
    question = "who wrote it? Alice wrote the book in 1990 ..."  # question and context: the text of every window
    data = splits(train=[question, "another question? its context"], validation=[],
                  test=[question] * 3 + ["another question? its context"] * 2, test_ids=[7, 7, 7, 7, 7])
    assert evaluate.leakage(data)["train"] == [question, "another question? its context"], "2 questions, 5 windows"


def test_fail_on_leakage_refuses_a_test_text_that_is_only_in_validation(tmp_path):
    params = load_params(write_params(tmp_path / "params.yaml", {"evaluate.fail_on_leakage": True}))
    splits(train=["a", "b"], validation=["seen at validation"], test=["Seen at validation", "c", "a"]).save_to_disk(
        str(tmp_path / "splits"))
    with pytest.raises(DataError, match=r"2 test text\(s\) also appear in train or validation \(1 in train, 1 in "
                                        r"validation\)"):
        evaluate.run(params, tmp_path / "splits", tmp_path / "no-model", tmp_path / "reports")
    assert not (tmp_path / "reports").exists()
