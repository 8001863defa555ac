"""Times math-verify 0.9 on (gold, pred) pairs; one JSON line per pair on stdout.

Usage: python mv_bench.py PAIRS.jsonl
Each pair is timed cold (math-verify's small LRU parse caches are cleared first): parse(gold),
parse(pred), verify(gold, pred). Bare answers are wrapped in \\boxed{} so math-verify's LaTeX
extraction sees them; GSM8K golds use the text after '####'. A line with `completion` instead
of `pred` is a raw model output and goes to parse() as it is (math-verify's own extraction).
"""
import json
import sys
import time

from math_verify import parse, verify
from math_verify import parser as mv_parser


def prep(s: str, is_gold: bool) -> str:
    if is_gold and "####" in s:
        s = s.rsplit("####", 1)[1].strip()
    if "\\boxed" in s:
        return s
    return "\\boxed{" + s + "}"


def main() -> None:
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        lines = [l for l in f if l.strip()]
    for i, line in enumerate(lines):
        d = json.loads(line)
        gold = d.get("gold", "")
        raw = d.get("completion")
        pred = raw if raw is not None else d.get("pred", "")
        mv_parser.parse_latex_cached.cache_clear()
        mv_parser.parse_expr_cached.cache_clear()
        t0 = time.perf_counter_ns()
        target = gold_parsed = None
        try:
            target = parse(pred) if raw is not None else parse(prep(pred, False))
            gold_parsed = parse(prep(gold, True))
            ok = bool(verify(gold_parsed, target)) if pred.strip() else False
        except Exception:  # math-verify errors count as "not equivalent"
            ok = False
        ns = time.perf_counter_ns() - t0
        parsed = f"gold={str(gold_parsed)[:120]} pred={str(target)[:120]}"
        print(json.dumps({"i": i, "equivalent": ok, "ns": ns, "parsed": parsed}), flush=True)


if __name__ == "__main__":
    main()
