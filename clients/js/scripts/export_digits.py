"""Write examples/digits.safetensors: scikit-learn's 8x8 digits as U8 pixels (0..16) and U8 labels.

Committed (117 KB) so `npm run build` needs no Python; rerun with
`.venv/bin/python clients/js/scripts/export_digits.py` to regenerate it (identical bytes).
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from fedgrid_plans import tensors

digits = load_digits()
out = Path(__file__).resolve().parent.parent / "examples" / "digits.safetensors"
out.write_bytes(tensors.encode(
    {"pixels": digits.images.astype(np.uint8), "labels": digits.target.astype(np.uint8)},
    metadata={"source": "sklearn.datasets.load_digits", "pixel_scale": "16"},
))
print(f"{out}: {out.stat().st_size} bytes, {len(digits.target)} examples")
