//! Evaluation of [`Expr`]: exact (rational) where possible, otherwise `f64`.
//!
//! All loops are bounded (factorials up to 170, binomials with `k <= 1000`, integer powers with
//! `|exp| <= 512`); nothing here panics.

use std::collections::BTreeSet;

use crate::answer::expr::{Const, Expr, Func};
use crate::answer::rational::Rational;

/// How `x%` is read: as `x/100` (`Scale`) or as plain `x` (`Ignore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PercentMode {
    /// `x% = x/100`.
    Scale,
    /// `x% = x`.
    Ignore,
}

/// Exact value of a variable-free expression, or `None` if it is irrational, too large, or
/// contains variables or constants.
pub fn exact(e: &Expr, pm: PercentMode) -> Option<Rational> {
    match e {
        Expr::Num { value, .. } => Some(*value),
        Expr::Float(_) | Expr::Var(_) | Expr::Const(_) => None,
        Expr::Neg(a) => exact(a, pm)?.checked_neg(),
        Expr::Add(a, b) => exact(a, pm)?.checked_add(exact(b, pm)?),
        Expr::Sub(a, b) => exact(a, pm)?.checked_sub(exact(b, pm)?),
        Expr::Mul(a, b) => exact(a, pm)?.checked_mul(exact(b, pm)?),
        Expr::Div(a, b) => exact(a, pm)?.checked_div(exact(b, pm)?),
        Expr::Pow(a, b) => {
            let base = exact(a, pm)?;
            let exp = exact(b, pm)?;
            if exp.is_integer() {
                base.pow(exp.num())
            } else if exp.den() <= 64 {
                let root = base.root(u32::try_from(exp.den()).ok()?)?;
                root.pow(exp.num())
            } else {
                None
            }
        }
        Expr::Call(Func::Sqrt, a) => exact(a, pm)?.root(2),
        Expr::Call(Func::Abs, a) => {
            let v = exact(a, pm)?;
            if v.num() < 0 {
                v.checked_neg()
            } else {
                Some(v)
            }
        }
        Expr::Call(..) => None,
        Expr::Fact(a) => {
            let n = exact(a, pm)?;
            if !n.is_integer() || n.num() < 0 || n.num() > 33 {
                return None;
            }
            let mut acc: i128 = 1;
            for k in 2..=n.num() {
                acc = acc.checked_mul(k)?;
            }
            Rational::from_int(acc)
        }
        Expr::Binom(n, k) => {
            let (n, k) = (exact(n, pm)?, exact(k, pm)?);
            if !n.is_integer() || !k.is_integer() || k.num() < 0 || n.num() < 0 {
                return None;
            }
            let (n, k) = (n.num(), k.num());
            if k > n {
                return Some(Rational::ZERO);
            }
            let k = k.min(n - k);
            if k > 1000 {
                return None;
            }
            let mut acc: i128 = 1;
            for i in 0..k {
                acc = acc.checked_mul(n - i)? / (i + 1);
            }
            Rational::from_int(acc)
        }
        Expr::Percent(a) => {
            let v = exact(a, pm)?;
            match pm {
                PercentMode::Scale => v.checked_div(Rational::from_int(100)?),
                PercentMode::Ignore => Some(v),
            }
        }
    }
}

/// Floating-point value with variables looked up in `env` (unknown variables give NaN).
pub fn float(e: &Expr, env: &dyn Fn(&str) -> f64, pm: PercentMode) -> f64 {
    let f = |x: &Expr| float(x, env, pm);
    match e {
        Expr::Num { value, .. } => value.to_f64(),
        Expr::Float(v) => *v,
        Expr::Var(name) => env(name),
        Expr::Const(Const::Pi) => std::f64::consts::PI,
        Expr::Const(Const::E) => std::f64::consts::E,
        Expr::Const(Const::Inf) => f64::INFINITY,
        Expr::Neg(a) => -f(a),
        Expr::Add(a, b) => f(a) + f(b),
        Expr::Sub(a, b) => f(a) - f(b),
        Expr::Mul(a, b) => f(a) * f(b),
        Expr::Div(a, b) => f(a) / f(b),
        Expr::Pow(a, b) => {
            let (x, y) = (f(a), f(b));
            if x < 0.0 && y.fract() != 0.0 {
                // odd roots of negatives: (-8)^(1/3) = -2
                let inv = 1.0 / y;
                if (inv.round() - inv).abs() < 1e-9 && (inv.round() as i64) % 2 != 0 {
                    return -(-x).powf(y);
                }
            }
            x.powf(y)
        }
        Expr::Call(func, a) => {
            let x = f(a);
            match func {
                Func::Sqrt => x.sqrt(),
                Func::Sin => x.sin(),
                Func::Cos => x.cos(),
                Func::Tan => x.tan(),
                Func::Cot => 1.0 / x.tan(),
                Func::Sec => 1.0 / x.cos(),
                Func::Csc => 1.0 / x.sin(),
                Func::Asin => x.asin(),
                Func::Acos => x.acos(),
                Func::Atan => x.atan(),
                Func::Ln => x.ln(),
                Func::Log => x.log10(),
                Func::Exp => x.exp(),
                Func::Abs => x.abs(),
            }
        }
        Expr::Fact(a) => {
            let n = f(a);
            if n < 0.0 || n.fract() != 0.0 {
                return f64::NAN;
            }
            if n > 170.0 {
                return f64::INFINITY;
            }
            let mut acc = 1.0;
            let mut k = 2.0;
            while k <= n {
                acc *= k;
                k += 1.0;
            }
            acc
        }
        Expr::Binom(n, k) => {
            let (n, k) = (f(n), f(k));
            if n.fract() != 0.0 || k.fract() != 0.0 || k < 0.0 || n < 0.0 {
                return f64::NAN;
            }
            if k > n {
                return 0.0;
            }
            let k = k.min(n - k);
            if k > 1000.0 {
                return f64::NAN;
            }
            let mut acc = 1.0;
            let mut i = 0.0;
            while i < k {
                acc = acc * (n - i) / (i + 1.0);
                i += 1.0;
            }
            acc
        }
        Expr::Percent(a) => match pm {
            PercentMode::Scale => f(a) / 100.0,
            PercentMode::Ignore => f(a),
        },
    }
}

/// Names of the variables in `e`.
pub fn vars(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Var(v) => {
            out.insert(v.clone());
        }
        Expr::Num { .. } | Expr::Float(_) | Expr::Const(_) => {}
        Expr::Neg(a) | Expr::Call(_, a) | Expr::Fact(a) | Expr::Percent(a) => vars(a, out),
        Expr::Add(a, b)
        | Expr::Sub(a, b)
        | Expr::Mul(a, b)
        | Expr::Div(a, b)
        | Expr::Pow(a, b)
        | Expr::Binom(a, b) => {
            vars(a, out);
            vars(b, out);
        }
    }
}

/// True if `e` contains a `%`.
pub fn has_percent(e: &Expr) -> bool {
    match e {
        Expr::Percent(_) => true,
        Expr::Num { .. } | Expr::Float(_) | Expr::Const(_) | Expr::Var(_) => false,
        Expr::Neg(a) | Expr::Call(_, a) | Expr::Fact(a) => has_percent(a),
        Expr::Add(a, b)
        | Expr::Sub(a, b)
        | Expr::Mul(a, b)
        | Expr::Div(a, b)
        | Expr::Pow(a, b)
        | Expr::Binom(a, b) => has_percent(a) || has_percent(b),
    }
}

/// True if `e` contains a literal written with a decimal point (or a non-exact literal).
pub fn has_decimal(e: &Expr) -> bool {
    match e {
        Expr::Num { decimal, .. } => *decimal,
        Expr::Float(_) => true,
        Expr::Const(_) | Expr::Var(_) => false,
        Expr::Neg(a) | Expr::Call(_, a) | Expr::Fact(a) | Expr::Percent(a) => has_decimal(a),
        Expr::Add(a, b)
        | Expr::Sub(a, b)
        | Expr::Mul(a, b)
        | Expr::Div(a, b)
        | Expr::Pow(a, b)
        | Expr::Binom(a, b) => has_decimal(a) || has_decimal(b),
    }
}

/// Deterministic pseudo-random sample value for variable `name` at sample `k`: in `[0.3, 2.3)`
/// for even `k` and in `(-2.3, -0.3]` for odd `k` (so `|x|` and `x` differ).
pub fn sample_value(name: &str, k: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    let v = 0.3 + 2.0 * ((h >> 11) as f64 / (1u64 << 53) as f64);
    if k % 2 == 1 {
        -v
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::expr::parse;

    fn ex(s: &str) -> Option<Rational> {
        exact(&parse(s).unwrap(), PercentMode::Scale)
    }

    #[test]
    fn exact_values() {
        assert_eq!(ex("((1)/(2))+0.5"), Rational::new(1, 1));
        assert_eq!(ex("sqrt(16)"), Rational::new(4, 1));
        assert_eq!(ex("8^(1/3)"), Rational::new(2, 1));
        assert_eq!(ex("5!"), Rational::new(120, 1));
        assert_eq!(ex("binom(10,3)"), Rational::new(120, 1));
        assert_eq!(ex("25%"), Rational::new(1, 4));
        assert_eq!(ex("sqrt(2)"), None);
        assert_eq!(ex("2^100000"), None);
        assert_eq!(ex("1/0"), None);
    }

    #[test]
    fn float_values() {
        let env = |_: &str| 2.0;
        let v = float(&parse("x^2+1").unwrap(), &env, PercentMode::Scale);
        assert!((v - 5.0).abs() < 1e-12);
        let v = float(&parse("(-8)^(1/3)").unwrap(), &env, PercentMode::Scale);
        assert!((v + 2.0).abs() < 1e-12);
        assert!(float(&parse("1000000!").unwrap(), &env, PercentMode::Scale).is_infinite());
    }
}
