"""Embedding sources: ``embed`` (local model, OpenAI, cache), random strings, text files.

Importing this package is light; torch, sentence-transformers and the OpenAI
client are imported when a provider first needs them.
"""
from .embed import embed

__all__ = ["embed"]
