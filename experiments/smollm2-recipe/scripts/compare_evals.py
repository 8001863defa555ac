#!/usr/bin/env python3
"""Compare two held-out evaluations of the same problems (the `--out` rows of `eval --config`).

Usage: compare_evals.py BASELINE.jsonl CANDIDATE.jsonl

Prints, for each file, accuracy, format rate, mean tokens and the mean number of lines of each
kind (arithmetic, verification, other); then the paired comparison: problems both solve, the
ones the candidate lost and gained, an exact two-sided McNemar p-value on those discordant
pairs, and how many of the lost ones the candidate answered with fewer arithmetic lines.
Standard library only.
"""

import json
import math
import re
import sys

ARITHMETIC = re.compile(r"\d\s*[-+*/x]\s*\d[^=]*=\s*-?\d")
VERIFICATION = ("Check", "Let me verify")


def load(path):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if not rows:
        sys.exit(f"{path}: no rows")
    return rows


def line_kinds(text):
    """(arithmetic lines outside verification, verification lines, other lines)."""
    arith = verify = other = 0
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        if line.startswith(VERIFICATION):
            verify += 1
        elif ARITHMETIC.search(line):
            arith += 1
        else:
            other += 1
    return arith, verify, other


def mcnemar_exact(lost, gained):
    """Two-sided exact binomial p-value of `lost` vs `gained` discordant pairs under p = 1/2."""
    n = lost + gained
    if n == 0:
        return 1.0
    k = min(lost, gained)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def summary(name, rows):
    n = len(rows)
    kinds = [line_kinds(r["completion"]) for r in rows]
    mean = lambda xs: sum(xs) / len(xs)
    print(f"{name}: n {n} | accuracy {mean([r['correct'] for r in rows]):.3f} | "
          f"format {mean([r['formatted'] for r in rows]):.3f} | tokens {mean([r['tokens'] for r in rows]):.1f} | "
          f"lines per answer: arithmetic {mean([k[0] for k in kinds]):.2f}, "
          f"verification {mean([k[1] for k in kinds]):.2f}, other {mean([k[2] for k in kinds]):.2f}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    base, cand = load(sys.argv[1]), load(sys.argv[2])
    if [r["problem"] for r in base] != [r["problem"] for r in cand]:
        sys.exit("the two files do not hold the same problems in the same order")
    summary("baseline ", base)
    summary("candidate", cand)
    pairs = list(zip(base, cand))
    both = sum(1 for b, c in pairs if b["correct"] and c["correct"])
    lost = [(b, c) for b, c in pairs if b["correct"] and not c["correct"]]
    gained = sum(1 for b, c in pairs if c["correct"] and not b["correct"])
    fewer = sum(1 for b, c in lost
                if line_kinds(c["completion"])[0] < line_kinds(b["completion"])[0])
    tok_b = sum(r["tokens"] for r in base)
    tok_c = sum(r["tokens"] for r in cand)
    print(f"paired: both correct {both}, lost {len(lost)}, gained {gained}, "
          f"McNemar exact p = {mcnemar_exact(len(lost), gained):.3f}; "
          f"lost with fewer arithmetic lines: {fewer} of {len(lost)}; "
          f"tokens {100 * (tok_c - tok_b) / tok_b:+.1f}%")


if __name__ == "__main__":
    main()
