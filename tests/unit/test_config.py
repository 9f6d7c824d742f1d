"""params.yaml is typed and validated once: every problem reported together, before any work."""
import re

import pytest
import yaml

from lmtune.config import load_params, params_from_dict
from lmtune.errors import ParamsError
from tests.conftest import ROOT


def repo_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_repo_params_yaml_loads_and_validates():
    params = load_params(ROOT / "params.yaml")
    assert params.task.name == "classification"
    assert isinstance(params.fine_tune.learning_rate, float)


def test_int_given_for_float_param_is_accepted_as_float():
    raw = repo_params()
    raw["fine_tune"]["epochs"] = 3
    assert params_from_dict(raw).fine_tune.epochs == 3.0


def test_typo_wrong_type_and_out_of_range_are_all_reported_at_once():
    raw = repo_params()
    raw["fine_tune"]["learning_rat"] = raw["fine_tune"].pop("learning_rate")
    raw["fine_tune"]["batch_size"] = "32"
    raw["split"]["test_fraction"] = 1.5
    with pytest.raises(ParamsError) as err:
        params_from_dict(raw, source="my-params.yaml")
    message = str(err.value)
    assert "my-params.yaml" in message
    assert "fine_tune.learning_rat: unknown key (did you mean 'learning_rate'?)" in message
    assert "fine_tune.learning_rate: missing key" in message
    assert "fine_tune.batch_size: must be int, got str '32'" in message
    assert "split: fractions must lie in [0, 1)" in message


def test_bool_is_not_accepted_for_int_and_choice_lists_options():
    raw = repo_params()
    raw["fine_tune"]["freeze_layers"] = True
    raw["fine_tune"]["optimizer"] = "adam"
    with pytest.raises(ParamsError) as err:
        params_from_dict(raw)
    assert "fine_tune.freeze_layers: must be int, got bool" in str(err.value)
    assert "fine_tune.optimizer: must be one of 'adamw', 'adagrad', 'adadelta', 'sgd', 'adafactor'" in str(err.value)


def test_unknown_task_and_unknown_section_are_rejected():
    raw = repo_params()
    raw["task"]["name"] = "clasification"
    raw["fine_tuning"] = {}
    with pytest.raises(ParamsError) as err:
        params_from_dict(raw)
    assert "unknown task 'clasification'" in str(err.value)
    assert "fine_tuning: unknown section (did you mean 'fine_tune'?)" in str(err.value)


def test_missing_params_file_names_the_path(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")


def test_every_params_group_in_dvc_yaml_exists_and_every_stage_module_is_a_dep():
    """cli (logging, argument parsing) and errors (exception types) cannot change outputs, so they are not deps."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = repo_params()
    for name, stage in dvc["stages"].items():
        for dotted in stage["params"]:  # a section, or section.key
            section, _, key = dotted.partition(".")
            assert section in params and (not key or key in params[section]), f"stage {name}: {dotted}"
        module = stage["cmd"].split()[2]  # python -m stages.<name>
        assert module.replace(".", "/") + ".py" in stage["deps"], name
        source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
        for imported in set(re.findall(r"from lmtune(?:\.(\w+))? import ([\w, ]+)", source)):
            modules = [imported[0]] if imported[0] else [m.strip() for m in imported[1].split(",")]
            for mod in modules:
                path = f"src/lmtune/{mod}.py"
                if (ROOT / path).exists() and mod not in ("cli", "errors"):
                    assert path in stage["deps"], f"stage {name} imports lmtune.{mod} but does not list {path}"


@pytest.mark.parametrize("preset", sorted((ROOT / "presets").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_preset_applies_to_params_yaml(preset):
    from lmtune.config import apply_preset, read_preset

    overrides = read_preset(preset)
    params = apply_preset(load_params(ROOT / "params.yaml"), overrides, source=preset.name)
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        assert getattr(getattr(params, section), key) == value, dotted


def test_lmtune_preset_prints_dvc_set_arguments_and_rejects_unknown_keys(tmp_path, capsys, caplog):
    from lmtune import cli

    good = tmp_path / "good.yaml"
    good.write_text("fine_tune.epochs: 3\nfine_tune.learning_rate: 1.0e-4\n")
    cli.main(["preset", str(good), "--params", str(ROOT / "params.yaml")])
    assert capsys.readouterr().out.split() == ["-S", "fine_tune.epochs=3", "-S", "fine_tune.learning_rate=0.0001"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("fine_tune.epoch: 3\nfine_tune.batch_size: zero\n")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["preset", str(bad), "--params", str(ROOT / "params.yaml")])
    assert exit_.value.code == 2
    assert "fine_tune.epoch: not a params key" in caplog.text


def test_a_target_language_that_is_no_language_code_is_refused_with_the_params():
    import dataclasses

    from lmtune.config import params_from_dict

    raw = dataclasses.asdict(load_params(ROOT / "params.yaml"))
    raw["seq2seq"]["target_language"] = "Chinese"
    with pytest.raises(ParamsError, match="seq2seq: target_language must be auto or a language code"):
        params_from_dict(raw)
    raw["seq2seq"]["target_language"] = "zh-Hant"
    assert params_from_dict(raw).seq2seq.target_language == "zh-Hant"
