"""Family golden cases, one module per group of families; each module exports ``CASES``."""

# The small decoder dimensions most cases share (dense.py, llama.py, metadata.py).
SMALL = {
    "hidden_size": 256,
    "intermediate_size": 320,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 300,
}
# The tiny Llama that llama_h256 (llama.py) and llama_model_card (metadata.py) both convert.
TINY_LLAMA = {**SMALL, "bos_token_id": 296, "eos_token_id": 297, "tie_word_embeddings": True}
