#!/usr/bin/env python3
"""Splits GSM8K train into the data sets of the gsm8k-recipe experiment (standard library
only, deterministic for a given seed).

Every row keeps its real GSM8K problem. The splits are disjoint by problem text:

  validation.jsonl  200 problems for choosing a GRPO checkpoint (never trained on)
  sft_val.jsonl      64 problems + rewritten solutions for the SFT validation loss
  sft.jsonl        1500 problems + rewritten solutions (SFT)
  grpo.jsonl       the remaining problems with their gold answers (GRPO)

A solution is rewritten to the boxed format: the calculator annotations `<<48/2=24>>` are
removed, the worked lines are kept as they are, and the `#### N` line becomes
`The answer is \\boxed{N}.` (thousands separators dropped from N).

Usage: prepare_data.py --gsm8k-train PATH [--out DIR] [--seed N] [--sft N] [--self-test]
"""

import argparse
import json
import os
import random
import re
import sys

ANNOTATION = re.compile(r"<<[^<>]*>>")


def gold_answer(solution):
    """The number after `####`, without thousands separators."""
    if "####" not in solution:
        raise ValueError("no #### line")
    return solution.split("####")[-1].strip().replace(",", "")


def rewrite(solution):
    """GSM8K worked solution -> reasoning lines + boxed answer."""
    body = solution.split("####")[0]
    lines = []
    for line in body.split("\n"):
        line = ANNOTATION.sub("", line).strip()
        line = re.sub(r"[ \t]+", " ", line)
        if line:
            lines.append(line)
    lines.append("The answer is \\boxed{%s}." % gold_answer(solution))
    return "\n".join(lines)


def split(rows, seed, n_val, n_sft_val, n_sft):
    """Shuffles unique problems with `seed` and cuts the four splits."""
    seen = set()
    unique = []
    for r in rows:
        q = r["question"].strip()
        if q not in seen:
            seen.add(q)
            unique.append(r)
    order = list(range(len(unique)))
    random.Random(seed).shuffle(order)
    picked = [unique[i] for i in order]
    a = n_val
    b = a + n_sft_val
    c = b + n_sft
    if c >= len(picked):
        raise ValueError("not enough rows for the requested splits")
    return picked[:a], picked[a:b], picked[b:c], picked[c:]


def write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def build(rows, seed, n_sft):
    val, sft_val, sft, grpo = split(rows, seed, 200, 64, n_sft)
    as_sft = lambda r: {"problem": r["question"].strip(), "solution": rewrite(r["answer"])}
    as_gold = lambda r: {"problem": r["question"].strip(), "answer": gold_answer(r["answer"])}
    return {
        "validation.jsonl": [as_gold(r) for r in val],
        "sft_val.jsonl": [as_sft(r) for r in sft_val],
        "sft.jsonl": [as_sft(r) for r in sft],
        "grpo.jsonl": [as_gold(r) for r in grpo],
    }


def self_test():
    s = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold $<<1+2=3>>3 more.\n#### 1,080"
    assert rewrite(s) == (
        "Natalia sold 48/2 = 24 clips in May.\nShe sold $3 more.\nThe answer is \\boxed{1080}."
    ), rewrite(s)
    assert gold_answer(s) == "1080"
    rows = [{"question": "q%d" % i, "answer": "x = <<1=1>>1\n#### %d" % i} for i in range(400)]
    rows.append(dict(rows[0]))  # a duplicate problem is kept once
    a = build(rows, 3, 100)
    b = build(rows, 3, 100)
    assert a == b, "not deterministic"
    probs = [set(r["problem"] for r in v) for v in a.values()]
    for i in range(len(probs)):
        for j in range(i + 1, len(probs)):
            assert not probs[i] & probs[j], "splits overlap"
    assert sum(len(v) for v in a.values()) == 400
    assert [len(a[k]) for k in ("validation.jsonl", "sft_val.jsonl", "sft.jsonl")] == [200, 64, 100]
    print("self-test ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gsm8k-train")
    ap.add_argument("--out", default="data")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--sft", type=int, default=1500)
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return
    if not args.gsm8k_train:
        ap.error("--gsm8k-train is required")
    with open(args.gsm8k_train, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    os.makedirs(args.out, exist_ok=True)
    for name, data in build(rows, args.seed, args.sft).items():
        write(os.path.join(args.out, name), data)
        print("%s: %d rows" % (os.path.join(args.out, name), len(data)))


if __name__ == "__main__":
    sys.exit(main())
