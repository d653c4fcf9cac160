"""Build data/tabular.csv: a small synthetic table for the csv source (penguin-like measurements).

Three species (the string label ``species``), four numeric measurements, a categorical
``island`` and a categorical ``sex``; about 3% of the measurements and 4% of ``sex`` are missing
(empty cells, and a few ``NA``), so the file needs ``missing:`` in a recipe. The species differ in
their mean measurements and in the islands they live on, so an MLP learns them (about 0.95 test
accuracy). Synthetic: the numbers are drawn, not measured.

Usage:
    python data/make_tabular.py

Written with the standard library's csv module, seeded: rebuilding gives the same file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SEED, N = 0, 400
OUT = Path(__file__).resolve().parent / "tabular.csv"
# species: (bill length, bill depth, flipper length, body mass) means, and island probabilities
SPECIES = {
    "Adelie": ((38.8, 18.3, 190.0, 3700.0), {"Biscoe": 0.3, "Dream": 0.35, "Torgersen": 0.35}),
    "Chinstrap": ((48.8, 18.4, 196.0, 3730.0), {"Biscoe": 0.0, "Dream": 1.0, "Torgersen": 0.0}),
    "Gentoo": ((47.5, 15.0, 217.0, 5080.0), {"Biscoe": 1.0, "Dream": 0.0, "Torgersen": 0.0}),
}
SPREAD = (2.8, 1.1, 6.5, 450.0)
COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex", "species"]


def main() -> None:
    rng = np.random.default_rng(SEED)
    names = list(SPECIES)
    rows = []
    for i in range(N):
        species = names[int(rng.choice(3, p=[0.44, 0.2, 0.36]))]
        means, islands = SPECIES[species]
        sex = "male" if rng.random() < 0.5 else "female"
        shift = 1.04 if sex == "male" else 0.96
        values = [m * shift + s * rng.standard_normal() for m, s in zip(means, SPREAD)]
        cells = [f"{values[0]:.1f}", f"{values[1]:.1f}", f"{values[2]:.0f}", f"{values[3]:.0f}"]
        for j in range(4):
            if rng.random() < 0.03:
                cells[j] = "" if rng.random() < 0.8 else "NA"
        island = str(rng.choice(list(islands), p=list(islands.values())))
        rows.append([*cells, island, "" if rng.random() < 0.04 else sex, species])
    with open(OUT, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    missing = sum(c in ("", "NA") for r in rows for c in r)
    print(f"wrote {OUT}: {len(rows)} rows, {len(COLUMNS)} columns, {missing} missing cells")


if __name__ == "__main__":
    main()
