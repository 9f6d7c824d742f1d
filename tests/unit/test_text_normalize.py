"""normalize_text keeps the invisible characters that carry meaning and strips only true control characters
(issue #16 item 8)."""
import pytest

from lmtune.text import normalize_lines, normalize_text

ZWJ, ZWNJ, LRM, RLM = "\u200d", "\u200c", "\u200e", "\u200f"

KEPT = {
    "emoji_family_zwj_sequence": "family 👨\u200d👩\u200d👧 ok",
    "emoji_with_variation_selector": "love ❤\ufe0f it",
    "emoji_subdivision_flag_tags": "go 🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f team",
    "persian_zwnj": f"می{ZWNJ}خواهم کتاب{ZWNJ}ها را بخوانم",
    "sinhala_zwj_conjunct": f"ශ්{ZWJ}රී ලංකාව",
    "devanagari_zwj_half_form": f"क्{ZWJ}ष अच्छा है",
    "malayalam_zwnj": f"കാര്{ZWNJ}ത്തിക",
    "hebrew_direction_marks": f"{RLM}שלום{LRM} world",
    "bidi_isolates_and_arabic_letter_mark": "a \u2067عربي\u2069 b \u061c",
    "soft_hyphen": "hyphen\u00adation",
}


@pytest.mark.parametrize("name", sorted(KEPT))
def test_normalize_text_keeps_meaningful_format_characters(name):
    text = KEPT[name]
    assert normalize_text(text) == text, f"{name}: a joiner, mark or selector was changed"
    assert normalize_lines(text) == text


def test_zwj_emoji_sequence_stays_one_sequence_not_three_emoji():
    out = normalize_text("👨\u200d👩\u200d👧")
    assert " " not in out and out.count(ZWJ) == 2


def test_persian_word_with_zwnj_is_not_split_into_two_words():
    assert normalize_text(f"می{ZWNJ}خواهم").split() == [f"می{ZWNJ}خواهم"]


def test_true_control_characters_become_spaces_and_collapse():
    assert normalize_text("a\x00b\x07c\x1bd\x7fe\x85f\x9fg") == "a b c d e f g"
    assert normalize_text(" tab\there\nline\r\nend ") == "tab here line end"


def test_zero_width_space_is_a_word_break_and_bom_inside_text_is_removed():
    assert normalize_text("word\u200bbreak") == "word break"
    assert normalize_text("\ufeffhello wo\ufeffrld") == "hello world"


def test_lone_surrogate_from_json_becomes_replacement_character():
    assert normalize_text("bad \ud800 escape") == "bad \ufffd escape"
    assert normalize_text("bad \ud800 escape").encode("utf-8"), "must be writable as UTF-8"


def test_normalize_lines_keeps_line_breaks_and_turns_unicode_separators_into_them():
    assert normalize_lines("one\r\n  two\u2028three\u2029four\x00") == "one\n  two\nthree\nfour"


def test_nfkc_still_applies_around_kept_characters():
    assert normalize_text(f"ＡＢＣ{ZWJ}１２３") == f"ABC{ZWJ}123"
