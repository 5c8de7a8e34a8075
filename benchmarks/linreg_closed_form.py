"""The least-squares fit of the diabetes table in closed form: the MSE that `examples/linreg.irn`
must reach within 1% (features standardised as the example's `csv(..., normalize=true)` does).

    .venv/bin/python benchmarks/linreg_closed_form.py
"""

import gzip
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data" / "diabetes"


def load(name: str) -> np.ndarray:
    with gzip.open(DATA / name) as f:
        return np.loadtxt(f)


x, y = load("diabetes_data_raw.csv.gz"), load("diabetes_target.csv.gz")
x = (x - x.mean(axis=0)) / x.std(axis=0)
design = np.c_[x, np.ones(len(x))]
weights, *_ = np.linalg.lstsq(design, y, rcond=None)
mse = np.mean((design @ weights - y) ** 2)
print(f"closed-form least-squares MSE on all {len(y)} rows: {mse:.4f}")
