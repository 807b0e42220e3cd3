"""Per-tensor decisions before any data is read: the --type table, llama-quantize's mixture rules
and tensor order, fallbacks."""
