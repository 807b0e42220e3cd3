"""One small data module per architecture family."""
