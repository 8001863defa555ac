"""Builds benchmark pair files from the project's data sets (no model needed).

Usage: python make_pairs.py DATA_DIR OUT_DIR
Writes OUT_DIR/math500_variants.jsonl (each MATH-500 gold against rewritten but equal forms,
expected true) and OUT_DIR/math500_cross.jsonl (each gold against another problem's gold; no
label). Model outputs are better: feed them to verify_bench.sh as {"gold", "pred"} lines.
"""
import json
import os
import re
import sys


def variants(a: str) -> set[str]:
    vs = {
        a.replace("\\frac", "\\dfrac"),
        a.replace("\\left", "").replace("\\right", ""),
        "$" + a + "$",
        re.sub(r"\\text\{([^}]*)\}", r"\1", a),
        a.replace(", ", ",").replace(",", ", ") if not re.fullmatch(r"[\d,\\!$ ]+", a) else a,
        a.replace("^\\circ", ""),
    }
    vs.discard(a)
    return vs


def main() -> None:
    data, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(data, "math500.jsonl"), encoding="utf-8") as f:
        golds = [json.loads(l)["answer"] for l in f if l.strip()]
    with open(os.path.join(out, "math500_variants.jsonl"), "w", encoding="utf-8") as f:
        for a in golds:
            for v in sorted(variants(a)):
                f.write(json.dumps({"gold": a, "pred": v, "expected": True}) + "\n")
    with open(os.path.join(out, "math500_cross.jsonl"), "w", encoding="utf-8") as f:
        for i, a in enumerate(golds):
            f.write(json.dumps({"gold": a, "pred": golds[(i + 7) % len(golds)]}) + "\n")


if __name__ == "__main__":
    main()
