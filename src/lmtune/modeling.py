"""A text-level head on the mean of the token states, for any transformers encoder (fine_tune.pooling: mean).

AutoModelForSequenceClassification classifies from the first ([CLS]) token. Sentence-embedding checkpoints such as
all-MiniLM-L6-v2 were trained to represent a text by the mean of its token states instead, so a head on that mean
starts from a representation the checkpoint already knows.

A fine-tuned model has its own config type (model_type "lmtune-mean-pooling"), so transformers can never load it
into a [CLS] head, which would silently predict at random. Importing this module registers both classes with the
Auto classes. The file imports only torch and transformers: save_pretrained copies it next to the weights and names
it in config.json's auto_map, so the model also loads without lmtune, through
`AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PretrainedConfig, \
    PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

_NOT_ENCODER_KEYS = ("model_type", "encoder_model_type", "architectures", "auto_map")


class MeanPoolingConfig(PretrainedConfig):
    """The encoder's own config, flat (hidden_size, num_hidden_layers, ... read as usual), plus the encoder's
    model_type in encoder_model_type."""

    model_type = "lmtune-mean-pooling"

    def __init__(self, encoder_model_type: str = "bert", **kwargs: Any) -> None:
        self.encoder_model_type = encoder_model_type
        super().__init__(**kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> Any:
        """A saved mean-pooling config, or any encoder's config wrapped as one (peft reads the base model's config
        through this class when it saves a LoRA adapter)."""
        config_dict, _ = cls.get_config_dict(pretrained_model_name_or_path, revision=kwargs.get("revision"))
        if config_dict.get("model_type") == cls.model_type:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        loaded = AutoConfig.from_pretrained(pretrained_model_name_or_path, **kwargs)
        config, unused = loaded if isinstance(loaded, tuple) else (loaded, None)  # return_unused_kwargs=True
        return cls.wrap(config) if unused is None else (cls.wrap(config), unused)

    @classmethod
    def wrap(cls, encoder_config: PretrainedConfig) -> MeanPoolingConfig:
        values = {k: v for k, v in encoder_config.to_dict().items() if k not in _NOT_ENCODER_KEYS}
        config = cls(encoder_model_type=encoder_config.model_type, **values)
        config._attn_implementation = encoder_config._attn_implementation
        return config

    def encoder_config(self) -> PretrainedConfig:
        values = {k: v for k, v in self.to_dict().items() if k not in _NOT_ENCODER_KEYS}
        return AutoConfig.for_model(self.encoder_model_type, **values)


class MeanPoolingForSequenceClassification(PreTrainedModel):
    """encoder -> mean of the token states over the attention mask -> dropout -> linear. The loss follows
    config.problem_type exactly as transformers' own sequence-classification heads do (cross-entropy, BCE or MSE)."""

    config_class = MeanPoolingConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    # the attention implementation is the encoder's; these flags only let from_pretrained pass it on
    _supports_sdpa = _supports_flash_attn = _supports_flex_attn = _supports_attention_backend = True

    def __init__(self, config: MeanPoolingConfig, encoder: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        if encoder is None:
            encoder = AutoModel.from_config(config.encoder_config(), attn_implementation=config._attn_implementation)
        self.encoder = encoder
        if getattr(self.encoder, "pooler", None) is not None:
            self.encoder.pooler = None  # the [CLS] pooler would go unused: not saved, not counted as trainable
        dropout = getattr(config, "classifier_dropout", None)
        dropout = getattr(config, "hidden_dropout_prob", 0.1) if dropout is None else dropout
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()  # initialises what was not loaded: the new classifier (a passed encoder keeps its weights)

    @classmethod
    def from_encoder(cls, name_or_path: str, revision: str = "main", attn_implementation: str | None = None,
                     **config_values: Any) -> MeanPoolingForSequenceClassification:
        """A new head on a pretrained encoder. AutoModel loads the encoder, so each architecture's own checkpoint
        layout is handled; `config_values` (num_labels, id2label, problem_type, ...) go to the config."""
        config = AutoConfig.from_pretrained(name_or_path, revision=revision, **config_values)
        encoder = AutoModel.from_pretrained(name_or_path, config=config, revision=revision, dtype=torch.float32,
                                            attn_implementation=attn_implementation)  # fp32 master weights
        return cls(MeanPoolingConfig.wrap(encoder.config), encoder=encoder)

    def _init_weights(self, module: nn.Module) -> None:
        """The classifier only: transformers dispatches the encoder's modules to the encoder's own _init_weights."""
        if module is self.classifier:
            nn.init.normal_(module.weight, mean=0.0, std=getattr(self.config, "initializer_range", 0.02))
            nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs: Any) -> SequenceClassifierOutput:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        states = out.last_hidden_state  # (B, T, H)
        if attention_mask is None:
            attention_mask = torch.ones(states.shape[:2], device=states.device)
        mask = attention_mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1): padding counts for nothing
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (B, H)
        logits = self.classifier(self.dropout(pooled))  # (B, num_labels)
        loss = None if labels is None else self.loss_function(labels=labels, pooled_logits=logits, config=self.config)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                        attentions=out.attentions)


AutoConfig.register(MeanPoolingConfig.model_type, MeanPoolingConfig, exist_ok=True)
AutoModelForSequenceClassification.register(MeanPoolingConfig, MeanPoolingForSequenceClassification, exist_ok=True)
MeanPoolingConfig.register_for_auto_class()
MeanPoolingForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
