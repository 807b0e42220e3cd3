"""Family golden cases, one module per group of families; each module exports ``CASES``."""
