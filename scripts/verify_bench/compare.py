"""Merges the per-pair outputs of verify_bench (ours) and mv_bench.py (math-verify).

Usage: python compare.py PAIRS.jsonl OURS.jsonl MV.jsonl [-v]
Prints the median and p99 time per pair for both, the speed ratio, the agreement rate, and
every disagreement (with the expected label when the pairs file has one; with -v also what each
verifier read: our normalized gold/prediction, math-verify's parsed gold/prediction).
"""
import json
import statistics
import sys


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def percentile(xs, q):
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[k]


def main() -> None:
    pairs, ours, mv = (load(p) for p in sys.argv[1:4])
    verbose = "-v" in sys.argv[4:]
    ours = {r["i"]: r for r in ours}
    mv = {r["i"]: r for r in mv}
    idx = [i for i in range(len(pairs)) if i in ours and i in mv]
    if not idx:
        print("no pairs")
        return
    t_ours = statistics.median(ours[i]["ns"] for i in idx)
    t_mv = statistics.median(mv[i]["ns"] for i in idx)
    p99_ours = percentile([ours[i]["ns"] for i in idx], 99)
    p99_mv = percentile([mv[i]["ns"] for i in idx], 99)
    agree = [i for i in idx if ours[i]["equivalent"] == mv[i]["equivalent"]]
    print(f"pairs: {len(idx)}")
    print(f"median time per pair: ours {t_ours / 1e3:.2f} us, math-verify {t_mv / 1e3:.2f} us")
    print(f"speed ratio (math-verify / ours): {t_mv / max(t_ours, 1):.0f}x")
    print(f"p99 time per pair: ours {p99_ours / 1e3:.2f} us, math-verify {p99_mv / 1e3:.2f} us "
          f"(ratio {p99_mv / max(p99_ours, 1):.0f}x)")
    print(f"max time per pair: ours {max(ours[i]['ns'] for i in idx) / 1e3:.1f} us, "
          f"math-verify {max(mv[i]['ns'] for i in idx) / 1e6:.1f} ms")
    print(f"agreement: {len(agree)}/{len(idx)} = {100.0 * len(agree) / len(idx):.1f}%")
    labeled = [i for i in idx if "expected" in pairs[i]]
    if labeled:
        acc_o = sum(ours[i]["equivalent"] == pairs[i]["expected"] for i in labeled)
        acc_m = sum(mv[i]["equivalent"] == pairs[i]["expected"] for i in labeled)
        print(f"match with labels: ours {acc_o}/{len(labeled)}, math-verify {acc_m}/{len(labeled)}")
    dis = [i for i in idx if i not in set(agree)]
    if dis:
        print("disagreements (i | gold | pred | ours | math-verify | expected):")
    for i in dis:
        p = pairs[i]
        pred = p.get("pred") if "completion" not in p else "…" + p["completion"][-80:]
        print(f"  {i} | {p.get('gold')!r} | {pred!r} | {ours[i]['equivalent']} "
              f"(reason {ours[i].get('reason')}) | {mv[i]['equivalent']} | {p.get('expected', '?')}")
        if verbose:
            print(f"      ours: {ours[i].get('detail', '')}")
            print(f"      math-verify: {mv[i].get('parsed', '')}")


if __name__ == "__main__":
    main()
