#!/usr/bin/env python3
"""Where GRPO's length pressure lands: replays logged rollouts under other reward settings.

For each setting, the rewards of the logged completions are rebuilt from their logged components
(format, cosine, Kimi length, correctness), turned into group-scaled advantages as the trainer
does (`(r - mean) / (std + 1e-4)` per group), and summarised per completion as
  length pressure = mean of advantage x (length - group mean length), split by correct / wrong
  accuracy pressure = mean of advantage x (correct - group mean correct)
Negative length pressure favours shorter completions. With Adam the ratio of the two matters
more than their size. Standard library only.

Usage: advantage_pressure.py ROLLOUTS.jsonl [--max-step N]
"""

import argparse
import collections
import json
import statistics

# (label, length weight, zero advantages of groups with no correct answer, length term for
# correct answers only)
SETTINGS = [
    ("paper rewards, group scaling", 1.0, False, False),
    ("skip_unsolved_groups", 1.0, True, False),
    ("skip_unsolved_groups, length weight 3", 3.0, True, False),
    ("skip_unsolved_groups, length_only_correct, length weight 3", 3.0, True, True),
    ("skip_unsolved_groups, length_only_correct, length weight 4", 4.0, True, True),
]


def pressures(groups, length_weight, skip_unsolved, only_correct):
    on_correct = on_wrong = on_accuracy = 0.0
    n = 0
    for g in groups:
        rewards = []
        for r in g:
            length = r["reward_length"] if (r["correct"] or not only_correct) else 0.0
            rewards.append(r["reward_format"] + r["reward_cosine"] + length_weight * length)
        mean, std = statistics.mean(rewards), statistics.pstdev(rewards)
        adv = [(x - mean) / (std + 1e-4) for x in rewards]
        if skip_unsolved and not any(r["correct"] for r in g):
            adv = [0.0] * len(g)
        lens = [len(r["completion_tokens"]) for r in g]
        ok = [1.0 if r["correct"] else 0.0 for r in g]
        mean_len, mean_ok = statistics.mean(lens), statistics.mean(ok)
        for a, length, c in zip(adv, lens, ok):
            if c:
                on_correct += a * (length - mean_len)
            else:
                on_wrong += a * (length - mean_len)
            on_accuracy += a * (c - mean_ok)
        n += len(g)
    return on_correct / n, on_wrong / n, on_accuracy / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rollouts")
    ap.add_argument("--max-step", type=int, default=10)
    args = ap.parse_args()
    groups = collections.defaultdict(list)
    with open(args.rollouts) as f:
        for line in f:
            r = json.loads(line)
            if r["step"] <= args.max_step:
                groups[(r["step"], r["group"])].append(r)
    print(f"{len(groups)} groups from steps 1-{args.max_step} of {args.rollouts}")
    print(f"{'setting':62} {'len|correct':>11} {'len|wrong':>10} {'accuracy':>9}")
    for label, w, skip, only in SETTINGS:
        c, wr, acc = pressures(groups.values(), w, skip, only)
        print(f"{label:62} {c:11.2f} {wr:10.2f} {acc:9.3f}")


if __name__ == "__main__":
    main()
