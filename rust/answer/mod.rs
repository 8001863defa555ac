//! The math answer verifier: extraction, normalization and equivalence. Pure: no I/O.
//!
//! Entry points: [`extract_answer`], [`normalize()`], [`verify`], [`verify_completion`] and
//! [`answer_key`]. Every call is bounded: inputs are capped at [`MAX_ANSWER_CHARS`] (answers)
//! or scanned linearly (completions), parsing depth is capped, and comparisons draw on a fixed
//! budget; no input makes them panic.
//!
//! [`verify_completion`] with [`VerifyOptions::default`] reads free-form outputs. Extraction
//! order: the last `\boxed{}` → the last answer phrase (`the answer is …`, `Answer: …`,
//! `Answer $9$`, `#### …`) → the final math (`$…$`, `$$…$$`, `\(…\)`, `\[…\]`, spans joined as
//! `$a$ and $b$`) or the last number in running text (`$18`, `3,5 €`, `1 250 000`, `.4`,
//! `45%`), whichever ends later; each step looks after `</think>` first.
//! [`VerifyOptions::strict`] stops after the answer phrase (the paper's format rule).
//!
//! Comparison, in brief: numbers exactly or within a relative tolerance; expressions by
//! sampling; equations and equation chains by their last side (`x = 5+5+1 = 11` is `11`; `≈`
//! also keeps its exact side); inequalities as the same relation up to reversal, negation of
//! both sides or positive scaling (`x ≥ 5`, `5 ≤ x`, `-x ≤ -5`), and as intervals; matrices
//! and vectors element by element; sets, `±` pairs, bare lists and unions unordered. Readings
//! chosen where two are defensible: a bare list (`1, 2, 3`) compares as a set; a parenthesized
//! tuple predicted for a set compares as a set, but a set predicted for a tuple does not match;
//! a column vector equals the tuple of its entries; a gold written as a worked solution is
//! reduced to its answer as a completion is.
pub(crate) mod compare;
pub(crate) mod eval;
pub(crate) mod expr;
pub(crate) mod extract;
pub(crate) mod key;
pub(crate) mod latex;
pub(crate) mod locate;
pub(crate) mod normalize;
pub(crate) mod rational;
pub(crate) mod structure;
pub(crate) mod verdict;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod fuzz_tests;

pub use extract::extract_answer;
pub use key::answer_key;
pub use normalize::normalize;
pub use verdict::{ExtractOptions, Verdict, VerdictReason, VerifyOptions};

use compare::{equal, Ctx};
use structure::{parse_answer, Answer};

/// Longest answer (in chars) the verifier looks at; longer answers are rejected by [`verify`].
pub const MAX_ANSWER_CHARS: usize = 2000;

/// Reduces a gold answer to the answer itself: the last `\boxed{}` if any, else the text after
/// `####` (GSM8K), else the value of an answer phrase, else, for a gold written as a worked
/// solution (a line break, four or more prose words, or math delimiters with any prose word
/// around them), the answer extracted from it as from a completion (final math or last
/// number), else the text itself (`\text{Monday and Wednesday}`, `no solution`).
fn gold_answer(gold: &str) -> String {
    if let Some(b) = extract::last_boxed(gold) {
        return b;
    }
    if let Some(i) = gold.rfind("####") {
        return gold[i + 4..].trim().to_string();
    }
    let t = gold.trim();
    if let Some(p) = extract::answer_phrase(t) {
        if !p.trim().is_empty() {
            return p;
        }
    }
    let has_math = t.contains('$') || t.contains("\\(") || t.contains("\\[");
    if t.contains('\n') || prose_words(t, 3) >= 4 || (has_math && prose_words(t, 2) >= 1) {
        if let Some(a) = extract_answer(t, &ExtractOptions::free_form()) {
            return a;
        }
    }
    t.to_string()
}

/// Words of at least `min_len` letters that are not LaTeX command names, not inside
/// `\text{}`-like groups, and not function names the expression parser knows.
fn prose_words(s: &str, min_len: usize) -> usize {
    let b = s.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let mut j = i + 1;
            while j < b.len() && b[j].is_ascii_alphabetic() {
                j += 1;
            }
            let texty = matches!(&b[i + 1..j], b"text" | b"mbox" | b"textbf" | b"textnormal");
            i = j.max(i + 2);
            if texty && b.get(i) == Some(&b'{') {
                i = i + normalize::matching_close(&s[i..]).unwrap_or(b.len() - i) + 1;
            }
            continue;
        }
        if b[i].is_ascii_alphabetic() {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_alphabetic() {
                j += 1;
            }
            if j - i >= min_len && !expr::is_known_word(&s[i..j].to_ascii_lowercase()) {
                n += 1;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    n
}

/// `A`–`E` (optionally as `(C)`, `C)`, `\text{(C)}`) as an uppercase letter.
fn choice_letter(n: &str) -> Option<char> {
    let t = n
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .trim();
    let t = t
        .strip_prefix("option ")
        .or_else(|| t.strip_prefix("Option "))
        .unwrap_or(t)
        .trim();
    let mut it = t.chars();
    let c = it.next()?;
    (it.next().is_none() && matches!(c.to_ascii_uppercase(), 'A'..='E'))
        .then(|| c.to_ascii_uppercase())
}

/// `(B) 7` → (`B`, `7`).
fn choice_label_prefix(p: &str) -> Option<(char, String)> {
    let rest = p.strip_prefix('(')?;
    let mut it = rest.chars();
    let c = it.next()?;
    let after = it.as_str().strip_prefix(") ")?;
    (matches!(c, 'A'..='E') && !after.trim().is_empty()).then(|| (c, after.trim().to_string()))
}

/// True when a gold answer that parsed only as text does not look like prose: it keeps math
/// markup the parser could not read, or is mostly non-letters (base-`b` numerals such as
/// `52_8` are fine).
fn looks_like_broken_math(_raw: &str, parsed: &Answer) -> bool {
    let Answer::Text(t) = parsed else {
        return false;
    };
    let base_numeral = t.split_once('_').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && (a.to_string() + b).chars().all(char::is_alphanumeric)
    });
    if base_numeral {
        return false;
    }
    if t.contains(['\\', '{', '}', '(', ')', '[', ']', '^', '=', '&', '$', '|']) {
        return true;
    }
    let letters = t.chars().filter(|c| c.is_alphabetic()).count();
    letters * 2 < t.chars().filter(|c| !c.is_whitespace()).count()
}

/// True when the verifier can read `gold` (same preparation as [`verify`]): it is non-empty,
/// within the length cap, and parses as math or as plain prose. The reward layer uses this for
/// the paper's "gold cannot be parsed ⇒ correct" option, independently of any prediction.
pub fn gold_parseable(gold: &str) -> bool {
    if gold.chars().count() > MAX_ANSWER_CHARS * 4 {
        return false;
    }
    let raw = gold_answer(gold);
    if raw.chars().count() > MAX_ANSWER_CHARS {
        return false;
    }
    let g = normalize::normalize_with(&raw, false);
    match parse_answer(&g) {
        Some(a) => !looks_like_broken_math(&raw, &a),
        None => false,
    }
}

/// Decides whether `predicted` (an already-extracted answer) equals `gold`.
///
/// `gold` may be a bare answer, a solution with a `\boxed{}`, a GSM8K `#### N` text, or a
/// worked solution without either (its answer phrase, final math or last number is used);
/// `predicted` is reduced the same way, so a sentence such as `The answer is $5$.` reads as `5`
/// (use [`verify_completion`] for whole model outputs: it also prefers the text after
/// `</think>` and honours the extraction options).
/// Reasons: `PredictionMissing` for an empty prediction; `InputTooLong` past
/// [`MAX_ANSWER_CHARS`]; `GoldUnparseable` when the gold is empty or malformed math (never
/// counted as equivalent here; the reward layer decides what that means);
/// otherwise an equivalence reason or `NotEquivalent`. Never panics; bounded time.
pub fn verify(gold: &str, predicted: &str, opts: &VerifyOptions) -> Verdict {
    use VerdictReason as R;
    if predicted.trim().is_empty() {
        return Verdict::new(false, R::PredictionMissing, "empty prediction");
    }
    if gold.chars().count() > MAX_ANSWER_CHARS * 4 || predicted.chars().count() > MAX_ANSWER_CHARS {
        return Verdict::new(false, R::InputTooLong, "input longer than the cap");
    }
    let g_raw = gold_answer(gold);
    if g_raw.chars().count() > MAX_ANSWER_CHARS {
        return Verdict::new(false, R::InputTooLong, "gold answer longer than the cap");
    }
    let g = normalize::normalize_with(&g_raw, false);
    // a prediction written as a sentence or a solution is reduced as a gold is
    let p_raw = gold_answer(predicted);
    let mut p = normalize::normalize_with(&p_raw, false);
    if opts.aimo {
        if let Some(k) =
            extract::extract_answer(&format!("\\boxed{{{predicted}}}"), &opts.extract_options())
        {
            p = k;
        }
    }
    let detail = format!("gold={g:?} pred={p:?}");
    if g.is_empty() {
        return Verdict::new(false, R::GoldUnparseable, detail);
    }
    if p.is_empty() {
        return Verdict::new(false, R::PredictionMissing, detail);
    }
    if g == p {
        return Verdict::new(true, R::ExactString, detail);
    }
    // `(B) 7`: a choice label before a value
    if let Some((label, rest)) = choice_label_prefix(&p) {
        if let Some(a) = choice_letter(&g) {
            let ok = a == label;
            return Verdict::new(ok, if ok { R::Choice } else { R::NotEquivalent }, detail);
        }
        p = rest;
    }
    if let (Some(a), Some(b)) = (choice_letter(&g), choice_letter(&p)) {
        return Verdict::new(
            a == b,
            if a == b { R::Choice } else { R::NotEquivalent },
            detail,
        );
    }
    let Some(ga) = parse_answer(&g) else {
        return Verdict::new(false, R::GoldUnparseable, detail);
    };
    let ctx = Ctx::new(opts.rel_tol, opts.percent_lenient);
    if let Some(pa) = parse_answer(&p) {
        if let Some(reason) = equal(&ga, &pa, &ctx) {
            return Verdict::new(true, reason, detail);
        }
    }
    // a decimal comma where the gold is a scalar: `3,5` = 3.5
    if matches!(ga, Answer::Scalar(_)) {
        if let Some(dc) = decimal_comma(&p) {
            if let Some(pa) = parse_answer(&dc) {
                if let Some(reason) = equal(&ga, &pa, &ctx) {
                    return Verdict::new(true, reason, detail);
                }
            }
        }
    }
    if looks_like_broken_math(&g_raw, &ga) {
        return Verdict::new(false, R::GoldUnparseable, detail);
    }
    Verdict::new(false, R::NotEquivalent, detail)
}

/// `-12,5` → `-12.5` when the text is exactly digits, one comma, and not three digits after it.
fn decimal_comma(p: &str) -> Option<String> {
    let body = p.strip_prefix('-').unwrap_or(p);
    let (a, b) = body.split_once(',')?;
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
    (digits(a) && digits(b) && b.len() != 3).then(|| p.replacen(',', ".", 1))
}

/// Extracts the answer from `completion` with `opts.extract_options()` and verifies it against
/// `gold`; `PredictionMissing` when nothing can be extracted.
///
/// Extraction order (see [`extract_answer`]): the last `\boxed{}` after `</think>`, an answer
/// phrase there, the same two in the whole text, then — unless the options are
/// [`VerifyOptions::strict`] — the final math (`$…$`, `$$…$$`, `\(…\)`, `\[…\]`) or the last
/// number in running text, whichever ends later (after `</think>` first, then the whole text).
/// The gold is reduced the same way when it is a worked solution (see [`verify`]).
pub fn verify_completion(gold: &str, completion: &str, opts: &VerifyOptions) -> Verdict {
    match extract_answer(completion, &opts.extract_options()) {
        Some(p) => verify(gold, &p, opts),
        None => Verdict::new(false, VerdictReason::PredictionMissing, "no answer found"),
    }
}
