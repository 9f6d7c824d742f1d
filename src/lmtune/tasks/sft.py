"""Supervised fine-tuning of a decoder-only LLM on instructions and chats (task.name: sft).

Input (clean): Alpaca JSON/JSONL (instruction, input, output, optional system and history), chat JSONL with
`messages` ([{role: system|user|assistant, content}], the OpenAI form) or ShareGPT (`conversations` with from/value);
field names in the `sft` params. Every record becomes one conversation, a list of {role, content}, stored as JSON.

Prompt format (tokenize): the tokenizer's own chat template, or for a base model without one the fallback template
`sft.fallback_template` names. The template used is saved with the tokenizer, so evaluate, `lmtune predict` and MLflow
serving format prompts byte for byte the same way.

Loss on the answers only: a conversation is rendered turn by turn, and the tokens each assistant turn adds (its
content and its end-of-turn marker) are the only labels; system and user tokens and the template's headers are -100,
unless sft.train_on_prompt. A conversation longer than tokenize.max_length keeps its first max_length tokens; one
whose answers are all cut away is dropped (counted), never trained on.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lmtune import io
from lmtune.errors import DataError, LmtuneError
from lmtune.tasks.base import EvalResult
from lmtune.text import CleanResult, normalize_lines

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from lmtune.config import Params

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
# Templates for base models that ship none (GPT-2 and most pretrained-only checkpoints). Each ends an assistant turn
# with the eos token, so the model learns to stop there; the separator before the next turn belongs to that turn
# (masked), and `add_generation_prompt` opens the assistant turn.
FALLBACK_TEMPLATES = {
    "alpaca": (
        "{% for m in messages %}{% if not loop.first %}\n\n{% endif %}"
        "{% if m['role'] == 'system' %}{{ m['content'] }}"
        "{% elif m['role'] == 'user' %}### Instruction:\n{{ m['content'] }}"
        "{% else %}### Response:\n{{ m['content'] }}{{ eos_token }}{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}\n\n### Response:\n{% endif %}"),
    "chatml": (
        "{% for m in messages %}{% if not loop.first %}\n{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
        "{% if m['role'] == 'assistant' %}{{ eos_token }}{% else %}<|im_end|>{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}\n<|im_start|>assistant\n{% endif %}"),
}
CLOSED_SET_MAX = 20  # reference answers drawn from at most this many distinct values: also scored as classification


# ---- clean ---------------------------------------------------------------------------------------------------------

def read_records(path: Path, encoding: str) -> list[Any]:
    """A JSON array of records, or JSON lines; errors name the file and line."""
    if not path.is_file():
        io.read_table(path, "jsonl")  # raises the project's "input file not found" message
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid {encoding} ({err.reason}); set clean.encoding to the file's encoding") \
            from None
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {err.lineno}: not valid JSON ({err.msg}); fix the file") from None
        return records
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {number}: not valid JSON ({err.msg}); one JSON object per line") \
                    from None
    return records


def conversation(record: Any, s: Any) -> tuple[list[dict[str, str]], str]:
    """One record as [{role, content}] in any of the three formats, and "" or the reason it is unusable."""
    if not isinstance(record, dict):
        return [], "not_an_object"
    if s.messages_field in record or s.conversations_field in record:
        sharegpt = s.messages_field not in record
        turns = record[s.conversations_field if sharegpt else s.messages_field]
        if not isinstance(turns, list):
            return [], "messages_not_a_list"
        messages = []
        for turn in turns:
            if not isinstance(turn, dict):
                return [], "message_not_an_object"
            role = turn.get("from") if sharegpt else turn.get("role")
            role = SHAREGPT_ROLES.get(role) if sharegpt else role
            if role not in ROLES:
                return [], "unknown_role"
            content = turn.get("value") if sharegpt else turn.get("content")
            if not isinstance(content, str):
                return [], "content_not_a_string"
            messages.append({"role": role, "content": content})
        return messages, check_order(messages)
    fields = (s.instruction_field, s.input_field, s.output_field)
    if s.instruction_field not in record:
        return [], "no_instruction"
    values = [record.get(name, "") for name in fields] + [record.get(s.system_field) or ""]
    if not all(isinstance(v, str) for v in values):
        return [], "content_not_a_string"
    instruction, extra, output, system = values
    messages = [{"role": "system", "content": system}] if system.strip() else []
    history = record.get(s.history_field) or []
    if not isinstance(history, list) or not all(isinstance(h, list) and len(h) == 2 and
                                                all(isinstance(x, str) for x in h) for h in history):
        return [], "bad_history"
    for question, answer in history:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    return messages, check_order(messages)


def check_order(messages: list[dict[str, str]]) -> str:
    """"" for a usable conversation: an optional system message first, then user and assistant turns alternating,
    ending with a non-empty assistant answer; else the reason."""
    body = messages[1:] if messages[:1] and messages[0]["role"] == "system" else messages
    if not any(m["role"] == "assistant" for m in body):
        return "no_assistant_turn"
    if any(m["role"] != ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(body)) or len(body) % 2:
        return "roles_out_of_order"
    if any(m["role"] == "assistant" and not m["content"].strip() for m in body):
        return "empty_assistant_message"
    if any(m["role"] == "user" and not m["content"].strip() for m in body):
        return "empty_user_message"
    return ""


def as_text(messages: list[dict[str, str]]) -> str:
    """A conversation as one plain text (the leakage check and rejected.csv read it)."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def clean(path: Path, params: Params) -> CleanResult:
    """Read the records, turn each into a conversation, and drop unusable or repeated ones with a reason."""
    rows = []
    for row, record in enumerate(read_records(path, params.clean.encoding), start=1):
        messages, reason = conversation(record, params.sft)
        messages = [{"role": m["role"], "content": normalize_lines(m["content"])} for m in messages]
        split = record.get(params.task.split_column) if params.task.split_column and isinstance(record, dict) \
            else None
        rows.append({"row": row, "messages": json.dumps(messages, ensure_ascii=False), "reason": reason,
                     "text": as_text(messages), "split": split})
    if not rows:
        raise DataError(f"{path}: the file holds no records; it needs Alpaca, chat (messages) or ShareGPT records")
    df = pd.DataFrame(rows)
    df.loc[(df["reason"] == "") & df.duplicated(subset=["messages"], keep="first"), "reason"] = "duplicate"
    last_answer = df["messages"].map(lambda m: json.loads(m)[-1]["content"] if json.loads(m) else "")
    rejected = df[df["reason"] != ""].assign(label=last_answer)[["row", "reason", "label", "text"]]
    kept = df[df["reason"] == ""].drop(columns=["reason"]).reset_index(drop=True)
    if kept.empty:
        first = rejected.iloc[0]
        raise DataError(f"{path}: no usable records left after cleaning ({len(rejected)} rejected, e.g. record "
                        f"{first['row']}: {first['reason']}); see the rejected-rows file and the sft field params")
    if params.task.split_column:
        from lmtune.tasks.classification import split_values

        kept["split"] = split_values(kept["split"], kept["row"], path, params.task.split_column)
    else:
        kept = kept.drop(columns=["split"])
    kept["example_id"] = np.arange(len(kept), dtype=np.int64)
    turns = kept["messages"].map(lambda m: sum(t["role"] == "assistant" for t in json.loads(m)))
    return CleanResult(kept=kept, rejected=rejected.reset_index(drop=True), labels=[], summary={
        "conversations": len(kept), "assistant_turns_mean": round(float(turns.mean()), 3),
        "multi_turn": int((turns > 1).sum())})


# ---- prompt format and the loss mask ------------------------------------------------------------------------------

def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, params: Params) -> None:
    """The tokenize and fine-tune stages load the tokenizer separately; both give it the same template, and the
    fine-tuned model's copy saves it (chat_template.jinja)."""
    use_template(tokenizer, params.sft.fallback_template)


def use_template(tokenizer: PreTrainedTokenizerBase, fallback: str) -> str:
    """Set and return the chat template the model will use: its own, or the fallback for a base model."""
    if not tokenizer.chat_template:
        tokenizer.chat_template = FALLBACK_TEMPLATES[fallback]
    return "own" if tokenizer.chat_template not in FALLBACK_TEMPLATES.values() else fallback


def render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def encode_conversation(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]],
                        train_on_prompt: bool) -> tuple[list[int], list[int]]:
    """input_ids of the rendered conversation and labels: each assistant turn's tokens (what rendering the turn
    adds after the generation prompt that opens it), -100 elsewhere. Needs a template whose rendering of a prefix
    of the conversation is a prefix of the whole (every common chat template is)."""
    from lmtune import causal

    ids: list[int] = []
    labels: list[int] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = encode(tokenizer, render(tokenizer, messages[:i], generation_prompt=True))
        upto = encode(tokenizer, render(tokenizer, messages[:i + 1], generation_prompt=False))
        if prompt[:len(ids)] != ids or upto[:len(prompt)] != prompt:
            raise LmtuneError("the chat template does not render a conversation's beginning as a prefix of the "
                              "whole, so answer tokens cannot be located; use another template "
                              "(sft.fallback_template applies to models without one)")
        labels += (prompt[len(ids):] if train_on_prompt else [causal.IGNORE] * (len(prompt) - len(ids)))
        labels += upto[len(prompt):]
        ids = upto
    return ids, labels


def end_of_turn(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token the template closes an assistant answer with (<|im_end|>, <|eot_id|>, eos, ...): where generation
    stops. Found by rendering a one-word answer and taking the first token after it."""
    from lmtune import causal

    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "answer"}]
    _, labels = encode_conversation(tokenizer, messages, train_on_prompt=False)
    answer = [t for t in labels if t != causal.IGNORE]
    return next((t for t in answer if t in tokenizer.all_special_ids), answer[-1])


def encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    # the template writes the special tokens; whole conversations, cut to max_length by the caller (verbose=False:
    # transformers' "longer than the specified maximum sequence length" advice is about that uncut length)
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


def tokenize(ds: Dataset, tokenizer: PreTrainedTokenizerBase, params: Params,
             labels: list[str]) -> tuple[Dataset, dict[str, int]]:
    """input_ids, labels (answers only) and length per conversation, truncated to tokenize.max_length; a conversation
    with no answer token left after truncation is dropped and counted."""
    from lmtune import causal

    template = use_template(tokenizer, params.sft.fallback_template)
    max_length = params.tokenize.max_length

    def encode_batch(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "truncated": [], "answer_tokens": []}
        for messages in batch["messages"]:
            ids, target = encode_conversation(tokenizer, json.loads(messages), params.sft.train_on_prompt)
            out["truncated"].append(len(ids) > max_length)
            ids, target = ids[:max_length], target[:max_length]
            out["input_ids"].append(ids)
            out["labels"].append(target)
            out["answer_tokens"].append(sum(t != causal.IGNORE for t in target[1:]))  # a label needs a previous token
        out["attention_mask"] = [[1] * len(ids) for ids in out["input_ids"]]
        out["length"] = [len(ids) for ids in out["input_ids"]]
        return out

    out = ds.map(encode_batch, batched=True, batch_size=params.tokenize.batch_size, desc="tokenize")
    answered = np.asarray(out["answer_tokens"]) > 0
    stats = {"truncated_conversations": int(sum(out["truncated"])), "answers_cut_away": int((~answered).sum()),
             "answer_tokens": int(sum(out["answer_tokens"])), "template": template}
    if not answered.any():
        raise DataError(f"every conversation lost its answers to truncation at tokenize.max_length {max_length}; "
                        f"raise it")
    out = out.select(np.flatnonzero(answered)) if not answered.all() else out
    return out.remove_columns(["truncated", "answer_tokens"]), stats


# ---- model, batches, validation ----------------------------------------------------------------------------------

def load_model(name_or_path: str, labels: list[str], revision: str, attn_implementation: str | None = None,
               quantization: str = "none") -> Any:
    """The causal LM with fp32 weights; the KV cache is off for training (it also keeps packed sequences apart:
    transformers builds the per-example attention mask from position_ids only without a cache). Generation turns
    it back on. quantization 4bit (QLoRA, the one deliberate exception to fp32 weights): frozen NF4 base weights
    with bf16 compute, for LoRA adapters on top; CUDA and bitsandbytes only."""
    from transformers import AutoModelForCausalLM

    from lmtune import families, models

    attn = {"attn_implementation": attn_implementation} if attn_implementation else {}
    path = models.resolve(name_or_path)
    if quantization == "4bit":
        return load_4bit(path, revision, attn)
    model = families.load_model(AutoModelForCausalLM, path, revision, **attn)
    model.config.use_cache = False
    return model


def load_4bit(path: str, revision: str, attn: dict[str, str]) -> Any:
    from transformers import AutoModelForCausalLM

    import torch

    if not torch.cuda.is_available():
        raise LmtuneError("fine_tune.quantization: 4bit (QLoRA) needs a CUDA GPU (bitsandbytes' 4-bit kernels); set "
                          "it to none on this machine (LoRA alone: fine_tune.lora_rank > 0)")
    try:
        import bitsandbytes  # noqa: F401 - transformers loads 4-bit weights through it
    except ImportError:
        raise LmtuneError("fine_tune.quantization: 4bit needs the bitsandbytes package; pip install bitsandbytes") \
            from None
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    quantized = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, revision=revision, quantization_config=quantized,
                                                 dtype=torch.bfloat16, **attn)
    model.config.use_cache = False
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def collator(tokenizer: PreTrainedTokenizerBase, model: Any, params: Params, max_length: int) -> Any:
    """sft.packing: the batch's conversations end to end in one row, position ids restarting at each, so neither
    attention nor the loss crosses a boundary and no token is padding. Else padding to the batch's longest row (or
    to max_length without dynamic padding), labels padded with -100."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    from lmtune import causal

    if params.sft.packing:
        return DataCollatorWithFlattening(return_position_ids=True)
    padding: dict[str, Any] = {"padding": "longest"} if params.fine_tune.dynamic_padding else \
        {"padding": "max_length", "max_length": max_length}
    return DataCollatorForSeq2Seq(tokenizer, model=None, label_pad_token_id=causal.IGNORE, **padding)


def compute_metrics(labels: list[str], params: Params, eval_dataset: Dataset, tokenizer: Any) -> None:
    """None: validation uses the loss alone (cheap; no generation), which also picks the kept checkpoint."""
    return None


# ---- evaluate and predict -----------------------------------------------------------------------------------------

def prompt_and_reference(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str]:
    """The conversation up to its last answer (the prompt), and that answer (the reference)."""
    return messages[:-1], messages[-1]["content"]


def generation_settings(s: Any) -> dict[str, Any]:
    return {"num_beams": s["num_beams"], "max_new_tokens": s["max_new_tokens"], "temperature": s["temperature"],
            "top_p": s["top_p"]}


def generate(model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], settings: dict[str, Any],
             batch_size: int, progress: bool = False) -> list[str]:
    from lmtune import causal

    ids = [encode(tokenizer, render(tokenizer, p, generation_prompt=True)) for p in prompts]
    new = causal.generate_all(model, tokenizer, ids, batch_size, settings["num_beams"], settings["max_new_tokens"],
                              progress, sampling={"temperature": settings["temperature"], "top_p": settings["top_p"]},
                              stop=[end_of_turn(tokenizer)])
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]


def answer_loss(model: Any, tokenizer: Any, test: Dataset, batch_size: int) -> float:
    """Mean cross-entropy per answer token of the test conversations (reference answers, teacher-forced)."""
    from transformers import DataCollatorForSeq2Seq

    from lmtune import causal

    import torch

    collate = DataCollatorForSeq2Seq(tokenizer, model=None, label_pad_token_id=causal.IGNORE, padding="longest")
    total, count = 0.0, 0
    rows = [{"input_ids": i, "attention_mask": m, "labels": lab}
            for i, m, lab in zip(test["input_ids"], test["attention_mask"], test["labels"])]
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = {k: v.to(model.device) for k, v in collate(rows[start:start + batch_size]).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           use_cache=False).logits[:, :-1].float()
            target = batch["labels"][:, 1:]
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                             target.reshape(-1), ignore_index=causal.IGNORE,
                                                             reduction="sum"))
            count += int((target != causal.IGNORE).sum())
    return total / max(count, 1)


def evaluate(model: Any, tokenizer: PreTrainedTokenizerBase, test: Dataset, labels: list[str],
             params: Params) -> EvalResult:
    """Generate an answer for every test prompt; ROUGE/BLEU/chrF (seq2seq's scoring, by target language), exact
    match, the answer loss and perplexity; accuracy and F1 macro when the answers come from a small closed set."""
    from lmtune import metrics
    from lmtune.tasks.seq2seq import generation_metrics, scoring_for

    conversations = [json.loads(m) for m in test["messages"]]
    prompts, references = zip(*map(prompt_and_reference, conversations)) if conversations else ((), ())
    generated = generate(model.float(), tokenizer, list(prompts), generation_settings(vars(params.sft)),
                         params.evaluate.batch_size, progress=True)
    scoring = scoring_for(params.seq2seq.target_language, references)
    out = generation_metrics(generated, [[r] for r in references], scoring)
    out["exact_match"] = 100 * float(np.mean([g == r for g, r in zip(generated, references)])) if generated else 0.0
    loss = answer_loss(model, tokenizer, test, params.evaluate.batch_size)
    out |= {"loss": loss, "perplexity": float(np.exp(min(loss, 50.0)))}
    closed = sorted(set(references))
    if 1 < len(closed) <= CLOSED_SET_MAX and len(references) >= 2 * len(closed):  # classification as generation
        index = {name: i for i, name in enumerate(closed)}
        y_true = np.array([index[r] for r in references])
        y_pred = np.array([index.get(g, len(closed)) for g in generated])  # an answer outside the set is wrong
        scores = metrics.classification_metrics(y_true, y_pred, len(closed))
        out |= {"accuracy": scores["accuracy"], "f1_macro": scores["f1_macro"]}
    predictions = [{"prompt": render(tokenizer, p, generation_prompt=True), "reference": r, "generated": g}
                   for p, r, g in zip(prompts, references, generated)]
    return EvalResult(metrics=out, predictions=predictions, reports={"generation": scoring.report()})


def request_messages(record: dict[str, Any], number: int) -> list[dict[str, str]]:
    """A prediction request as a conversation: {"messages": [...]}, {"instruction", "input"} or {"text"} (one user
    message). The conversation ends with a user turn; the model writes the next assistant turn."""
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) and m.get("role") in ROLES and
                                                     isinstance(m.get("content"), str) for m in messages):
            raise LmtuneError(f"input record {number}: messages must be a list of {{role, content}} with roles "
                              f"{', '.join(ROLES)}")
        return messages
    if "instruction" in record:
        extra = str(record.get("input") or "")
        return [{"role": "user", "content": f"{record['instruction']}\n\n{extra}" if extra.strip()
                 else str(record["instruction"])}]
    if "text" in record:
        return [{"role": "user", "content": str(record["text"])}]
    raise LmtuneError(f"input record {number}: an sft model needs \"messages\", \"instruction\" (and \"input\") or "
                      f"\"text\" in each JSON line")


def predict(model: Any, tokenizer: Any, records: list[dict[str, Any]], info: dict[str, Any],
            batch_size: int) -> list[dict[str, Any]]:
    prompts = [request_messages(r, i) for i, r in enumerate(records, start=1)]
    return [{"generated": g} for g in generate(model, tokenizer, prompts,
                                               generation_settings(info["params"]["sft"]), batch_size)]
