"""Tokenizer metadata: byte-level BPE, SentencePiece and their special tokens."""
