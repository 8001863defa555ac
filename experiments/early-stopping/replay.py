#!/usr/bin/env python3
"""Replays every early-stopping rule on the per-sample record of a full run (eval --out).

The full run (study.sh stage `full`) records, for every sample, its token count, answer key,
correctness, every token's confidence, and an answer probe taken every 32 tokens (with
`agree` 1000 probes never stop a sample): when it was taken (`at`), when its answer was known
(`done`) and the answer. Sample i of a problem is seeded seed + i and decodes the same tokens
whatever the rule (probes run on a copy of its KV sequence; the tests check both), so a sample
a rule stops is a prefix of the full run's sample, and a rule's outcome follows from when each
sample stops and which samples vote. This mirrors rust/generate/group.rs:

- samples advance one token per step together; sample i ends at step L_i (its token count);
- consensus rules look at the votes of the samples finished so far after each step and cut the
  running ones, which then have as many tokens as the step (cut samples do not vote);
- the confidence gate stops a gated sample after token c >= window when the mean confidence
  of its last `window` tokens is below the threshold, unless the sample ends at c anyway (end
  of text, stop string and max_tokens are checked first); a gated-out sample does not vote;
- ESC runs windows of samples one after the other and stops once a window agrees (never after
  the last window);
- probes stop their sample when `agree` probes in a row gave the same answer: the sample ends
  with the `done` tokens of the last probe and votes with its answer; probes every 64 tokens
  are the full run's probes at multiples of 64 (a probe lasts at most 12 < 32 tokens, so the
  full run never skipped one);
- the final vote: samples that ended on their own (the most confident top_percent %, with
  weights) in the order they finished.

Not exact, and counted: a group with no first-class voter falls back, in the engine, to the
votes of its gated-out or cut samples, whose prefix answers the record does not hold (the
replay counts them as no vote; `fallback` says on how many problems that happened); probe
tokens of a rule are estimated as its probes × the problem's mean tokens per probe; wall time
is estimated as the full run's wall time × the rule's share of its tokens (on the CPU a decode
step costs about its batch size); the token scheduler row treats a sample cut by its budget as
no vote (a real run would extract an answer from the cut text).

Usage: replay.py FULL.jsonl [FULL2.jsonl ...] [--budget PRED.jsonl] [--json FILE]
       replay.py FULL.jsonl ... --check REAL.jsonl --rule NAME   (per-problem tokens and votes
       of a real run of one rule against its replay: they must be equal)
"""
import argparse
import json
import math
import struct

WINDOW, TAIL = 32, 64          # confidence.window / tail defaults (params.rs)
ESC_WINDOW = 4
WARMUP, PCT_HIGH, PCT_LOW = 4, 10.0, 90.0
TAU, MIN_VOTES = 0.95, 4


def percentile(xs, p):
    v = sorted(xs)
    if not v:
        return None
    rank = p / 100.0 * (len(v) - 1)
    lo, hi = math.floor(rank), math.ceil(rank)
    return v[lo] + (v[hi] - v[lo]) * (rank - lo)


def windows(conf, w=WINDOW):
    """(lowest window mean, first token count t >= w at which the window mean < thr) helper."""
    means = []
    s = 0.0
    for i, c in enumerate(conf):
        s += c
        if i >= w:
            s -= conf[i - w]
        if i + 1 >= w:
            means.append(s / w)
    return means


def lowest(conf):
    m = windows(conf)
    if m:
        return min(m)
    return sum(conf) / len(conf) if conf else None


def summary(conf, how):
    if not conf:
        return 0.0
    if how == "lowest_window":
        return lowest(conf)
    if how == "tail":
        t = conf[-TAIL:]
        return sum(t) / len(t)
    return sum(conf) / len(conf)


class Tally:
    def __init__(self):
        self.e = {}  # key -> [count, weight]; dict keeps first-appearance order

    def add(self, key, w=1.0):
        e = self.e.setdefault(key, [0, 0.0])
        e[0] += 1
        e[1] += w

    def winner(self):
        best = None
        for k, (c, w) in self.e.items():
            if best is None or w > self.e[best][1]:
                best = k
        return best

    def votes(self):
        return sum(c for c, _ in self.e.values())

    def leader_counts(self):
        best, first, second = None, 0, 0
        for k, (c, _) in self.e.items():
            if c > first:
                best, second, first = k, first, c
            else:
                second = max(second, c)
        return best, first, second

    def share(self):
        tot = sum(w for _, w in self.e.values())
        b = self.winner()
        return (b, self.e[b][1] / tot) if b is not None and tot > 0 else (None, 0.0)


FALLBACK = [0]  # votes that fell back to samples whose prefix answer is not recorded


def final_vote(ballots, weight="none", top_percent=100.0):
    """ballots: list of (key, conf list, first_class) in finishing order."""
    fc = any(b[2] and b[0] is not None for b in ballots)
    if not fc and any(not b[2] for b in ballots):
        FALLBACK[0] += 1
    voters = [b for b in ballots if b[2] == fc and b[0] is not None]
    if top_percent < 100 and voters:
        by = "lowest_window" if weight == "none" else weight
        keep = max(1, math.ceil(len(voters) * top_percent / 100))
        order = sorted(range(len(voters)), key=lambda i: -summary(voters[i][1], by))
        kept = sorted(order[:keep])
        voters = [voters[i] for i in kept]
    t = Tally()
    for k, conf, _ in voters:
        t.add(k, 1.0 if weight == "none" else max(0.0, summary(conf, weight)))
    return t.winner()


def run_parallel(samples, stop_rule=None, gate=None, probe=None, weight="none", top_percent=100.0):
    """All samples start at step 0. Returns (tokens, probe_probes, voted key)."""
    n = len(samples)
    end, reason, answer = [], [], []
    for i, s in enumerate(samples):
        L, a, r = s["tokens"], s["key"], "own"
        if gate is not None and gate[i] is not None:
            conf = s["token_confidence"]
            for t, m in enumerate(windows(conf)):
                if m < gate[i] and t + WINDOW < L:
                    L, a, r = t + WINDOW, None, "low"
                    break
                if m < gate[i] and t + WINDOW == L:
                    # the last token: EOS/stop is checked before the gate
                    break
        if probe:
            hit = probe_stop(s, probe)
            if hit is not None and hit[0] < L:
                L, a, r = hit[0], hit[1], "probe"
        end.append(L)
        reason.append(r)
        answer.append(a)
    probes_taken = 0
    for i, s in enumerate(samples):
        probes_taken += sum(1 for p in s.get("probes", []) if p["at"] < end[i] and p["at"] % probe[0] == 0) if probe else 0
    order = sorted(range(n), key=lambda i: (end[i], i))
    cut_at = None
    if stop_rule is not None:
        t_steps = sorted(set(end))
        for t in t_steps:
            done = [i for i in order if end[i] <= t]
            running = n - len(done)
            if running == 0:
                break
            tally = Tally()
            for i in done:
                if reason[i] != "low" and answer[i] is not None:
                    tally.add(answer[i], 1.0 if weight == "none" else max(0.0, summary(samples[i]["token_confidence"][:end[i]], weight)))
            if stop_rule(tally, running):
                cut_at = t
                break
    ballots, tokens = [], 0
    for i in order:
        if cut_at is not None and end[i] > cut_at:
            tokens += cut_at
            ballots.append((None, [], False))  # the cut text's answer is not recorded
            continue
        tokens += end[i]
        first = reason[i] != "low"
        ballots.append((answer[i], samples[i]["token_confidence"][:end[i]], first))
    return tokens, probes_taken, final_vote(ballots, weight, top_percent)


def run_esc(samples, probe=None, window=ESC_WINDOW):
    n, tokens, ballots, probes_taken = len(samples), 0, [], 0
    for w0 in range(0, n, window):
        win = samples[w0:w0 + window]
        t, p, _ = run_parallel(win, probe=probe)
        tokens += t
        probes_taken += p
        keys = []
        for s in sorted(range(len(win)), key=lambda i: (win[i]["tokens"], i)):
            k = probe_answer(win[s], probe) if probe else win[s]["key"]
            keys.append(k)
            ballots.append((k, [], True))
        if w0 + window < n and keys[0] is not None and all(k == keys[0] for k in keys):
            break
    return tokens, probes_taken, final_vote(ballots)


def probe_stop(s, probe):
    """(tokens, answer) at which `agree` equal probe answers in a row stop sample s, taking
    probes at multiples of `every` (a multiple of the full run's 32) only; None if they never do.
    A probe's answer is known when the sample has `done` tokens: it stops there."""
    every, agree = probe
    run = []
    for p in s.get("probes", []):
        if p["at"] % every:
            continue
        run.append(p)
        last = run[-agree:]
        if len(last) == agree and last[0]["answer"] is not None and all(x["answer"] == last[0]["answer"] for x in last):
            return p["done"], p["answer"]
    return None


def probe_answer(s, probe):
    hit = probe_stop(s, probe)
    if hit is not None and hit[0] < s["tokens"]:
        return hit[1]
    return s["key"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("full")
    ap.add_argument("--check", help="a real run of one rule (eval --out) to compare with its replay")
    ap.add_argument("--rule", help="the rule's name in the table (with --check)")
    ap.add_argument("--budget", action="append", default=[],
                    help="budget cv --predictions file (held-out budgets); repeatable")
    ap.add_argument("--json", help="write the table as JSON")
    ap.add_argument("--markdown", help="write the table as markdown")
    a = ap.parse_args()
    recs = [json.loads(l) for l in open(a.full) if l.strip()]
    recs.sort(key=lambda r: r["index"])
    for r in recs:  # the engine's confidences are f32: read them back as the same values
        for smp in r["samples"]:
            c = smp["token_confidence"]
            smp["token_confidence"] = list(struct.unpack(f"{len(c)}f", struct.pack(f"{len(c)}f", *c)))
    n = len(recs)
    full_tokens = sum(r["tokens_generated"] for r in recs)
    probe_cost = [r["probe_tokens"] / max(1, sum(len(s["probes"]) for s in r["samples"])) for r in recs]

    def correct(r, key):
        if key is None:
            return False
        if any(s["correct"] for s in r["samples"] if s["key"] == key):
            return True
        if any(s["key"] == key for s in r["samples"]):
            return False
        return key == "q:" + r["gold"].strip().replace(",", "")

    # calibration: thresholds from the other half of the problems (a held-out calibration file)
    calib = {0: [], 1: []}
    for r in recs:
        for s in r["samples"]:
            if s["token_confidence"] and s["finish"] in ("eos", "stop", "length"):
                calib[r["index"] % 2].append(lowest(s["token_confidence"]))

    def warm_gate(r, pct):
        lows = [lowest(s["token_confidence"]) for s in r["samples"][:WARMUP] if s["token_confidence"]]
        thr = percentile(lows, pct) if lows else -math.inf
        return [None] * WARMUP + [thr] * (len(r["samples"]) - WARMUP)

    def file_gate(r, pct):
        thr = percentile(calib[1 - r["index"] % 2], pct)
        return [thr] * len(r["samples"])

    lossless = lambda t, running: (lambda b, c1, c2: b is not None and c1 > c2 + running)(*t.leader_counts())
    kofn = lambda k: (lambda t, running: t.leader_counts()[1] >= k)
    weighted = lambda t, running: t.votes() >= MIN_VOTES and t.share()[1] >= TAU

    rules = [
        ("full (no early stopping)", lambda r: run_parallel(r["samples"])),
        ("lossless consensus", lambda r: run_parallel(r["samples"], lossless)),
        ("k-of-n, k = 8", lambda r: run_parallel(r["samples"], kofn(8))),
        ("k-of-n, k = 4", lambda r: run_parallel(r["samples"], kofn(4))),
        ("weighted consensus (count share, tau .95, 4 votes)", lambda r: run_parallel(r["samples"], weighted)),
        ("weighted consensus (lowest-window weights)", lambda r: run_parallel(r["samples"], weighted, weight="lowest_window")),
        ("confidence-weighted vote (lowest window)", lambda r: run_parallel(r["samples"], weight="lowest_window")),
        ("top-10% most confident vote", lambda r: run_parallel(r["samples"], top_percent=10)),
        ("top-50% most confident vote", lambda r: run_parallel(r["samples"], top_percent=50)),
        ("confidence gate, warm-up 4, p10 (DeepConf-high)", lambda r: run_parallel(r["samples"], gate=warm_gate(r, PCT_HIGH))),
        ("confidence gate, warm-up 4, p90 (DeepConf-low)", lambda r: run_parallel(r["samples"], gate=warm_gate(r, PCT_LOW))),
        ("confidence gate, warm-up 4, p50", lambda r: run_parallel(r["samples"], gate=warm_gate(r, 50.0))),
        ("confidence gate, calibration file, p50", lambda r: run_parallel(r["samples"], gate=file_gate(r, 50.0))),
        ("confidence gate, calibration file, p10", lambda r: run_parallel(r["samples"], gate=file_gate(r, PCT_HIGH))),
        ("confidence gate, calibration file, p90", lambda r: run_parallel(r["samples"], gate=file_gate(r, PCT_LOW))),
        ("answer probes, every 32, 3 agree (default)", lambda r: run_parallel(r["samples"], probe=(32, 3))),
        ("answer probes, every 32, 2 agree", lambda r: run_parallel(r["samples"], probe=(32, 2))),
        ("answer probes, every 64, 3 agree", lambda r: run_parallel(r["samples"], probe=(64, 3))),
        ("ESC windows of 4 (default)", lambda r: run_esc(r["samples"])),
        ("ESC windows of 2", lambda r: run_esc(r["samples"], window=2)),
        ("ESC windows of 8", lambda r: run_esc(r["samples"], window=8)),
        ("ESC windows of 4 + probes", lambda r: run_esc(r["samples"], probe=(32, 3))),
        ("probes + lossless consensus", lambda r: run_parallel(r["samples"], lossless, probe=(32, 3))),
        ("probes + weighted consensus", lambda r: run_parallel(r["samples"], weighted, probe=(32, 3))),
        ("confidence gate p10 + weighted consensus", lambda r: run_parallel(r["samples"], weighted, gate=warm_gate(r, PCT_HIGH))),
    ]
    if a.check:
        real = {}
        for l in open(a.check):
            if l.strip():
                x = json.loads(l)
                real[x["index"]] = x
        f = dict(rules)[a.rule]
        bad = 0
        for r in recs:
            x = real.get(r["index"])
            if x is None:
                continue
            t, _, v = f(r)
            ok = t == x["tokens_generated"] and v == x["voted"]
            bad += not ok
            print(f"problem {r['index']}: replay {t} tokens, vote {v}; real {x['tokens_generated']} tokens, "
                  f"vote {x['voted']}{'' if ok else '  <-- differs'}")
        print(f"{len(real)} problems, {bad} differ")
        return
    full_wall = sum(r["wall_seconds"] for r in recs)
    base_votes = [run_parallel(r["samples"])[2] for r in recs]
    same_full = sum(v == r["voted"] for r, v in zip(recs, base_votes))
    print(f"the replayed full run's vote equals the recorded one on {same_full} of {n} problems")
    base_acc = sum(correct(r, v) for r, v in zip(recs, base_votes)) / n
    rows = []
    print(f"{n} problems, N = {len(recs[0]['samples'])}, full run {full_tokens} tokens, maj@16 {100 * base_acc:.1f}%")
    print(f"full run wall time {full_wall:.0f} s (sum over problems)")
    print(f"{'rule':52} {'tokens':>8} {'probe':>7} {'saved':>7} {'saved+probe':>11} {'same':>5} {'maj@16':>7} {'delta':>6} {'wall est':>8} {'fallback':>8}")
    for name, f in rules:
        tok = ptok = same = acc = 0
        FALLBACK[0] = 0
        for r, bv in zip(recs, base_votes):
            t, probes, v = f(r)
            tok += t
            ptok += probes * probe_cost[recs.index(r)] if probes else 0
            same += v == bv
            acc += correct(r, v)
        row = {
            "rule": name, "tokens": tok, "probe_tokens": round(ptok), "saved": 1 - tok / full_tokens,
            "saved_with_probes": 1 - (tok + ptok) / full_tokens, "same_vote": same,
            "maj": acc / n, "delta_points": 100 * (acc / n - base_acc),
            "wall_seconds_est": full_wall * (tok + ptok) / full_tokens, "fallback": FALLBACK[0],
        }
        rows.append(row)
        print(f"{name:52} {tok:8d} {round(ptok):7d} {100 * row['saved']:6.1f}% {100 * row['saved_with_probes']:10.1f}% "
              f"{same:5d} {100 * row['maj']:6.1f}% {row['delta_points']:+6.1f} {row['wall_seconds_est']:7.0f}s {row['fallback']:8d}")
    for bfile in a.budget:
        preds = {json.loads(l)["index"]: json.loads(l) for l in open(bfile) if l.strip()}
        tok = acc = same = 0
        for r, bv in zip(recs, base_votes):
            b = preds[r["index"]]["budget"]
            samples = []
            for s in r["samples"]:
                s2 = dict(s)
                if s["tokens"] > b:  # cut by the budget: no answer (its text is cut too)
                    s2["tokens"], s2["key"] = b, None
                samples.append(s2)
            t, _, v = run_parallel(samples)
            tok += t
            same += v == bv
            acc += correct(r, v)
        label = bfile.rsplit("/", 1)[-1].removesuffix(".jsonl")
        row = {"rule": f"token scheduler ({label}, held-out)", "tokens": tok, "probe_tokens": 0,
               "saved": 1 - tok / full_tokens, "saved_with_probes": 1 - tok / full_tokens, "same_vote": same,
               "maj": acc / n, "delta_points": 100 * (acc / n - base_acc)}
        rows.append(row)
        print(f"{row['rule']:52} {tok:8d} {0:7d} {100 * row['saved']:6.1f}% {100 * row['saved']:10.1f}% "
              f"{same:5d} {100 * row['maj']:6.1f}% {row['delta_points']:+6.1f}")
    if a.markdown:
        with open(a.markdown, "w") as md:
            md.write(f"{n} problems, N = {len(recs[0]['samples'])}; full run: {full_tokens} tokens, maj@16 "
                     f"{100 * base_acc:.1f}%, {full_wall:.0f} s of decoding (sum over problems).\n\n")
            md.write("| rule | tokens | saved | probe tokens (est.) | saved with probes | same vote as full | maj@16 | Δ points | wall (est.) | fallback |\n")
            md.write("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
            for row in rows:
                md.write(f"| {row['rule']} | {row['tokens']} | {100 * row['saved']:.1f}% | {row['probe_tokens']} | "
                         f"{100 * row['saved_with_probes']:.1f}% | {row['same_vote']}/{n} | {100 * row['maj']:.1f}% | "
                         f"{row['delta_points']:+.1f} | {row.get('wall_seconds_est', full_wall * row['tokens'] / full_tokens):.0f} s | "
                         f"{row.get('fallback', 0)} |\n")
    if a.json:
        json.dump({"problems": n, "full_tokens": full_tokens, "full_maj": base_acc, "rules": rows}, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
