"""Cleaning rules on strings and frames."""
import pandas as pd

from lmtune.text import clean_labelled_texts, normalize_text, sorted_labels


def test_normalize_text_maps_full_width_to_half_width_for_cjk_and_latin():
    assert normalize_text("ＡＢＣ１２３") == "ABC123"
    assert normalize_text("很好，非常满意！") == "很好,非常满意!"


def test_normalize_text_strips_control_characters_and_collapses_whitespace():
    assert normalize_text("  good\x00\x07 value\u200b\t\n for   money \r\n") == "good value for money"


def test_normalize_text_lowercases_only_when_asked():
    assert normalize_text("Great App") == "Great App"
    assert normalize_text("Great App", lowercase=True) == "great app"


def test_sorted_labels_orders_numbers_numerically_and_names_lexically():
    assert sorted_labels(pd.Series(["10", "2", "1"])) == ["1", "2", "10"]
    assert sorted_labels(pd.Series(["pos", "neg", "neutral"])) == ["neg", "neutral", "pos"]


def test_clean_drops_each_bad_row_with_its_reason_and_keeps_the_rest():
    df = pd.DataFrame({
        "text": ["good", "  ", "good", "bad one", "bad one", "fine", "x", "ok"],
        "label": ["pos", "pos", "pos", "neg", "pos", "pos", "neg", ""],
        "row": range(2, 10),
    })
    kept, rejected = clean_labelled_texts(df, lowercase=False, min_chars=2)
    assert kept["text"].tolist() == ["good", "fine"]
    reasons = dict(zip(rejected["row"], rejected["reason"]))
    assert reasons == {3: "empty_text", 4: "duplicate", 5: "conflicting_labels", 6: "conflicting_labels",
                       8: "too_short", 9: "missing_label"}
    assert rejected.set_index("row").loc[3, "text"] == "  "  # original text is kept for inspection


def test_clean_treats_texts_equal_after_normalisation_as_duplicates():
    df = pd.DataFrame({"text": ["Ｇreat  phone", "Great phone"], "label": ["pos", "pos"], "row": [2, 3]})
    kept, rejected = clean_labelled_texts(df, lowercase=False, min_chars=1)
    assert len(kept) == 1 and rejected["reason"].tolist() == ["duplicate"]
