"""Write the bundled demo input: a small deterministic Llama-shaped BF16 checkpoint (make demo).

The weights are random (seeded); the tokenizer is the small byte-level BPE vocabulary the test
suite uses (tests/golden/arch/llama3/tokenizer), so the demo file carries real tokenizer metadata.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from synthetic import LlamaShape, write_llama_checkpoint

TOKENIZER = (
    Path(__file__).resolve().parent.parent / "tests" / "golden" / "arch" / "llama3" / "tokenizer"
)


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-out/tiny-llama")
    shape = LlamaShape(
        n_layers=4, hidden=512, intermediate=1536, n_heads=8, n_kv_heads=4, vocab=2048
    )
    write_llama_checkpoint(target, shape, dtype="BF16", seed=42)
    for file in TOKENIZER.iterdir():
        shutil.copy(file, target / file.name)
    print(f"wrote {target} ({shape.n_params:,} parameters, BF16)", file=sys.stderr)


if __name__ == "__main__":
    main()
