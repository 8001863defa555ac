#!/usr/bin/env python3
"""Generate JSONL data sets for a two-stage SFT -> GRPO experiment.

Outputs (in --out DIR):
  sft_train.jsonl, sft_val.jsonl  {"problem", "solution", "answer"}
      mix of rewritten short GSM8K rows and generated word problems;
      sft_val holds 64 rows of the same shuffled mix.
  grpo_train.jsonl                {"problem", "answer"}   generated only
  heldout.jsonl                   {"problem", "answer"}   generated, separate
      seed stream, disjoint (by problem text) from all SFT and GRPO problems.
  validation.jsonl                {"problem", "answer"}   generated, its own seed
      stream, disjoint from all of the above: for choosing among checkpoints
      without looking at heldout.jsonl.

With --verbosity varied, each SFT solution carries 0-3 self-verification lines
(drawn from a separate seed stream, so problems, GRPO and held-out rows are the
same as with --verbosity plain): the redundant re-checking that long reasoning
traces carry and that the GRPO stage's length rewards are meant to trim.

Standard library only; output is a pure function of the arguments.
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile

SFT_VAL_ROWS = 64
MAX_VALUE = 200
MAX_PROBLEM_WORDS = 40
MAX_SOLUTION_WORDS = 80
MAX_GSM8K_PROBLEM_WORDS = 50  # preferred, not enforced
OPENER = "Let's solve this step by step."

# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------

PEOPLE = [
    ("Mia", "she", "her"), ("Emma", "she", "her"), ("Ava", "she", "her"),
    ("Lily", "she", "her"), ("Sofia", "she", "her"), ("Zoe", "she", "her"),
    ("Nora", "she", "her"), ("Grace", "she", "her"), ("Chloe", "she", "her"),
    ("Ella", "she", "her"), ("Liam", "he", "his"), ("Noah", "he", "his"),
    ("Ethan", "he", "his"), ("Leo", "he", "his"), ("Jack", "he", "his"),
    ("Owen", "he", "his"), ("Sam", "he", "his"), ("Ben", "he", "his"),
    ("Max", "he", "his"), ("Lucas", "he", "his"),
]
OBJECTS = [
    "apples", "marbles", "stickers", "books", "pencils", "cookies", "cards",
    "shells", "stamps", "balloons", "crayons", "toy cars", "beads", "oranges",
]
CONTAINERS = [("box", "boxes"), ("bag", "bags"), ("basket", "baskets"),
              ("jar", "jars"), ("pack", "packs"), ("tray", "trays")]
ITEMS = [("notebook", "notebooks"), ("pen", "pens"), ("sandwich", "sandwiches"),
         ("ticket", "tickets"), ("toy", "toys"), ("cup of juice", "cups of juice")]
RELATIVES = ["friend", "brother", "sister", "cousin", "neighbor", "classmate"]
GAIN_VERBS = [("buys", "buying"), ("finds", "finding"), ("gets", "getting"),
              ("wins", "winning")]
LOSS_VERBS = [("loses", "losing"), ("sells", "selling"), ("uses", "using"),
              ("trades away", "trading away")]
DAY_PAIRS = [("Monday", "Tuesday"), ("Saturday", "Sunday"),
             ("Wednesday", "Thursday"), ("Friday", "Saturday")]

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b,
       "*": lambda a, b: a * b, "/": lambda a, b: a // b}
INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}


class Reject(Exception):
    """Raised when sampled numbers violate the constraints; resample."""


def step(text, a, op, b, unit=""):
    """One arithmetic step; checks integrality and range."""
    if op == "/" and (b == 0 or a % b):
        raise Reject()
    r = OPS[op](a, b)
    if r < 0 or r > MAX_VALUE:
        raise Reject()
    return {"text": text, "a": a, "op": op, "b": b, "r": r, "unit": unit}


def people(rng, k):
    return rng.sample(PEOPLE, k)


def cap(s):
    return s[0].upper() + s[1:]


# ---------------------------------------------------------------------------
# Templates: each returns (problem, facts, steps). The final answer is the
# result of the last step. `formula` recomputes the answer from the integers
# in the problem text, in order, for the self-test.
# ---------------------------------------------------------------------------

def t_gain(rng):
    (n, p, _), = people(rng, 1)
    obj = rng.choice(OBJECTS)
    verb, ving = rng.choice(GAIN_VERBS)
    a, b = rng.randint(2, 120), rng.randint(1, 80)
    prob = f"{n} has {a} {obj}. {cap(p)} {verb} {b} more. How many {obj} does {n} have now?"
    facts = f"{n} starts with {a} {obj} and {verb} {b} more."
    return prob, facts, [step(f"After {ving} more, {n} has", a, "+", b, f" {obj}")]


def t_give(rng):
    (n, p, poss), = people(rng, 1)
    obj, rel = rng.choice(OBJECTS), rng.choice(RELATIVES)
    a = rng.randint(5, 150)
    b = rng.randint(1, a)
    prob = f"{n} has {a} {obj}. {cap(p)} gives {b} of them to {poss} {rel}. How many {obj} does {n} have left?"
    facts = f"{n} has {a} {obj} and gives {b} away."
    return prob, facts, [step(f"{n} has", a, "-", b, f" {obj} left")]


def t_groups(rng):
    (n, _, _), = people(rng, 1)
    obj = rng.choice(OBJECTS)
    _, conts = rng.choice(CONTAINERS)
    a, b = rng.randint(2, 12), rng.randint(2, 15)
    prob = f"{n} has {a} {conts} with {b} {obj} in each. How many {obj} does {n} have in total?"
    facts = f"There are {a} {conts} and each holds {b} {obj}."
    return prob, facts, [step("In total there are", a, "*", b, f" {obj}")]


def t_share(rng):
    (n, _, _), = people(rng, 1)
    obj = rng.choice(OBJECTS)
    b, q = rng.randint(2, 10), rng.randint(1, 20)
    a = b * q
    prob = f"{n} shares {a} {obj} equally among {b} friends. How many {obj} does each friend get?"
    facts = f"{a} {obj} are split equally among {b} friends."
    return prob, facts, [step("Each friend gets", a, "/", b, f" {obj}")]


def t_together(rng):
    (n, _, _), (m, _, _) = people(rng, 2)
    obj = rng.choice(OBJECTS)
    a, b = rng.randint(1, 100), rng.randint(1, 100)
    prob = f"{n} has {a} {obj} and {m} has {b} {obj}. How many {obj} do they have together?"
    facts = f"{n} has {a} {obj} and {m} has {b} {obj}."
    return prob, facts, [step("Together they have", a, "+", b, f" {obj}")]


def t_compare(rng):
    (n, _, _), (m, _, _) = people(rng, 2)
    obj = rng.choice(OBJECTS)
    a = rng.randint(10, 150)
    b = rng.randint(1, a - 1)
    prob = f"{n} has {a} {obj}. {m} has {b} {obj}. How many more {obj} does {n} have than {m}?"
    facts = f"{n} has {a} {obj} and {m} has {b} {obj}."
    return prob, facts, [step(f"{n} has", a, "-", b, f" more {obj} than {m}")]


def t_rate(rng):
    (n, p, _), = people(rng, 1)
    a, b = rng.randint(2, 20), rng.randint(2, 10)
    thing, verb, base = rng.choice([("pages", "reads", "read"), ("laps", "swims", "swim"),
                                    ("push-ups", "does", "do"), ("words", "writes", "write")])
    prob = f"{n} {verb} {a} {thing} every day. How many {thing} does {p} {base} in {b} days?"
    facts = f"{n} {verb} {a} {thing} a day for {b} days."
    return prob, facts, [step(f"In {b} days {n} {verb}", a, "*", b, f" {thing}")]


def t_pack(rng):
    (n, _, _), = people(rng, 1)
    obj = rng.choice(OBJECTS)
    cont, conts = rng.choice(CONTAINERS)
    b, q = rng.randint(2, 12), rng.randint(1, 15)
    a = b * q
    prob = f"{n} puts {a} {obj} into {conts}, with {b} {obj} in each {cont}. How many {conts} does {n} fill?"
    facts = f"{a} {obj} go into {conts} of {b} each."
    return prob, facts, [step(f"{n} fills", a, "/", b, f" {conts}")]


def t_lose(rng):
    (n, p, _), = people(rng, 1)
    obj = rng.choice(OBJECTS)
    verb, _ = rng.choice(LOSS_VERBS)
    a = rng.randint(5, 150)
    b = rng.randint(1, a)
    prob = f"{n} had {a} {obj}. Then {p} {verb} {b} of them. How many {obj} does {n} have now?"
    facts = f"{n} had {a} {obj} and {verb} {b}."
    return prob, facts, [step(f"Now {n} has", a, "-", b, f" {obj}")]


def t_save(rng):
    (n, _, _), = people(rng, 1)
    a, b = rng.randint(1, 100), rng.randint(1, 100)
    prob = f"{n} saved {a} dollars last week and {b} dollars this week. How many dollars did {n} save in total?"
    facts = f"{n} saved {a} dollars and then {b} dollars."
    return prob, facts, [step(f"{n} saved", a, "+", b, " dollars in total")]


def t_gain_give(rng):
    (n, p, poss), = people(rng, 1)
    obj, rel = rng.choice(OBJECTS), rng.choice(RELATIVES)
    verb, ving = rng.choice(GAIN_VERBS)
    a, b = rng.randint(2, 100), rng.randint(1, 60)
    c = rng.randint(1, a + b)
    prob = (f"{n} has {a} {obj}. {cap(p)} {verb} {b} more and gives {c} to {poss} {rel}. "
            f"How many {obj} does {n} have now?")
    facts = f"{n} starts with {a} {obj}, {verb} {b} more, and gives away {c}."
    return prob, facts, [step(f"After {ving} more, {n} has", a, "+", b, f" {obj}"),
                         step(f"After giving {c} away, {n} has", a + b, "-", c, f" {obj}")]


def t_groups_plus(rng):
    (n, _, _), = people(rng, 1)
    obj = rng.choice(OBJECTS)
    _, conts = rng.choice(CONTAINERS)
    a, b, c = rng.randint(2, 10), rng.randint(2, 12), rng.randint(1, 30)
    prob = f"{n} has {a} {conts} with {b} {obj} in each, and {c} more {obj} on the table. How many {obj} does {n} have in total?"
    facts = f"There are {a} {conts} of {b} {obj} plus {c} extra {obj}."
    return prob, facts, [step(f"The {conts} hold", a, "*", b, f" {obj}"),
                         step("Adding the extra ones gives", a * b, "+", c, f" {obj}")]


def t_groups_minus(rng):
    (n, p, _), = people(rng, 1)
    obj = rng.choice(OBJECTS)
    a, b = rng.randint(2, 10), rng.randint(2, 12)
    c = rng.randint(1, a * b)
    prob = f"{n} buys {a} packs of {obj} with {b} in each pack. {cap(p)} uses {c} of them. How many {obj} are left?"
    facts = f"{n} buys {a} packs of {b} {obj} and uses {c}."
    return prob, facts, [step(f"{n} buys", a, "*", b, f" {obj}"),
                         step("After using some, there are", a * b, "-", c, f" {obj} left")]


def t_pool_share(rng):
    (n, _, _), (m, _, _) = people(rng, 2)
    obj = rng.choice(OBJECTS)
    c, q = rng.randint(2, 8), rng.randint(1, 15)
    total = c * q
    if total < 2:
        raise Reject()
    a = rng.randint(1, total - 1)
    b = total - a
    prob = (f"{n} has {a} {obj} and {m} has {b} {obj}. They put them together and share them "
            f"equally among {c} children. How many {obj} does each child get?")
    facts = f"{n} has {a} {obj}, {m} has {b}, and {c} children share them."
    return prob, facts, [step("Together they have", a, "+", b, f" {obj}"),
                         step("Each child gets", a + b, "/", c, f" {obj}")]


def t_change(rng):
    (n, _, _), = people(rng, 1)
    item, items = rng.choice(ITEMS)
    a, b = rng.randint(1, 15), rng.randint(2, 8)
    c = rng.choice([20, 50, 100, 200])
    if a * b > c:
        raise Reject()
    prob = f"One {item} costs {a} dollars. {n} buys {b} {items} and pays with {c} dollars. How much change does {n} get?"
    facts = f"Each {item} costs {a} dollars, {n} buys {b}, and pays {c} dollars."
    return prob, facts, [step(f"The {items} cost", a, "*", b, " dollars"),
                         step("The change is", c, "-", a * b, " dollars")]


def t_more_than(rng):
    (n, _, _), (m, _, _) = people(rng, 2)
    obj = rng.choice(OBJECTS)
    a, b = rng.randint(1, 80), rng.randint(1, 40)
    prob = f"{n} has {a} {obj}. {m} has {b} more {obj} than {n}. How many {obj} do they have together?"
    facts = f"{n} has {a} {obj} and {m} has {b} more than that."
    return prob, facts, [step(f"{m} has", a, "+", b, f" {obj}"),
                         step("Together they have", a, "+", a + b, f" {obj}")]


def t_twice(rng):
    (n, _, _), = people(rng, 1)
    obj = rng.choice(OBJECTS)
    d1, d2 = rng.choice(DAY_PAIRS)
    a = rng.randint(1, 60)
    prob = f"{n} collected {a} {obj} on {d1} and twice as many on {d2}. How many {obj} did {n} collect on both days?"
    facts = f"{n} collected {a} {obj} on {d1} and twice that on {d2}."
    return prob, facts, [step(f"On {d2} {n} collected", a, "*", 2, f" {obj}"),
                         step("On both days that is", a, "+", 2 * a, f" {obj}")]


def t_split_add(rng):
    (n, p, _), = people(rng, 1)
    obj = rng.choice(OBJECTS)
    cont, conts = rng.choice(CONTAINERS)
    b, q, c = rng.randint(2, 8), rng.randint(1, 15), rng.randint(1, 20)
    a = b * q
    prob = (f"{n} splits {a} {obj} equally into {b} {conts}. Then {p} adds {c} more {obj} "
            f"to each {cont}. How many {obj} are in each {cont} now?")
    facts = f"{a} {obj} go into {b} {conts}, then {c} more go into each {cont}."
    return prob, facts, [step(f"Each {cont} first gets", a, "/", b, f" {obj}"),
                         step(f"Now each {cont} has", q, "+", c, f" {obj}")]


def t_absent(rng):
    obj = rng.choice(OBJECTS)
    a = rng.randint(10, 35)
    b = rng.randint(1, a - 1)
    c = rng.randint(2, 6)
    prob = (f"There are {a} students in a class and {b} of them are absent today. "
            f"The teacher gives each student who is present {c} {obj}. How many {obj} does the teacher give out?")
    facts = f"The class has {a} students, {b} are absent, and each present student gets {c} {obj}."
    return prob, facts, [step("The students present are", a, "-", b, ""),
                         step("The teacher gives out", a - b, "*", c, f" {obj}")]


def t_wage(rng):
    (n, p, _), = people(rng, 1)
    d1, d2 = rng.choice(DAY_PAIRS)
    a, b, c = rng.randint(2, 15), rng.randint(1, 6), rng.randint(1, 6)
    prob = (f"{n} earns {a} dollars per hour. {cap(p)} works {b} hours on {d1} and {c} hours "
            f"on {d2}. How many dollars does {n} earn in total?")
    facts = f"{n} earns {a} dollars an hour and works {b} hours and then {c} hours."
    return prob, facts, [step(f"{n} works", b, "+", c, " hours"),
                         step(f"{n} earns", a, "*", b + c, " dollars")]


# (name, function, formula over the integers in the problem text, in order)
ONE_STEP = [
    ("gain", t_gain, lambda a, b: a + b),
    ("give", t_give, lambda a, b: a - b),
    ("groups", t_groups, lambda a, b: a * b),
    ("share", t_share, lambda a, b: a // b),
    ("together", t_together, lambda a, b: a + b),
    ("compare", t_compare, lambda a, b: a - b),
    ("rate", t_rate, lambda a, b: a * b),
    ("pack", t_pack, lambda a, b: a // b),
    ("lose", t_lose, lambda a, b: a - b),
    ("save", t_save, lambda a, b: a + b),
]
TWO_STEP = [
    ("gain_give", t_gain_give, lambda a, b, c: a + b - c),
    ("groups_plus", t_groups_plus, lambda a, b, c: a * b + c),
    ("groups_minus", t_groups_minus, lambda a, b, c: a * b - c),
    ("pool_share", t_pool_share, lambda a, b, c: (a + b) // c),
    ("change", t_change, lambda a, b, c: c - a * b),
    ("more_than", t_more_than, lambda a, b: a + a + b),
    ("twice", t_twice, lambda a: 3 * a),
    ("split_add", t_split_add, lambda a, b, c: a // b + c),
    ("absent", t_absent, lambda a, b, c: (a - b) * c),
    ("wage", t_wage, lambda a, b, c: a * (b + c)),
]
FORMULAS = {name: f for name, _, f in ONE_STEP + TWO_STEP}


def step_line(s):
    return f"{s['text']} {s['a']} {s['op']} {s['b']} = {s['r']}{s['unit']}."


def inverse_check(s):
    """The plain style's check: undo the step with its second operand (r inv b = a)."""
    inv = INVERSE[s["op"]]
    return f"Check: {s['r']} {inv} {s['b']} = {OPS[inv](s['r'], s['b'])}."


def other_operand_check(s):
    """Recover the second operand from the result (r - a = b, r / a = b, a - r = b, a / r = b)."""
    a, op, r = s["a"], s["op"], s["r"]
    if op == "+":
        return f"Check: {r} - {a} = {r - a}."
    if op == "*":
        return f"Check: {r} / {a} = {r // a}." if a else None
    if op == "-":
        return f"Check: {a} - {r} = {a - r}."
    return f"Check: {a} / {r} = {a // r}." if r else None


def recompute_check(s):
    return f"Let me verify: {s['a']} {s['op']} {s['b']} = {s['r']}."


def verification_lines(steps):
    """Every verification line for `steps`; the first is the plain style's check."""
    last = steps[-1]
    rest = [other_operand_check(last), recompute_check(last)]
    for s in reversed(steps[:-1]):
        rest += [inverse_check(s), other_operand_check(s), recompute_check(s)]
    return [inverse_check(last)] + [ln for ln in rest if ln]


# How many verification lines a --verbosity varied solution carries: 0..3.
VERIFICATION_COUNTS = [0, 1, 2, 3]
VERIFICATION_WEIGHTS = [0.2, 0.3, 0.3, 0.2]


def pick_verification(rng, candidates):
    """The plain check first (when any is kept), then others in random order."""
    k = rng.choices(VERIFICATION_COUNTS, VERIFICATION_WEIGHTS)[0]
    if k == 0 or not candidates:
        return []
    others = candidates[1:]
    rng.shuffle(others)
    return ([candidates[0]] + others)[:k]


def render_solution(facts, steps, checks=None):
    """Opener, facts, one line per step, the checks (default: the plain one), boxed answer."""
    last = steps[-1]
    if checks is None:
        checks = [inverse_check(last)]
    lines = [OPENER, facts] + [step_line(s) for s in steps] + checks
    lines += [f"So the answer is \\boxed{{{last['r']}}}."]
    return "\n".join(lines)


def gen_problem(rng, two_step):
    """Sample one problem; returns a dict with problem/solution/answer/template."""
    name, fn, _ = rng.choice(TWO_STEP if two_step else ONE_STEP)
    while True:
        try:
            prob, facts, steps = fn(rng)
        except Reject:
            continue
        return {"template": name, "problem": prob,
                "solution": render_solution(facts, steps),
                "answer": str(steps[-1]["r"]), "facts": facts, "steps": steps}


def gen_unique(rng, n, exclude, start_parity=0):
    """n problems with distinct texts, none in `exclude`; half one-step, half two-step."""
    out, seen = [], set(exclude)
    i = start_parity
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * (n + 10):
            sys.exit(f"could not generate {n} distinct problems")
        p = gen_problem(rng, two_step=bool(i % 2))
        if p["problem"] in seen:
            continue
        seen.add(p["problem"])
        out.append(p)
        i += 1
    return out


# ---------------------------------------------------------------------------
# GSM8K rewriting
# ---------------------------------------------------------------------------

ANNOT_RE = re.compile(r"<<([^<>]*)>>")


def rewrite_gsm8k(row):
    """Returns (record, tier) or None; lower tier = preferred."""
    lines = [ln.strip() for ln in row["answer"].strip().split("\n")]
    if not lines or not lines[-1].startswith("####"):
        return None
    answer = lines[-1][4:].strip().replace(",", "")
    if not re.fullmatch(r"-?\d+(\.\d+)?", answer):
        return None
    body = [ln for ln in lines[:-1] if ln]
    # Last calculator annotation that actually computes something ("a op b=c").
    annots = [a for a in ANNOT_RE.findall(row["answer"])
              if "=" in a and re.search(r"\d\s*[-+*/x]\s*\(?\d", a.rsplit("=", 1)[0])]
    if not body or not annots:
        return None
    expr, res = annots[-1].rsplit("=", 1)
    clean = [re.sub(r"\s+", " ", ANNOT_RE.sub("", ln)).strip() for ln in body]
    # Verification lines: the plain style's check (first), then for --verbosity varied every
    # other annotation recomputed, last first.
    checks = [f"Check: {expr.strip()} = {res.strip()}."]
    checks += [f"Let me verify: {e.strip()} = {r.strip()}."
               for e, r in (a.rsplit("=", 1) for a in reversed(annots[:-1]))]
    solution = gsm8k_solution(clean, checks[:1], answer)
    problem = re.sub(r"\s+", " ", row["question"]).strip()
    short = len(body) <= 3
    consistent = res.strip().replace(",", "") == answer
    fits = (len(solution.split()) <= MAX_SOLUTION_WORDS
            and len(problem.split()) <= MAX_GSM8K_PROBLEM_WORDS)
    tier = (0 if short else 1) * 2 + (0 if consistent and fits else 1)
    return {"problem": problem, "solution": solution, "answer": answer,
            "body": clean, "checks": checks}, tier


def gsm8k_solution(body, checks, answer):
    return "\n".join([OPENER] + body + checks + [f"So the answer is \\boxed{{{answer}}}."])


def load_gsm8k(path, n, rng):
    tiers = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            got = rewrite_gsm8k(json.loads(line))
            if got:
                tiers.setdefault(got[1], []).append(got[0])
    chosen = []
    for t in sorted(tiers):
        need = n - len(chosen)
        if need <= 0:
            break
        pool = tiers[t]
        chosen += rng.sample(pool, min(need, len(pool)))
    if len(chosen) < n:
        sys.exit(f"only {len(chosen)} usable GSM8K rows, need {n}")
    return chosen


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def build(args):
    """Returns {filename: list of rows}, plus internal records for the self-test."""
    rng_gsm = random.Random(f"gsm8k:{args.seed}")
    rng_train = random.Random(f"train:{args.seed}")
    rng_mix = random.Random(f"mix:{args.seed}")
    rng_held = random.Random(f"heldout:{args.seed}")

    gsm = load_gsm8k(args.gsm8k_train, args.n_sft_gsm8k, rng_gsm)
    gen = gen_unique(rng_train, args.n_sft_gen + args.n_grpo, exclude=())
    sft_gen, grpo = gen[:args.n_sft_gen], gen[args.n_sft_gen:]
    used = {r["problem"] for r in gsm} | {r["problem"] for r in gen}
    held = gen_unique(rng_held, args.n_heldout, exclude=used)
    rng_val = random.Random(f"validation:{args.seed}")
    val = gen_unique(rng_val, args.n_validation, exclude=used | {r["problem"] for r in held})

    solutions = [r["solution"] for r in gsm + sft_gen]
    if args.verbosity == "varied":
        rng_verb = random.Random(f"verbosity:{args.seed}")
        solutions = [gsm8k_solution(r["body"], pick_verification(rng_verb, r["checks"]), r["answer"])
                     for r in gsm]
        solutions += [render_solution(r["facts"], r["steps"],
                                      pick_verification(rng_verb, verification_lines(r["steps"])))
                      for r in sft_gen]
    mix = [dict(problem=r["problem"], solution=sol, answer=r["answer"])
           for r, sol in zip(gsm + sft_gen, solutions)]
    rng_mix.shuffle(mix)
    files = {
        "sft_val.jsonl": mix[:SFT_VAL_ROWS],
        "sft_train.jsonl": mix[SFT_VAL_ROWS:],
        "grpo_train.jsonl": [dict(problem=r["problem"], answer=r["answer"]) for r in grpo],
        "heldout.jsonl": [dict(problem=r["problem"], answer=r["answer"]) for r in held],
        "validation.jsonl": [dict(problem=r["problem"], answer=r["answer"]) for r in val],
    }
    return files, {"gsm": gsm, "sft_gen": sft_gen, "grpo": grpo, "held": held, "val": val}


def write_files(files, out):
    os.makedirs(out, exist_ok=True)
    for name, rows in files.items():
        with open(os.path.join(out, name), "w", encoding="utf-8", newline="\n") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


STEP_RE = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")


def wrong_arithmetic(solution):
    """The `a op b = r` equations in `solution` that are false (or divide unevenly), as text."""
    wrong = []
    for a, op, b, res in STEP_RE.findall(solution):
        a, b, res = int(a), int(b), int(res)
        if (op == "/" and (b == 0 or a % b)) or OPS[op](a, b) != res:
            wrong.append(f"{a} {op} {b} = {res}")
    return wrong


def self_test(args):
    files, rec = build(args)
    errors = []

    def err(msg):
        if len(errors) < 20:
            errors.append(msg)

    generated = rec["sft_gen"] + rec["grpo"] + rec["held"] + rec["val"]
    counts = {}
    for r in generated:
        counts[r["template"]] = counts.get(r["template"], 0) + 1
        nums = [int(x) for x in re.findall(r"\d+", r["problem"])]
        try:
            expect = FORMULAS[r["template"]](*nums)
        except TypeError:
            err(f"bad number count: {r['problem']}")
            continue
        if str(expect) != r["answer"]:
            err(f"answer {r['answer']} != recomputed {expect}: {r['problem']}")
        if not 0 <= expect <= MAX_VALUE:
            err(f"answer out of range: {r['problem']}")
        if not STEP_RE.search(r["solution"]):
            err(f"no arithmetic in solution: {r['solution']}")
        for eq in wrong_arithmetic(r["solution"]):
            err(f"wrong step {eq}: {r['problem']}")
        if not r["solution"].endswith(f"\\boxed{{{r['answer']}}}."):
            err(f"boxed answer mismatch: {r['problem']}")
        if len(r["problem"].split()) > MAX_PROBLEM_WORDS:
            err(f"problem too long ({len(r['problem'].split())} words): {r['problem']}")
        if len(r["solution"].split()) > MAX_SOLUTION_WORDS:
            err(f"solution too long: {r['solution']}")
    for r in rec["gsm"]:
        if "<<" in r["solution"] or not r["solution"].endswith(f"\\boxed{{{r['answer']}}}."):
            err(f"bad GSM8K rewrite: {r['solution']}")

    # Every SFT solution as written (plain or varied): opener first, answer boxed last, and the
    # arithmetic right (only in generated rows: GSM8K lines chain several operations).
    n_checks = {}
    generated_sft = {r["problem"] for r in rec["sft_gen"]}
    for name in ("sft_train.jsonl", "sft_val.jsonl"):
        for r in files[name]:
            sol = r["solution"]
            if not sol.startswith(OPENER) or not sol.endswith(f"\\boxed{{{r['answer']}}}."):
                err(f"bad SFT solution: {sol}")
            k = sum(1 for ln in sol.split("\n") if ln.startswith(("Check:", "Let me verify:")))
            n_checks[k] = n_checks.get(k, 0) + 1
            for eq in wrong_arithmetic(sol) if r["problem"] in generated_sft else ():
                err(f"wrong arithmetic {eq} in: {sol}")
    if args.verbosity == "plain" and set(n_checks) != {1}:
        err(f"plain solutions must carry exactly one check: {n_checks}")
    if args.verbosity == "varied" and not {0, 1, 2, 3} <= set(n_checks):
        err(f"varied solutions should carry 0-3 checks: {n_checks}")

    two = sum(1 for r in generated if r["template"] in {n for n, _, _ in TWO_STEP})
    if abs(2 * two - len(generated)) > 3:
        err(f"one/two-step balance off: {two} two-step of {len(generated)}")
    if len(counts) != len(ONE_STEP) + len(TWO_STEP):
        err(f"templates used: {sorted(counts)}")

    held = {r["problem"] for r in files["heldout.jsonl"]}
    train = {r["problem"] for name in ("sft_train.jsonl", "sft_val.jsonl", "grpo_train.jsonl")
             for r in files[name]}
    if held & train:
        err(f"{len(held & train)} heldout problems overlap training data")
    if len(held) != args.n_heldout:
        err("duplicate heldout problems")
    val = {r["problem"] for r in files["validation.jsonl"]}
    if val & (train | held):
        err(f"{len(val & (train | held))} validation problems overlap training or heldout data")
    if len(val) != args.n_validation:
        err("duplicate validation problems")
    sft_train = {r["problem"] for r in files["sft_train.jsonl"]}
    if sft_train & {r["problem"] for r in files["sft_val.jsonl"]}:
        err("sft_val overlaps sft_train")

    # Determinism: two separate processes with different hash seeds.
    with tempfile.TemporaryDirectory() as tmp:
        outs = []
        for i, hashseed in enumerate(("1", "12345")):
            out = os.path.join(tmp, f"run{i}")
            cmd = [sys.executable, os.path.abspath(__file__), "--gsm8k-train", args.gsm8k_train,
                   "--out", out, "--n-sft-gsm8k", str(args.n_sft_gsm8k),
                   "--n-sft-gen", str(args.n_sft_gen), "--n-grpo", str(args.n_grpo),
                   "--n-heldout", str(args.n_heldout), "--n-validation", str(args.n_validation),
                   "--seed", str(args.seed),
                   "--verbosity", args.verbosity]
            env = dict(os.environ, PYTHONHASHSEED=hashseed)
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
            outs.append({n: open(os.path.join(out, n), "rb").read() for n in files})
        if outs[0] != outs[1]:
            err("two runs gave different output")
        in_memory = {n: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
                     for n, rows in files.items()}
        if outs[0] != in_memory:
            err("subprocess output differs from in-memory build")

    print(f"self-test: {len(generated)} generated problems over {len(counts)} templates, "
          f"{two} two-step; {len(rec['gsm'])} GSM8K rows; SFT rows by number of "
          f"verification lines: {dict(sorted(n_checks.items()))}")
    if errors:
        print("SELF-TEST FAILED:")
        for e in errors:
            print("  " + e)
        return 1
    print("self-test passed")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gsm8k-train", required=True)
    ap.add_argument("--out", help="output directory (required unless --self-test)")
    ap.add_argument("--n-sft-gsm8k", type=int, default=600)
    ap.add_argument("--n-sft-gen", type=int, default=600)
    ap.add_argument("--n-grpo", type=int, default=2000)
    ap.add_argument("--n-heldout", type=int, default=250)
    ap.add_argument("--n-validation", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--verbosity", choices=("plain", "varied"), default="plain",
                    help="SFT solutions with the one check line (plain) or 0-3 (varied)")
    ap.add_argument("--self-test", action="store_true",
                    help="check answers, disjointness and determinism")
    args = ap.parse_args()
    if args.n_sft_gsm8k + args.n_sft_gen <= SFT_VAL_ROWS:
        ap.error(f"SFT mix must have more than {SFT_VAL_ROWS} rows")
    if args.self_test:
        rc = self_test(args)
        if rc or not args.out:
            sys.exit(rc)
    elif not args.out:
        ap.error("--out is required")
    files, _ = build(args)
    write_files(files, args.out)
    for name in ("sft_train.jsonl", "sft_val.jsonl", "grpo_train.jsonl", "heldout.jsonl",
                 "validation.jsonl"):
        print(f"{name}: {len(files[name])} rows")


if __name__ == "__main__":
    main()
