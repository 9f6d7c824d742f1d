"""Tiny random-initialised checkpoints of each model family, built offline and saved the way the Hub ships them.

`build_family(name, out_dir)` writes one checkpoint: a 2-layer, 32-wide model (4 heads, FFN 64, 512 positions)
built from its config with random weights, and the family's real tokenizer class with a small vocabulary trained
here on the test fixture texts, so the fixtures tokenize into real sub-words, not unknowns. Nothing is downloaded.
Each family keeps the quirks users meet on the Hub: GPT-2 and Llama ship no pad token, Qwen2 and Llama carry chat
templates in tokenizer_config.json, T5, mT5 and Qwen2 have more embedding rows than tokenizer entries, encoders ship
bare base weights (BertModel, ...: a task head is always new), seq2seq and decoder-only models ship their LM head.
`FAMILIES` lists the names; `SPECS[name]` says how each is built. A build takes well under a second per family
(about 8 s for all 15 in a fresh process, imports included) and gives byte-identical files every time.

The vocabulary is trained with the normalizer and pre-tokenizer that the family's tokenizer class builds itself,
then handed to that class as `vocab=` (and `merges=`). transformers 5 rebuilds every tokenizer that way when it
reads tokenizer.json (`TokenizersBackend.convert_to_native_format`: vocab and merges come from the file, the
normalizer and pre-tokenizer from the class), so a `tokenizer_object=` with a different pipeline would not survive
a save and reload. Trainers: `tokenizers`' BpeTrainer for the BPE families; WordPiece pieces are read off that BPE
model; Unigram models come from `sentencepiece` (see "vocabularies" below for why).

Vocabularies by family (the Hub's layout of special tokens, ids in brackets):
- WordPiece (BERT, DistilBERT, ELECTRA, bert-zh): [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, BertTokenizer. bert-zh is
  cased with `tokenize_chinese_chars=True`: every CJK character is its own token, English words are whole words.
- byte-level BPE (RoBERTa, BART: RobertaTokenizer <s>=0 <pad>=1 </s>=2 <unk>=3 ... <mask>=last; GPT-2: GPT2Tokenizer,
  <|endoftext|>=last as bos/eos/unk, no pad; Qwen2: Qwen2Tokenizer, <|endoftext|> as eos and pad, then <|im_start|>,
  <|im_end|>): every byte is in the alphabet, so nothing is ever unknown.
- Unigram with Metaspace (XLM-R: <s>=0 <pad>=1 </s>=2 <unk>=3 ... <mask>=last; ALBERT: <pad>=0 <unk>=1 [CLS]=2
  [SEP]=3 [MASK]=4, lowercased; DeBERTa-v2: [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3 ... [MASK]=last; T5/mT5: <pad>=0 </s>=1
  <unk>=2 ... then the 100 <extra_id_N> sentinels the class adds).
- BPE with Metaspace and byte fallback (Llama, the sentencepiece-BPE layout of Llama 1/2): <unk>=0 <s>=1 </s>=2,
  <0x00>..<0xFF>, then the merges; bos added to every text, no pad; the chat template is Llama-3's, so its header
  tokens are added as special tokens.
- Marian: the slow MarianTokenizer (transformers 5.24 still has it, and no fast one) over two sentencepiece unigram
  models trained here, source.spm on the English texts and target.spm on the German ones, and one joint vocab.json
  (</s>=0 <unk>=1 ... <pad>=last, as opus-mt ships it). It loads offline with AutoTokenizer once the `sentencepiece`
  package is installed; `sacremoses` (Moses punctuation normalisation) is optional and, when missing, transformers
  warns "Recommended: pip install sacremoses." and skips that step. Being a Python tokenizer it has no offsets:
  `return_offsets_mapping=True` is silently ignored (no "offset_mapping" key) and `word_ids()` raises ValueError.

Compromises: the Unigram families have no precompiled sentencepiece normalisation charsmap (their classes then use
no NFKC step), and on the ~100 KB fixture corpus Unigram training stops at 700-950 pieces, so their texts take about
2 pieces per word (BPE/WordPiece: 1.2-1.4); Llama has Llama-2's sentencepiece-style tokenizer with Llama-3's chat
template; the English-only families (bert, distilbert, electra, albert, deberta-v2, t5) see no Chinese text in
training, so Chinese characters are unknown to them as they are to the real English T5 and ALBERT vocabularies
(byte-level families and Llama's byte fallback cover any text anyway).
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")

# Model size shared by every family: small enough that a step takes milliseconds on a CPU.
HIDDEN, LAYERS, HEADS, FFN, POSITIONS = 32, 2, 4, 64, 512

LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
CHATML_TEMPLATE = (  # Qwen2-Instruct's
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


@dataclass(frozen=True)
class Family:
    """How one family's tiny checkpoint is built.

    `vocab` is the tokenizer model trained: wordpiece | byte-bpe | unigram | metaspace-bpe | sentencepiece (Marian's
    two .spm files).
    `head`/`tail` are the special tokens placed before/after the trained pieces, in the Hub's id order.
    `config` builds the model config from the saved tokenizer (its length and special-token ids).
    """

    tokenizer: str                  # transformers tokenizer class
    vocab: str
    vocab_size: int                 # trained pieces asked for (Unigram stops at 700-950 on the small fixture corpus)
    head: tuple[str, ...]
    tail: tuple[str, ...]
    model: str                      # transformers model class saved (the Hub checkpoint's architecture)
    config: Callable[[object], object]
    tokenizer_kwargs: dict = field(default_factory=dict)
    chinese: bool = False           # train on the Chinese fixture texts too (multilingual vocabularies)


def _ids(tok, *names: str) -> dict[str, int]:
    return {f"{n}_token_id": tok.convert_tokens_to_ids(getattr(tok, f"{n}_token")) for n in names}


def _encoder(config_class: str, **values) -> Callable[[object], object]:
    """BERT-style encoder configs: 2 layers, 32 wide, 4 heads, pad id from the tokenizer."""
    def build(tok):
        import transformers

        return getattr(transformers, config_class)(
            vocab_size=len(tok), hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            intermediate_size=FFN, max_position_embeddings=POSITIONS, pad_token_id=tok.pad_token_id, **values)
    return build


def _roberta_like(config_class: str) -> Callable[[object], object]:
    def build(tok):  # positions start after the pad id, so 512 usable positions take 514 rows (as on the Hub)
        import transformers

        return getattr(transformers, config_class)(
            vocab_size=len(tok), hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            intermediate_size=FFN, max_position_embeddings=POSITIONS + 2, type_vocab_size=1,
            **_ids(tok, "pad", "bos", "eos"))
    return build


def _distilbert(tok):
    from transformers import DistilBertConfig

    return DistilBertConfig(vocab_size=len(tok), dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FFN,
                            max_position_embeddings=POSITIONS, pad_token_id=tok.pad_token_id)


def _albert(tok):
    from transformers import AlbertConfig

    return AlbertConfig(vocab_size=len(tok), embedding_size=16, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                        num_attention_heads=HEADS, intermediate_size=FFN, max_position_embeddings=POSITIONS,
                        **_ids(tok, "pad", "bos", "eos"))


def _deberta_v2(tok):  # DeBERTa-v3's settings: relative positions only, shared attention keys
    from transformers import DebertaV2Config

    return DebertaV2Config(vocab_size=len(tok), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                           num_attention_heads=HEADS, intermediate_size=FFN, max_position_embeddings=POSITIONS,
                           relative_attention=True, position_buckets=64, max_relative_positions=-1,
                           pos_att_type=["p2c", "c2p"], position_biased_input=False, norm_rel_ebd="layer_norm",
                           share_att_key=True, type_vocab_size=0, pad_token_id=tok.pad_token_id)


def _gpt2(tok):
    from transformers import GPT2Config

    return GPT2Config(vocab_size=len(tok), n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_inner=FFN,
                      n_positions=POSITIONS, **_ids(tok, "bos", "eos"))


def _llama(tok):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tok), hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                       num_key_value_heads=2, intermediate_size=FFN, max_position_embeddings=POSITIONS,
                       tie_word_embeddings=False, **_ids(tok, "bos", "eos"))


def _qwen2(tok):
    from transformers import Qwen2Config

    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    return Qwen2Config(vocab_size=_rounded(len(tok)), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                       num_attention_heads=HEADS, num_key_value_heads=2, intermediate_size=FFN,
                       max_position_embeddings=POSITIONS, tie_word_embeddings=True, bos_token_id=eos,
                       eos_token_id=eos)


def _t5(config_class: str, **values) -> Callable[[object], object]:
    def build(tok):
        import transformers

        return getattr(transformers, config_class)(
            vocab_size=_rounded(len(tok)), d_model=HIDDEN, d_kv=HIDDEN // HEADS, d_ff=FFN, num_layers=LAYERS,
            num_decoder_layers=LAYERS, num_heads=HEADS, decoder_start_token_id=tok.pad_token_id,
            **_ids(tok, "pad", "eos"), **values)
    return build


def _bart(tok):
    from transformers import BartConfig

    ids = _ids(tok, "pad", "bos", "eos")
    return BartConfig(vocab_size=len(tok), d_model=HIDDEN, encoder_layers=LAYERS, decoder_layers=LAYERS,
                      encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=FFN,
                      decoder_ffn_dim=FFN, max_position_embeddings=POSITIONS,
                      decoder_start_token_id=ids["eos_token_id"], forced_bos_token_id=ids["bos_token_id"],
                      forced_eos_token_id=ids["eos_token_id"], **ids)


def _marian(tok):
    from transformers import MarianConfig

    ids = _ids(tok, "pad", "eos")
    return MarianConfig(vocab_size=len(tok.encoder), d_model=HIDDEN, encoder_layers=LAYERS, decoder_layers=LAYERS,
                        encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=FFN,
                        decoder_ffn_dim=FFN, max_position_embeddings=POSITIONS,
                        decoder_start_token_id=ids["pad_token_id"], forced_eos_token_id=ids["eos_token_id"],
                        bos_token_id=ids["pad_token_id"], **ids)


def _rounded(n: int, multiple: int = 64) -> int:
    return -(-n // multiple) * multiple


BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
ROBERTA_HEAD = ("<s>", "<pad>", "</s>", "<unk>")
LLAMA3_HEADERS = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

SPECS: dict[str, Family] = {
    "bert": Family("BertTokenizer", "wordpiece", 1200, BERT_SPECIALS, (), "BertModel", _encoder("BertConfig")),
    "bert-zh": Family("BertTokenizer", "wordpiece", 4000, BERT_SPECIALS, (), "BertModel", _encoder("BertConfig"),
                      {"do_lower_case": False, "tokenize_chinese_chars": True}, chinese=True),
    "roberta": Family("RobertaTokenizer", "byte-bpe", 2000, ROBERTA_HEAD, ("<mask>",), "RobertaModel",
                      _roberta_like("RobertaConfig")),
    "xlm-roberta": Family("XLMRobertaTokenizer", "unigram", 2000, ROBERTA_HEAD, ("<mask>",), "XLMRobertaModel",
                          _roberta_like("XLMRobertaConfig"), chinese=True),
    "distilbert": Family("DistilBertTokenizer", "wordpiece", 1200, BERT_SPECIALS, (), "DistilBertModel", _distilbert),
    "electra": Family("BertTokenizer", "wordpiece", 1200, BERT_SPECIALS, (), "ElectraModel",
                      _encoder("ElectraConfig", embedding_size=HIDDEN)),
    "deberta-v2": Family("DebertaV2Tokenizer", "unigram", 2000, ("[PAD]", "[CLS]", "[SEP]", "[UNK]"), ("[MASK]",),
                         "DebertaV2Model", _deberta_v2),
    "albert": Family("AlbertTokenizer", "unigram", 2000, ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"), (),
                     "AlbertModel", _albert),
    "gpt2": Family("GPT2Tokenizer", "byte-bpe", 2000, (), ("<|endoftext|>",), "GPT2LMHeadModel", _gpt2),
    "llama": Family("LlamaTokenizer", "metaspace-bpe", 1500, ("<unk>", "<s>", "</s>"), (), "LlamaForCausalLM", _llama,
                    {"add_bos_token": True, "add_eos_token": False, "chat_template": LLAMA3_CHAT_TEMPLATE,
                     "additional_special_tokens": LLAMA3_HEADERS}),
    "qwen2": Family("Qwen2Tokenizer", "byte-bpe", 2000, (), ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
                    "Qwen2ForCausalLM", _qwen2,
                    {"chat_template": CHATML_TEMPLATE, "additional_special_tokens": ["<|im_start|>", "<|im_end|>"]},
                    chinese=True),
    "t5": Family("T5Tokenizer", "unigram", 2000, ("<pad>", "</s>", "<unk>"), (), "T5ForConditionalGeneration",
                 _t5("T5Config", feed_forward_proj="relu"), {"extra_ids": 100}),
    "mt5": Family("T5Tokenizer", "unigram", 2000, ("<pad>", "</s>", "<unk>"), (), "MT5ForConditionalGeneration",
                  _t5("MT5Config", feed_forward_proj="gated-gelu", tie_word_embeddings=False), {"extra_ids": 100},
                  chinese=True),
    "bart": Family("RobertaTokenizer", "byte-bpe", 2000, ROBERTA_HEAD, ("<mask>",), "BartForConditionalGeneration",
                   _bart),
    "marian": Family("MarianTokenizer", "sentencepiece", 600, ("</s>", "<unk>"), ("<pad>",), "MarianMTModel",
                     _marian, {"source_lang": "en", "target_lang": "de"}),
}
FAMILIES: list[str] = list(SPECS)


# ---- the training text ------------------------------------------------------------------------------------------

def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def fixture_texts(*, chinese: bool = True, suffixes: tuple[str, ...] | None = None) -> list[str]:
    """Every text in tests/fixtures, one string per sentence or cell.

    CoNLL sentences are joined with spaces, and for Chinese also without (as running text). `chinese=False` drops
    texts with CJK characters; `suffixes` keeps only files with those suffixes (Marian: ".en" / ".de").
    """
    texts: list[str] = []
    for path in sorted(FIXTURES.iterdir()):
        if suffixes is not None and path.suffix not in suffixes:
            continue
        raw = path.read_text(encoding="utf-8")
        if path.suffix == ".csv":
            texts += [cell for row in list(csv.reader(io.StringIO(raw)))[1:] for cell in row]
        elif path.suffix == ".json":
            texts += _strings(json.loads(raw))
        elif path.suffix == ".jsonl":
            texts += [s for line in raw.splitlines() if line.strip() for s in _strings(json.loads(line))]
        elif path.suffix == ".conll":
            for block in re.split(r"\n\s*\n", raw):
                words = [line.split()[0] for line in block.splitlines() if line.strip()
                         and not line.startswith("-DOCSTART-")]
                if words:
                    texts.append(" ".join(words))
                    if CJK.search(texts[-1]):
                        texts.append("".join(words))
        elif path.suffix in (".en", ".de", ".txt"):
            texts += raw.splitlines()
    return [t for t in texts if t.strip() and (chinese or not CJK.search(t))]


# ---- vocabularies -----------------------------------------------------------------------------------------------
# Every trainer here gives the same vocabulary on every run. `tokenizers`' WordPieceTrainer and UnigramTrainer do not
# (ties between equally frequent pairs and float sums follow Rust's per-process hash order), so WordPiece pieces are
# read off a plain BPE model, whose training is reproducible, and Unigram models are trained with sentencepiece,
# the trainer the Hub's XLM-R, ALBERT, DeBERTa-v3, T5 and mT5 vocabularies came from.

def _sentencepiece(texts: list[str], vocab_size: int) -> bytes:
    """A serialized sentencepiece unigram model with <unk>=0 and </s>=1 (the ids Marian's .spm files have)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        hard_vocab_limit=False, character_coverage=1.0, normalization_rule_name="identity", unk_id=0, eos_id=1,
        bos_id=-1, pad_id=-1, num_threads=1, minloglevel=2)
    return model.getvalue()


def _unigram(texts: list[str], spec: Family) -> list[tuple[str, float]]:
    """(piece, log-probability) pairs in the Hub's order: spec.head, the trained pieces, spec.tail."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=_sentencepiece(texts, spec.vocab_size))
    pieces = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())
              if not processor.is_control(i) and not processor.is_unknown(i)]
    specials = set(spec.head) | set(spec.tail)
    return ([(t, 0.0) for t in spec.head] + [(p, s) for p, s in pieces if p not in specials]
            + [(t, 0.0) for t in spec.tail])


def _bpe(texts: list[str], spec: Family, backend) -> tuple[list[str], list[tuple[str, str]], object]:
    """Train BPE with `backend`'s normalizer and pre-tokenizer; returns its tokens in id order, merges and model."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = backend.normalizer
    tok.pre_tokenizer = backend.pre_tokenizer
    if spec.vocab == "metaspace-bpe":  # train within words, as sentencepiece does; the Llama class applies no split
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    alphabet = pre_tokenizers.ByteLevel.alphabet() if spec.vocab == "byte-bpe" else []
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=spec.vocab_size, initial_alphabet=alphabet,
                                                       show_progress=False))
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return sorted(model["vocab"], key=model["vocab"].get), merges, tok


def _wordpiece(texts: list[str], spec: Family, backend) -> dict[str, int]:
    """A WordPiece vocab: every piece the trained BPE splits a fixture word into, "##"-prefixed when not the word's
    first piece, and every character in both forms (so no fixture word is unknown)."""
    tokens, _, tok = _bpe(texts, spec, backend)
    rank = {t: i for i, t in enumerate(tokens)}
    pieces: set[str] = set()
    for text in texts:
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text)):
            parts = [t.value for t in tok.model.tokenize(word)]
            pieces |= {parts[0], *("##" + p for p in parts[1:]), *word, *("##" + c for c in word)}
    ordered = sorted(pieces - set(spec.head), key=lambda p: (rank.get(p.removeprefix("##"), len(rank)), p))
    return {t: i for i, t in enumerate([*spec.head, *ordered])}


def _train(spec: Family, template) -> dict:
    """vocab (and merges) for spec's tokenizer class, trained with the normalizer and pre-tokenizer it builds."""
    texts = fixture_texts(chinese=spec.chinese)
    backend = template.backend_tokenizer
    if spec.vocab == "unigram":
        if backend.normalizer is not None:  # sentencepiece itself normalises nothing here ("identity")
            texts = [backend.normalizer.normalize_str(t) for t in texts]
        return {"vocab": _unigram(texts, spec)}
    if spec.vocab == "wordpiece":
        return {"vocab": _wordpiece(texts, spec, backend)}
    tokens, merges, _ = _bpe(texts, spec, backend)
    front = list(spec.head)
    if spec.vocab == "metaspace-bpe":  # sentencepiece's byte-fallback pieces, right after the specials
        front += [f"<0x{b:02X}>" for b in range(256)]
    specials = set(spec.head) | set(spec.tail)
    tokens = front + [t for t in tokens if t not in specials and t not in front] + list(spec.tail)
    return {"vocab": {t: i for i, t in enumerate(tokens)}, "merges": merges}


def _marian_tokenizer(spec: Family, out_dir: Path):
    """Two sentencepiece unigram models (English source, German target) and their joint vocab.json, as opus-mt."""
    import sentencepiece as spm
    from transformers import MarianTokenizer

    pieces: list[str] = []
    for name, suffixes, size in (("source.spm", (".csv", ".json", ".jsonl", ".conll", ".en"), spec.vocab_size),
                                 ("target.spm", (".de",), spec.vocab_size // 2)):
        model = _sentencepiece(fixture_texts(chinese=False, suffixes=suffixes), size)
        (out_dir / name).write_bytes(model)
        processor = spm.SentencePieceProcessor(model_proto=model)
        pieces += [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    tokens = list(spec.head) + sorted(set(pieces) - set(spec.head)) + list(spec.tail)
    (out_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False, indent=1),
                                        encoding="utf-8")
    return MarianTokenizer(source_spm=str(out_dir / "source.spm"), target_spm=str(out_dir / "target.spm"),
                           vocab=str(out_dir / "vocab.json"), model_max_length=POSITIONS, **spec.tokenizer_kwargs)


def build_tokenizer(name: str, out_dir: Path):
    """The family's tokenizer with a vocabulary trained on the fixtures (Marian writes its files to out_dir)."""
    import transformers

    spec = SPECS[name]
    if spec.vocab == "sentencepiece":
        return _marian_tokenizer(spec, out_dir)
    cls = getattr(transformers, spec.tokenizer)
    kwargs = {**spec.tokenizer_kwargs, "model_max_length": POSITIONS}
    template = cls(**{k: v for k, v in kwargs.items() if k not in ("chat_template", "additional_special_tokens")})
    return cls(**_train(spec, template), **kwargs)


def build_family(name: str, out_dir: Path, **config_values: object) -> Path:
    """Write the tiny `name` checkpoint (config, random weights, tokenizer files) to out_dir; returns out_dir.

    Args:
        name: one of FAMILIES.
        out_dir: created if missing; existing files with the same names are overwritten.
        config_values: config fields to change (e.g. hidden_size for a test that must learn something).
    """
    import torch
    import transformers

    if name not in SPECS:
        raise ValueError(f"unknown family {name!r}; choose one of {', '.join(FAMILIES)}")
    spec = SPECS[name]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(name, out_dir)
    config = spec.config(tokenizer)
    if config_values:
        config = type(config)(**{**config.to_dict(), **config_values})
    torch.manual_seed(0)  # the same weights every build
    model = getattr(transformers, spec.model)(config)
    model.save_pretrained(out_dir)
    # Llama 3 and Qwen2 ship their chat template inside tokenizer_config.json (save_pretrained's default is a
    # separate chat_template.jinja file, which from_pretrained reads too).
    tokenizer.save_pretrained(out_dir, save_jinja_files=False)
    return out_dir
