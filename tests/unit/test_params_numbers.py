"""Float params accept every spelling `dvc exp run -S` writes (issue #16 item 3), and refuse real junk clearly."""
from __future__ import annotations

import pytest
import yaml

from lmtune.config import load_params
from lmtune.errors import ParamsError
from tests.conftest import ROOT


def params_with(tmp_path, line: str):
    """params.yaml with fine_tune.learning_rate's line replaced by `line`, read back as DVC's YAML 1.1 loader does."""
    text = (ROOT / "params.yaml").read_text()
    old = next(x for x in text.splitlines() if x.strip().startswith("learning_rate:"))
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, f"  learning_rate: {line}"))
    return path


# What DVC writes for -S fine_tune.learning_rate=3e-5 is 3e-05; PyYAML reads exponents without a dot as text.
SPELLINGS = {"1e-5": 1e-5, "3e-05": 3e-5, "5.0e-5": 5e-5, "1E-4": 1e-4, "2e-3": 2e-3, "0.0001": 1e-4,
             "'3e-05'": 3e-5, "1.5E-1": 0.15, ".5e-3": 5e-4}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_learning_rate_accepts_what_dvc_writes(tmp_path, spelling):
    value = load_params(params_with(tmp_path, spelling)).fine_tune.learning_rate
    assert isinstance(value, float) and value == pytest.approx(SPELLINGS[spelling])


def test_pyyaml_really_reads_dvcs_spelling_as_text():
    """The reason for the fix: if this ever changes, the parsing of text numbers is no longer needed."""
    assert yaml.safe_load("x: 3e-05")["x"] == "3e-05"


@pytest.mark.parametrize("junk", ["fast", "3e-5x", "1e", "nan", "inf", "'0x10'", "'1_000.0'", "''", "[0.1]", "true"])
def test_junk_in_a_float_field_is_one_clear_error(tmp_path, junk):
    with pytest.raises(ParamsError) as err:
        load_params(params_with(tmp_path, junk))
    assert "fine_tune.learning_rate: must be" in str(err.value)


def test_text_numbers_still_meet_the_range_rules(tmp_path):
    with pytest.raises(ParamsError, match="learning_rate must lie in"):
        load_params(params_with(tmp_path, "3e+05"))


def test_int_fields_stay_strict(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("  batch_size: 16 ", "  batch_size: '16' ", 1)
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match="fine_tune.batch_size: must be int"):
        load_params(tmp_path / "params.yaml")
