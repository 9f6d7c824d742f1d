"""lmtune: fine-tune pretrained transformers on downstream NLP tasks through a DVC pipeline."""

__version__ = "0.1.0"
