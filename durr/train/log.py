"""A CSV training log that survives resume: rows past the resumed iteration are dropped."""

from __future__ import annotations

import csv
import os
from pathlib import Path


class CSVLog:
    def __init__(self, path: str | os.PathLike, fields: list[str], resume_from: int = 0):
        self.path, self.fields = Path(path), fields
        rows = []
        if resume_from > 0 and self.path.exists():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= resume_from]
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields).writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
