"""Seq2seq generation metrics (issue #19, items 3 and 4): every reference of a source counts, and the tokenizers
follow the target language, so Chinese, Japanese, Thai or Russian texts get ROUGE and BLEU that mean something."""
from __future__ import annotations

import pytest
from rouge_score import tokenizers

from lmtune.errors import ParamsError
from lmtune.tasks import seq2seq

SCORES = ("rouge1", "rouge2", "rougeL", "bleu", "chrf")


def score(generated: list[str], references: list[list[str]], language: str = "auto") -> dict[str, float]:
    scoring = seq2seq.scoring_for(language, [r for refs in references for r in refs])
    return seq2seq.generation_metrics(generated, references, scoring)


def test_a_hypothesis_equal_to_one_of_two_references_scores_100():
    refs = ["a man is riding a red bicycle down the street", "a person rides a bike along the road"]
    hyp = refs[1]
    multi = score([hyp], [refs])
    assert all(multi[k] == pytest.approx(100) for k in SCORES), multi
    # the old layout, one test row per reference each scored against one reference, gave far less
    one_at_a_time = score([hyp, hyp], [[refs[0]], [refs[1]]])
    assert one_at_a_time["bleu"] < 70 and one_at_a_time["rougeL"] < 80, one_at_a_time


def test_sources_with_different_numbers_of_references_pad_with_none_not_empty_references():
    references = [["the cat sat on the mat"], ["a dog runs in the park", "a dog is running through a park"]]
    assert seq2seq.reference_streams(references) == [
        ["the cat sat on the mat", "a dog runs in the park"], [None, "a dog is running through a park"]]
    m = score(["the cat sat on the mat", "a dog is running through a park"], references)
    assert all(m[k] == pytest.approx(100) for k in SCORES), m


def test_rouge_takes_the_best_reference_per_type():
    # rouge1 of "the cats" against ref 2 "the cat" is 1.0 (stemming), against ref 1 0.5: the max counts
    m = score(["the cats"], [["the cat sat on the mat", "the cat"]])
    assert m["rouge1"] == pytest.approx(100) and m["rougeL"] == pytest.approx(100)


@pytest.mark.parametrize("text, script, tokenize", [
    ("猫坐在垫子上，看着窗外的鸟。", "han", "zh"),
    ("Кошка сидит на коврике и смотрит в окно.", "other", "intl")])
def test_identical_chinese_or_russian_texts_score_100(text, script, tokenize):
    scoring = seq2seq.scoring_for("auto", [text])
    assert (scoring.script, scoring.bleu_tokenize, scoring.rouge_stemming) == (script, tokenize, False)
    m = score([text], [[text]])
    assert all(m[k] == pytest.approx(100) for k in SCORES), m
    default = tokenizers.DefaultTokenizer(use_stemmer=True)
    assert default.tokenize(text) == [], "rouge-score's default tokenizer sees nothing, so ROUGE was 0"


def test_a_near_match_in_chinese_scores_above_0_where_13a_gave_bleu_0():
    hyp, ref = "猫坐在垫子上", "猫坐在垫子上了"
    m = score([hyp], [[ref]])
    assert m["bleu"] > 40 and m["rouge1"] > 80 and m["rougeL"] > 80, m
    latin = seq2seq.Scoring(target_language="en", script="latin", bleu_tokenize="13a", rouge_stemming=True)
    assert seq2seq.generation_metrics([hyp], [[ref]], latin)["bleu"] == pytest.approx(0), "13a: one word, no match"


def test_a_near_match_in_russian_scores_words_not_characters():
    m = score(["кошка сидит на коврике"], [["кошка сидит на ковре"]])
    assert m["rouge1"] == pytest.approx(75) and 0 < m["bleu"] < 100, m


@pytest.mark.parametrize("texts, script", [
    (["これは日本語の文です。"], "kana"), (["漢字だけの文もある", "東京都"], "kana"), (["한국어 문장입니다"], "hangul"),
    (["สวัสดีครับ"], "unspaced"), (["नमस्ते दुनिया"], "other"), (["Straße und Häuser"], "latin"), ([""], "latin"),
    (["中文句子里有一个 English word"], "han")])
def test_auto_detects_the_script_of_most_letters(texts, script):
    assert seq2seq.detect_script(texts) == script


def test_explicit_codes_pick_the_tokenizer_and_mecab_falls_back_to_characters():
    ja = "ja-mecab" if seq2seq.bleu_tokenizer_installed("ja-mecab") else "char"
    ko = "ko-mecab" if seq2seq.bleu_tokenizer_installed("ko-mecab") else "char"
    chosen = {code: seq2seq.scoring_for(code, ["some latin text"]).bleu_tokenize
              for code in ("zh", "zh-Hant", "ja", "ko", "th", "ru", "en")}
    assert chosen == {"zh": "zh", "zh-Hant": "zh", "ja": ja, "ko": ko, "th": "char", "ru": "intl", "en": "13a"}
    assert seq2seq.scoring_for("en", []).rouge_stemming, "Porter is an English stemmer"
    german = seq2seq.scoring_for("de", ["Der Hund läuft."])
    assert (german.script, german.bleu_tokenize, german.rouge_stemming) == ("latin", "13a", False)
    assert seq2seq.scoring_for("sr", ["Пас трчи."]).bleu_tokenize == "intl", "unlisted code: the detected script"


@pytest.mark.parametrize("value", ["Chinese", "", "zh CN"])
def test_a_target_language_that_is_not_a_code_is_refused(value):
    with pytest.raises(ParamsError, match="seq2seq.target_language: .* set it to auto"):
        seq2seq.scoring_for(value, ["text"])


def test_rouge_tokenizer_matches_rouge_scores_default_on_ascii_and_keeps_other_words_whole():
    text = "The cats' owners were running; they'd 2 dogs_and 3 birds, e.g. in 2024!"
    assert seq2seq.UnicodeTokenizer(stem=True).tokenize(text) == \
        tokenizers.DefaultTokenizer(use_stemmer=True).tokenize(text), "English figures stay as they were"
    words = seq2seq.UnicodeTokenizer(stem=False).tokenize("हिन्दी भाषा, Straße 猫坐")
    assert words == ["हिन्दी", "भाषा", "straße", "猫", "坐"], "vowel signs stay in their word; one token per Han"


def test_no_generated_texts_score_0():
    assert seq2seq.generation_metrics([], [], seq2seq.scoring_for("auto", [])) == {k: 0.0 for k in SCORES}


def test_group_references_keeps_the_first_row_of_each_example_in_order():
    rows, refs = seq2seq.group_references([5, 2, 5, 7], ["a", "b", "c", "d"])
    assert rows == [0, 1, 3] and refs == [["a", "c"], ["b"], ["d"]]
