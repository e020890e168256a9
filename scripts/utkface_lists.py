"""Write official-style image lists for UTKFace male<->female, filtered by age (recipe of the default model).

    python scripts/utkface_lists.py --data ../shared/data/utkface --min-age 18 --max-age 70 -o runs/utkface-lists

Writes train_a.txt, train_b.txt, test_a.txt, test_b.txt with paths relative to the data folder, for the
config keys data_folder_{train,test}_{a,b} and data_list_{train,test}_{a,b}.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/utkface", type=Path)
    parser.add_argument("--min-age", type=int, default=18)
    parser.add_argument("--max-age", type=int, default=70)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    lists: dict[str, list[str]] = {"train_a": [], "train_b": [], "test_a": [], "test_b": []}
    with open(args.data / "labels.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if args.min_age <= int(row["age"]) <= args.max_age:
                lists[f"{row['split']}_{row['domain'].lower()}"].append(row["file"])
    args.out.mkdir(parents=True, exist_ok=True)
    for name, files in lists.items():
        (args.out / f"{name}.txt").write_text("\n".join(sorted(files)) + "\n", encoding="utf-8")
        print(f"{name}: {len(files)} images")


if __name__ == "__main__":
    main()
