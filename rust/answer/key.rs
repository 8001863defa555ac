//! Canonical answer keys for majority voting.
//!
//! Equal keys mean "same answer"; equivalent answers map to the same key where the verifier can
//! canonicalize them: exact numbers become reduced fractions (`q:1/2`), other numbers 10
//! significant digits (`f:…`), expressions with variables a fingerprint of their values at fixed
//! sample points (`v:…`), tuples/sets their elements' keys (sets sorted), text its lowercase form.

use std::collections::BTreeSet;

use crate::answer::eval::{exact, float, sample_value, vars, PercentMode};
use crate::answer::expr::Expr;
use crate::answer::normalize::normalize;
use crate::answer::structure::{parse_answer, Answer, RelOp};
use crate::answer::MAX_ANSWER_CHARS;

/// The canonical key of an extracted answer `text`; `None` when it is empty or too long.
pub fn answer_key(text: &str) -> Option<String> {
    if text.chars().count() > MAX_ANSWER_CHARS {
        return None;
    }
    let n = normalize(text);
    if n.is_empty() {
        return None;
    }
    let a = parse_answer(&n)?;
    Some(key_of(&a, 0))
}

fn fmt_f(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return "0".into();
    }
    format!("{x:.9e}")
}

fn scalar_key(e: &Expr) -> String {
    if let Some(r) = exact(e, PercentMode::Scale) {
        return format!("q:{}", r.to_key());
    }
    let mut vs = BTreeSet::new();
    vars(e, &mut vs);
    if vs.is_empty() {
        let nan = |_: &str| f64::NAN;
        let v = float(e, &nan, PercentMode::Scale);
        if v.is_nan() {
            return "nan".into();
        }
        return format!("f:{}", fmt_f(v));
    }
    let mut parts = Vec::new();
    for k in 0..4u64 {
        let env = |n: &str| sample_value(n, k);
        let v = float(e, &env, PercentMode::Scale);
        parts.push(if v.is_nan() { "nan".into() } else { fmt_f(v) });
    }
    format!(
        "v[{}]:{}",
        vs.into_iter().collect::<Vec<_>>().join(","),
        parts.join(",")
    )
}

fn key_of(a: &Answer, depth: usize) -> String {
    if depth > 8 {
        return "deep".into();
    }
    let sub = |x: &Answer| key_of(x, depth + 1);
    match a {
        Answer::Scalar(e) => scalar_key(e),
        Answer::Rel(es, ops) => {
            let eq_chain = ops.iter().all(|o| matches!(o, RelOp::Eq | RelOp::Approx));
            if eq_chain && matches!(es[0], Expr::Var(_)) {
                if let Some(last) = es.last() {
                    return scalar_key(last);
                }
            }
            let parts: Vec<String> = es.iter().map(scalar_key).collect();
            format!("rel{ops:?}:{}", parts.join("|"))
        }
        Answer::Tuple { open, close, items } => {
            let (o, c) = if items.len() == 2 {
                (*open, *close)
            } else {
                ('(', ')')
            };
            format!(
                "{o}{}{c}",
                items.iter().map(sub).collect::<Vec<_>>().join(";")
            )
        }
        Answer::Set(items) | Answer::List(items) | Answer::Union(items) => {
            if items.len() == 1 {
                return sub(&items[0]);
            }
            let mut ks: Vec<String> = items.iter().map(sub).collect();
            ks.sort();
            if matches!(a, Answer::Set(_)) {
                ks.dedup();
                if ks.len() == 1 {
                    return ks.remove(0);
                }
            }
            format!("{{{}}}", ks.join(";"))
        }
        Answer::Text(t) => format!("t:{}", t.replace(' ', "")),
    }
}

#[cfg(test)]
mod tests {
    use super::answer_key;

    #[test]
    fn equivalent_answers_share_keys() {
        let same = [
            ("\\frac{1}{2}", "0.5"),
            ("x=3", "3"),
            ("\\{1,2\\}", "\\{2,1\\}"),
            ("2x+2", "2(x+1)"),
            ("1,000", "1000"),
        ];
        for (a, b) in same {
            assert_eq!(answer_key(a), answer_key(b), "{a} vs {b}");
        }
        assert_ne!(answer_key("1/3"), answer_key("0.33"));
        assert_eq!(answer_key(""), None);
    }
}
