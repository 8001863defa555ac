//! Equivalence of structured answers.
//!
//! Scalars: exact rationals first, then `f64` within a relative tolerance, then evaluation at
//! deterministic sample points when variables are present. Composite answers compare element by
//! element (tuples, intervals) or as multisets (sets, lists, unions). Every comparison draws on a
//! fixed budget of scalar comparisons, so the total work is bounded whatever the input.

use std::cell::Cell;
use std::collections::BTreeSet;

use crate::answer::eval::{
    exact, float, has_decimal, has_percent, sample_value, vars, PercentMode,
};
use crate::answer::expr::{Const, Expr};
use crate::answer::structure::{Answer, RelOp};
use crate::answer::verdict::VerdictReason;

/// Scalar comparisons one top-level comparison may make.
pub const COMPARE_BUDGET: u32 = 4000;
/// Sample points tried for expressions with variables.
const SAMPLES: u64 = 8;
/// Valid sample points required.
const MIN_VALID_SAMPLES: u32 = 3;

/// Comparison context: tolerance and remaining budget.
pub struct Ctx {
    rel_tol: f64,
    percent_lenient: bool,
    budget: Cell<u32>,
}

impl Ctx {
    /// A fresh context.
    pub fn new(rel_tol: f64, percent_lenient: bool) -> Ctx {
        let rel_tol = if rel_tol.is_finite() && rel_tol >= 0.0 {
            rel_tol
        } else {
            1e-4
        };
        Ctx {
            rel_tol,
            percent_lenient,
            budget: Cell::new(COMPARE_BUDGET),
        }
    }

    fn spend(&self) -> bool {
        let b = self.budget.get();
        if b == 0 {
            return false;
        }
        self.budget.set(b - 1);
        true
    }
}

/// `|x - y| <= tol * max(|x|, |y|)` (or both tiny / both the same infinity).
pub fn close(x: f64, y: f64, tol: f64) -> bool {
    if x == y {
        return true;
    }
    if !x.is_finite() || !y.is_finite() {
        return false;
    }
    let d = (x - y).abs();
    d <= tol * x.abs().max(y.abs()) || d <= 1e-12
}

/// Compares gold `g` with prediction `p`.
pub fn equal(g: &Answer, p: &Answer, ctx: &Ctx) -> Option<VerdictReason> {
    // unions of touching or overlapping intervals compare in merged form
    // (`(-inf,0) U [0,inf)` = `(-inf,inf)`)
    let (gm, pm) = (merged_union(g), merged_union(p));
    if gm.is_some() || pm.is_some() {
        let (g2, p2) = (gm.as_ref().unwrap_or(g), pm.as_ref().unwrap_or(p));
        if let Some(r) = equal_exact_shape(g2, p2, ctx) {
            return Some(r);
        }
    }
    equal_exact_shape(g, p, ctx)
}

/// [`equal`] without union merging.
fn equal_exact_shape(g: &Answer, p: &Answer, ctx: &Ctx) -> Option<VerdictReason> {
    use Answer as A;
    match (g, p) {
        (A::Scalar(a), A::Scalar(b)) => scalar_eq(a, b, ctx),
        (A::Text(a), A::Text(b)) => {
            (a.replace(' ', "") == b.replace(' ', "")).then_some(VerdictReason::Text)
        }
        (A::Rel(es, ops), A::Scalar(s)) | (A::Scalar(s), A::Rel(es, ops)) => {
            rel_vs_scalar(es, ops, s, ctx)
        }
        (A::Rel(e1, o1), A::Rel(e2, o2)) => rel_vs_rel(e1, o1, e2, o2, ctx),
        (A::Rel(es, ops), t @ A::Tuple { .. }) | (t @ A::Tuple { .. }, A::Rel(es, ops)) => {
            let iv = rel_to_interval(es, ops)?;
            equal(&iv, t, ctx).map(|_| VerdictReason::Structural)
        }
        (
            A::Tuple {
                open: o1,
                close: c1,
                items: i1,
            },
            A::Tuple {
                open: o2,
                close: c2,
                items: i2,
            },
        ) => {
            if i1.len() != i2.len() {
                return None;
            }
            let square = |c: &char| *c == '[' || *c == ']';
            if i1.len() == 2
                && (square(o1) || square(c1) || square(o2) || square(c2))
                && (o1 != o2 || c1 != c2)
            {
                return None;
            }
            ordered(i1, i2, ctx)
        }
        (
            A::Tuple {
                open: '(',
                close: ')',
                items: i1,
            },
            A::List(i2),
        )
        | (
            A::List(i1),
            A::Tuple {
                open: '(',
                close: ')',
                items: i2,
            },
        ) => ordered(i1, i2, ctx),
        (A::Set(a), A::Set(b) | A::List(b)) | (A::List(a), A::Set(b)) => set_eq(a, b, ctx),
        // a parenthesized tuple predicted for a set compares as a set (`{1,2,3}` = `(3,2,1)`);
        // a set predicted for a tuple (a point) loses its order and does not match
        (
            A::Set(a),
            A::Tuple {
                open: '(',
                close: ')',
                items: b,
            },
        ) => set_eq(a, b, ctx),
        // so does a bracketed list that cannot be an interval (`[1, 2, 3]`)
        (
            A::Set(a),
            A::Tuple {
                open: '[',
                close: ']',
                items: b,
            },
        ) if b.len() != 2 => set_eq(a, b, ctx),
        (A::Set(a) | A::List(a) | A::Union(a), A::Set(b) | A::List(b) | A::Union(b)) => {
            unordered(a, b, ctx)
        }
        (A::Set(a) | A::List(a), other) if a.len() == 1 => equal(&a[0], other, ctx),
        (other, A::Set(b) | A::List(b)) if b.len() == 1 => equal(other, &b[0], ctx),
        (A::Union(a), A::Rel(es, ops)) | (A::Rel(es, ops), A::Union(a)) if a.len() == 1 => {
            let iv = rel_to_interval(es, ops)?;
            equal(&a[0], &iv, ctx)
        }
        _ => None,
    }
}

/// A union of intervals with numeric ends, sorted and merged where they touch or overlap;
/// `None` when the answer is not such a union or nothing merges. One interval left is returned
/// as that interval.
fn merged_union(a: &Answer) -> Option<Answer> {
    let Answer::Union(items) = a else {
        return None;
    };
    if items.len() > 64 {
        return None;
    }
    let nan = |_: &str| f64::NAN;
    let value = |x: &Answer| match x {
        Answer::Scalar(e) => Some(float(e, &nan, PercentMode::Scale)).filter(|v| !v.is_nan()),
        _ => None,
    };
    let mut ivs = Vec::with_capacity(items.len());
    for it in items {
        let Answer::Tuple { open, close, items } = it else {
            return None;
        };
        if items.len() != 2 {
            return None;
        }
        ivs.push((value(&items[0])?, value(&items[1])?, *open, *close, it));
    }
    ivs.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut merged: Vec<(f64, f64, char, char, &Answer, &Answer)> = Vec::new();
    for (lo, hi, open, close, it) in ivs {
        let Answer::Tuple { items: ends, .. } = it else {
            return None;
        };
        match merged.last_mut() {
            Some(m) if lo < m.1 || (lo == m.1 && (m.3 == ']' || open == '[')) => {
                if hi > m.1 || (hi == m.1 && close == ']') {
                    m.1 = hi;
                    m.3 = close;
                    m.5 = &ends[1];
                }
            }
            _ => merged.push((lo, hi, open, close, &ends[0], &ends[1])),
        }
    }
    if merged.len() == items.len() {
        return None;
    }
    let tuples: Vec<Answer> = merged
        .into_iter()
        .map(|(_, _, open, close, lo, hi)| Answer::Tuple {
            open,
            close,
            items: vec![lo.clone(), hi.clone()],
        })
        .collect();
    Some(if tuples.len() == 1 {
        tuples.into_iter().next()?
    } else {
        Answer::Union(tuples)
    })
}

fn ordered(a: &[Answer], b: &[Answer], ctx: &Ctx) -> Option<VerdictReason> {
    if a.len() != b.len() {
        return None;
    }
    for (x, y) in a.iter().zip(b) {
        equal(x, y, ctx)?;
    }
    Some(VerdictReason::Structural)
}

/// Multiset equality (greedy matching; answers here have few elements).
fn unordered(a: &[Answer], b: &[Answer], ctx: &Ctx) -> Option<VerdictReason> {
    if a.len() != b.len() || a.len() > 64 {
        return None;
    }
    let mut used = vec![false; b.len()];
    for x in a {
        let mut found = false;
        for (j, y) in b.iter().enumerate() {
            if !used[j] && equal(x, as_interval(y).as_ref().unwrap_or(y), ctx).is_some() {
                used[j] = true;
                found = true;
                break;
            }
        }
        if !found {
            return None;
        }
    }
    Some(VerdictReason::Structural)
}

/// Set equality (duplicates collapse): every element of each side equals one of the other's.
fn set_eq(a: &[Answer], b: &[Answer], ctx: &Ctx) -> Option<VerdictReason> {
    if a.len() > 64 || b.len() > 64 || a.is_empty() != b.is_empty() {
        return None;
    }
    let covered = |xs: &[Answer], ys: &[Answer]| {
        xs.iter()
            .all(|x| ys.iter().any(|y| equal(x, y, ctx).is_some()))
    };
    (covered(a, b) && covered(b, a)).then_some(VerdictReason::Structural)
}

/// An inequality read as an interval (for unions against lists of inequalities).
fn as_interval(a: &Answer) -> Option<Answer> {
    match a {
        Answer::Rel(es, ops) if !ops.contains(&RelOp::Eq) => rel_to_interval(es, ops),
        _ => None,
    }
}

fn lone_var(e: &Expr) -> Option<&str> {
    match e {
        Expr::Var(v) => Some(v),
        _ => None,
    }
}

/// True when every operator of a chain is `=` or `≈`.
fn all_eq(ops: &[RelOp]) -> bool {
    !ops.is_empty() && ops.iter().all(|o| matches!(o, RelOp::Eq | RelOp::Approx))
}

/// An equation (chain) against a scalar: `x = 5` and `5 = x` give their value; a chain
/// `e0 = e1 = … = en` (`x = 5+5+1 = 11`, `3 + 4 = 7`) gives its last side.
fn rel_vs_scalar(es: &[Expr], ops: &[RelOp], s: &Expr, ctx: &Ctx) -> Option<VerdictReason> {
    if !all_eq(ops) || es.len() < 2 {
        return None;
    }
    if es.len() == 2 && lone_var(&es[1]).is_some() && scalar_eq(&es[0], s, ctx).is_some() {
        return Some(VerdictReason::Equation);
    }
    let last = es.last()?;
    if lone_var(last).is_none() && scalar_eq(last, s, ctx).is_some() {
        return Some(VerdictReason::Equation);
    }
    // `√2 ≈ 1.414`: the exact side before a rounded one counts too
    if ops.contains(&RelOp::Approx) {
        for e in &es[..es.len() - 1] {
            if lone_var(e).is_none() && scalar_eq(e, s, ctx).is_some() {
                return Some(VerdictReason::Equation);
            }
        }
    }
    None
}

/// A chain `e0 = … = en` as the equation `e0 = en` (`x = 2·2 = 4` → `x = 4`).
fn collapse_eq_chain<'a>(es: &'a [Expr], ops: &[RelOp]) -> Vec<&'a Expr> {
    if all_eq(ops) && es.len() > 2 {
        vec![&es[0], &es[es.len() - 1]]
    } else {
        es.iter().collect()
    }
}

fn rel_vs_rel(
    e1: &[Expr],
    o1: &[RelOp],
    e2: &[Expr],
    o2: &[RelOp],
    ctx: &Ctx,
) -> Option<VerdictReason> {
    if all_eq(o1) && all_eq(o2) {
        let c1 = collapse_eq_chain(e1, o1);
        let c2 = collapse_eq_chain(e2, o2);
        let same = scalar_eq(c1[0], c2[0], ctx).is_some() && scalar_eq(c1[1], c2[1], ctx).is_some();
        let swapped = !same
            && scalar_eq(c1[0], c2[1], ctx).is_some()
            && scalar_eq(c1[1], c2[0], ctx).is_some();
        let both_defs = lone_var(c1[0]).is_some()
            && lone_var(c2[0]).is_some()
            && scalar_eq(c1[1], c2[1], ctx).is_some();
        let pair = |c: &[&Expr]| [c[0].clone(), c[1].clone()];
        if same || swapped || both_defs || proportional(&pair(&c1), &pair(&c2), ctx) {
            return Some(VerdictReason::Equation);
        }
        return None;
    }
    let eqish = |o: &[RelOp]| o.iter().any(|x| matches!(x, RelOp::Eq | RelOp::Approx));
    if eqish(o1) || eqish(o2) {
        return None;
    }
    if let ([a, b], [p], [c, d], [q]) = (e1, o1, e2, o2) {
        if same_relation(a, *p, b, c, *q, d, ctx) {
            return Some(VerdictReason::Structural);
        }
    }
    if o1.contains(&RelOp::Ne) || o2.contains(&RelOp::Ne) {
        return None;
    }
    let a = rel_to_interval(e1, o1)?;
    let b = rel_to_interval(e2, o2)?;
    equal(&a, &b, ctx).map(|_| VerdictReason::Structural)
}

/// `a p b` and `c q d` state the same relation: written as `d1 op 0` (`>`/`>=` turned around so
/// that `op` is `<`, `<=` or `!=`), the operators agree and `d1 = k·d2` for a constant `k`,
/// positive unless the relation is `!=` (`x >= 5`, `5 <= x`, `-x <= -5`, `2x >= 10`).
fn same_relation(a: &Expr, p: RelOp, b: &Expr, c: &Expr, q: RelOp, d: &Expr, ctx: &Ctx) -> bool {
    fn canon(l: &Expr, op: RelOp, r: &Expr) -> Option<(Expr, RelOp)> {
        let sub = |x: &Expr, y: &Expr| Expr::Sub(Box::new(x.clone()), Box::new(y.clone()));
        Some(match op {
            RelOp::Lt | RelOp::Le | RelOp::Ne => (sub(l, r), op),
            RelOp::Gt => (sub(r, l), RelOp::Lt),
            RelOp::Ge => (sub(r, l), RelOp::Le),
            RelOp::Eq | RelOp::Approx => return None,
        })
    }
    let (Some((d1, op1)), Some((d2, op2))) = (canon(a, p, b), canon(c, q, d)) else {
        return false;
    };
    op1 == op2 && ratio_constant(&d1, &d2, op1 != RelOp::Ne, ctx)
}

/// `l1 - r1 = k (l2 - r2)` for a constant `k != 0` at every sample point.
fn proportional(e1: &[Expr], e2: &[Expr], ctx: &Ctx) -> bool {
    let sub = |e: &[Expr]| Expr::Sub(Box::new(e[0].clone()), Box::new(e[1].clone()));
    ratio_constant(&sub(e1), &sub(e2), false, ctx)
}

/// `d1 = k·d2` for one constant `k != 0` (and `k > 0` when `positive`) at every valid sample
/// point; needs variables and at least [`MIN_VALID_SAMPLES`] valid points.
fn ratio_constant(d1: &Expr, d2: &Expr, positive: bool, ctx: &Ctx) -> bool {
    let mut vs = BTreeSet::new();
    vars(d1, &mut vs);
    vars(d2, &mut vs);
    if vs.is_empty() || !ctx.spend() {
        return false;
    }
    let mut ratio: Option<f64> = None;
    let mut valid = 0;
    for k in 0..SAMPLES {
        let env = |n: &str| sample_value(n, k);
        let x = float(d1, &env, PercentMode::Scale);
        let y = float(d2, &env, PercentMode::Scale);
        if !x.is_finite() || !y.is_finite() {
            continue;
        }
        if y.abs() < 1e-12 || x.abs() < 1e-12 {
            if x.abs() < 1e-12 && y.abs() < 1e-12 {
                continue;
            }
            return false;
        }
        let r = x / y;
        if positive && r <= 0.0 {
            return false;
        }
        match ratio {
            None => ratio = Some(r),
            Some(r0) if close(r0, r, ctx.rel_tol.max(1e-9)) => {}
            Some(_) => return false,
        }
        valid += 1;
    }
    valid >= MIN_VALID_SAMPLES
}

fn inf(neg: bool) -> Answer {
    let e = Expr::Const(Const::Inf);
    Answer::Scalar(if neg { Expr::Neg(Box::new(e)) } else { e })
}

/// Converts `x > c`, `c <= x`, `a < x <= b` into interval tuples.
pub fn rel_to_interval(es: &[Expr], ops: &[RelOp]) -> Option<Answer> {
    let is_lower = |o: RelOp| matches!(o, RelOp::Lt | RelOp::Le);
    let is_upper = |o: RelOp| matches!(o, RelOp::Gt | RelOp::Ge);
    let strict = |o: RelOp| matches!(o, RelOp::Lt | RelOp::Gt);
    match (es, ops) {
        ([a, b], [op]) => {
            let (c, op) = if lone_var(a).is_some() {
                (b, *op)
            } else if lone_var(b).is_some() {
                let flipped = match op {
                    RelOp::Lt => RelOp::Gt,
                    RelOp::Le => RelOp::Ge,
                    RelOp::Gt => RelOp::Lt,
                    RelOp::Ge => RelOp::Le,
                    other => *other,
                };
                (a, flipped)
            } else {
                return None;
            };
            let c = Answer::Scalar(c.clone());
            match op {
                RelOp::Lt | RelOp::Le => Some(Answer::Tuple {
                    open: '(',
                    close: if strict(op) { ')' } else { ']' },
                    items: vec![inf(true), c],
                }),
                RelOp::Gt | RelOp::Ge => Some(Answer::Tuple {
                    open: if strict(op) { '(' } else { '[' },
                    close: ')',
                    items: vec![c, inf(false)],
                }),
                _ => None,
            }
        }
        ([a, x, b], [o1, o2]) if lone_var(x).is_some() => {
            let (lo, hi, ol, oh) = if is_lower(*o1) && is_lower(*o2) {
                (a, b, *o1, *o2)
            } else if is_upper(*o1) && is_upper(*o2) {
                (b, a, *o2, *o1)
            } else {
                return None;
            };
            Some(Answer::Tuple {
                open: if strict(ol) { '(' } else { '[' },
                close: if strict(oh) { ')' } else { ']' },
                items: vec![Answer::Scalar(lo.clone()), Answer::Scalar(hi.clone())],
            })
        }
        _ => None,
    }
}

/// Scalar equality; tries `x% = x/100` and, when lenient, `x% = x`.
pub fn scalar_eq(g: &Expr, p: &Expr, ctx: &Ctx) -> Option<VerdictReason> {
    if !ctx.spend() {
        return None;
    }
    if let Some(r) = scalar_eq_mode(g, p, PercentMode::Scale, ctx) {
        return Some(r);
    }
    if ctx.percent_lenient && (has_percent(g) || has_percent(p)) {
        return scalar_eq_mode(g, p, PercentMode::Ignore, ctx);
    }
    None
}

fn scalar_eq_mode(g: &Expr, p: &Expr, pm: PercentMode, ctx: &Ctx) -> Option<VerdictReason> {
    let mut vs = BTreeSet::new();
    vars(g, &mut vs);
    vars(p, &mut vs);
    if vs.is_empty() {
        if let (Some(a), Some(b)) = (exact(g, pm), exact(p, pm)) {
            if a == b {
                return Some(VerdictReason::NumericExact);
            }
            // an exact integer gold needs an exact match
            if a.is_integer() && !has_decimal(g) {
                return None;
            }
            if !has_decimal(g) && !has_decimal(p) {
                return None;
            }
            return close(a.to_f64(), b.to_f64(), ctx.rel_tol)
                .then_some(VerdictReason::NumericClose);
        }
        let nan = |_: &str| f64::NAN;
        let (x, y) = (float(g, &nan, pm), float(p, &nan, pm));
        if x.is_infinite() && x == y {
            return Some(VerdictReason::NumericExact);
        }
        return (x.is_finite() && close(x, y, ctx.rel_tol)).then_some(VerdictReason::NumericClose);
    }
    let tol = ctx.rel_tol.max(1e-9);
    let mut valid = 0;
    for k in 0..SAMPLES {
        let env = |n: &str| sample_value(n, k);
        let (x, y) = (float(g, &env, pm), float(p, &env, pm));
        match (x.is_finite(), y.is_finite()) {
            (false, false) => continue,
            (true, true) if close(x, y, tol) => valid += 1,
            _ => return None,
        }
    }
    (valid >= MIN_VALID_SAMPLES).then_some(VerdictReason::Symbolic)
}
