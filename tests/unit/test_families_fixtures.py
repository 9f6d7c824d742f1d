"""The tiny family checkpoints (tests/families.py) load back offline as their family, with the Hub's special tokens,
and their vocabularies cover the fixture texts with real sub-words."""
from __future__ import annotations

import re

import pytest
from transformers import AutoConfig, AutoTokenizer

from tests.families import FAMILIES, SPECS, build_family, fixture_texts

MODEL_TYPE = {"bert-zh": "bert"}  # every other family's model_type is its name
pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")  # Marian's optional normaliser
CHINESE = "刘洋去了北京。"  # the first sentence of ner_zh.conll, as running text
ENGLISH = "The old harbor of Velmora was built in 1642 by fishermen from the northern coast."  # qa_squad.json


@pytest.fixture(scope="module")
def tokenizers(tiny_family):
    return {name: AutoTokenizer.from_pretrained(tiny_family(name)) for name in FAMILIES}


def unknown(tokenizer, texts: list[str]) -> int:
    return sum(ids.count(tokenizer.unk_token_id) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("name", FAMILIES)
def test_checkpoint_loads_back_offline_as_its_family(name, tiny_family, tokenizers):
    config = AutoConfig.from_pretrained(tiny_family(name))
    tokenizer = tokenizers[name]
    assert type(tokenizer).__name__ == SPECS[name].tokenizer
    assert config.model_type == MODEL_TYPE.get(name, name)
    assert config.architectures == [SPECS[name].model]
    assert config.vocab_size >= len(tokenizer), "every token id has an embedding row"
    assert tokenizer.model_max_length == 512
    assert (tokenizer.pad_token is None) == (name in ("gpt2", "llama")), "GPT-2 and Llama ship no pad token"


@pytest.mark.parametrize("name", FAMILIES)
def test_vocab_covers_every_fixture_text_with_real_sub_words(name, tokenizers):
    tokenizer = tokenizers[name]
    assert unknown(tokenizer, fixture_texts(chinese=SPECS[name].chinese)) == 0
    pieces = [re.sub(r"^(##|▁|Ġ)", "", p) for p in tokenizer.tokenize(ENGLISH)]
    assert "harbor" in pieces, pieces  # a frequent fixture word is one token
    assert sum(len(p) > 1 for p in pieces) >= len(pieces) / 2, pieces  # sub-words, not characters
    assert len(pieces) < len(ENGLISH), pieces


@pytest.mark.parametrize("name", ["bert-zh", "xlm-roberta", "mt5", "qwen2", "llama", "gpt2"])
def test_chinese_text_has_no_unknown_tokens(name, tokenizers):
    assert unknown(tokenizers[name], [CHINESE, " ".join(CHINESE)]) == 0


def test_chinese_bert_keeps_each_character_as_a_token(tokenizers):
    assert tokenizers["bert-zh"].tokenize(CHINESE) == list(CHINESE)
    assert tokenizers["bert-zh"].tokenize("Velmora harbor") == ["Velmora", "harbor"], "cased English words"


def test_special_tokens_sit_where_the_hub_puts_them(tokenizers):
    ids = {name: tok.convert_tokens_to_ids for name, tok in tokenizers.items()}
    assert [ids["bert"](t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
    assert [ids["roberta"](t) for t in ("<s>", "<pad>", "</s>", "<unk>")] == [0, 1, 2, 3]
    assert [ids["t5"](t) for t in ("<pad>", "</s>", "<unk>")] == [0, 1, 2]
    assert [ids["llama"](t) for t in ("<unk>", "<s>", "</s>", "<0x00>")] == [0, 1, 2, 3]
    assert ids["gpt2"]("<|endoftext|>") == len(tokenizers["gpt2"]) - 1
    assert tokenizers["gpt2"].bos_token == tokenizers["gpt2"].eos_token == "<|endoftext|>"
    assert tokenizers["qwen2"].pad_token == tokenizers["qwen2"].eos_token == "<|endoftext|>"
    assert tokenizers["t5"].convert_tokens_to_ids("<extra_id_0>") != tokenizers["t5"].unk_token_id
    assert tokenizers["llama"]("hello")["input_ids"][0] == ids["llama"]("<s>"), "Llama adds bos"


def test_decoder_only_chat_templates_render(tokenizers):
    chat = [{"role": "user", "content": "Who built the harbor?"}]
    llama = tokenizers["llama"].apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert llama == ("<s><|start_header_id|>user<|end_header_id|>\n\nWho built the harbor?<|eot_id|>"
                     "<|start_header_id|>assistant<|end_header_id|>\n\n")
    qwen = tokenizers["qwen2"].apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert qwen.endswith("<|im_start|>user\nWho built the harbor?<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizers["qwen2"].convert_tokens_to_ids("<|im_end|>") != tokenizers["qwen2"].unk_token_id


def test_marian_is_the_slow_sentencepiece_tokenizer_with_a_german_target_side(tiny_family, tokenizers):
    marian = tokenizers["marian"]
    assert not marian.is_fast
    assert {p.name for p in tiny_family("marian").iterdir()} >= {"source.spm", "target.spm", "vocab.json"}
    german = fixture_texts(chinese=False, suffixes=(".de",))
    targets = marian(text_target=german)["input_ids"]
    assert sum(ids.count(marian.unk_token_id) for ids in targets) == 0
    assert all(ids[-1] == marian.eos_token_id for ids in targets)


def test_every_build_is_byte_identical(tiny_family, tmp_path):
    for name in FAMILIES:
        again = build_family(name, tmp_path / name)
        for path in sorted(tiny_family(name).iterdir()):
            assert (again / path.name).read_bytes() == path.read_bytes(), f"{name}/{path.name} differs"
