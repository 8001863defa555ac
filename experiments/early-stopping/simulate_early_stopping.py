#!/usr/bin/env python3
"""Replays consensus rules on the per-sample record of a full run (the eval program's --out).

Samples advance one token per step together, so sample i ends at step L_i (its token count).
After each step the samples that ended vote; a rule that fires at step t cuts the running
samples, which then hold t tokens. This mirrors rust/generate/rollout.rs exactly, so for a
deterministic engine the replay equals a real run with that rule; it cross-checks the real runs.

Usage: experiments/early-stopping/simulate_early_stopping.py experiments/early-stopping/out/full.jsonl [k ...]
"""
import json
import sys


def tally_order(samples, t):
    """Keys of samples ended by step t, in finishing order (ties: sample order)."""
    done = sorted((s["tokens"], i) for i, s in enumerate(samples) if s["tokens"] <= t)
    counts = {}
    for _, i in done:
        k = samples[i]["key"]
        if k is not None:
            counts[k] = counts.get(k, 0) + 1
    return counts


def leader(counts):
    best, first, second = None, 0, 0
    for k, c in counts.items():  # dict keeps first-appearance order
        if c > first:
            best, second, first = k, first, c
        else:
            second = max(second, c)
    return best, first, second


def replay(rec, rule, k=None):
    samples = rec["samples"]
    lengths = [s["tokens"] for s in samples]
    for t in range(1, max(lengths) + 1):
        running = sum(1 for L in lengths if L > t)
        if running == 0:
            break
        best, c1, c2 = leader(tally_order(samples, t))
        fire = best is not None and ((rule == "k" and c1 >= k) or (rule == "lossless" and c1 > c2 + running))
        if fire:
            tokens = sum(min(L, t) for L in lengths)
            counts = tally_order(samples, t)
            return tokens, leader(counts)[0]
    counts = tally_order(samples, max(lengths))
    return sum(lengths), leader(counts)[0]


def main():
    path = sys.argv[1]
    ks = [int(k) for k in sys.argv[2:]] or [3, 4, 5]
    recs = [json.loads(l) for l in open(path) if l.strip()]
    full_tokens = sum(r["tokens_generated"] for r in recs)
    correct_of = lambda r, key: any(s["correct"] for s in r["samples"] if s["key"] == key and key is not None)
    base_acc = sum(r["voted_correct"] for r in recs) / len(recs)
    print(f"full run: {len(recs)} problems, {full_tokens} tokens, maj@8 {100 * base_acc:.1f}%")
    for name, rule, k in [("lossless", "lossless", None)] + [(f"k={k}", "k", k) for k in ks]:
        tokens, same, acc = 0, 0, 0
        for r in recs:
            t, voted = replay(r, rule, k)
            tokens += t
            same += voted == r["voted"]
            acc += correct_of(r, voted)
        print(f"{name:>9}: {100 * (1 - tokens / full_tokens):5.1f}% fewer tokens, same vote {same}/{len(recs)}, "
              f"maj@8 {100 * acc / len(recs):.1f}% ({100 * (acc / len(recs) - base_acc):+.1f} points)")


if __name__ == "__main__":
    main()
