//! Exact rational numbers on `i128` with checked arithmetic.
//!
//! Every operation returns `None` on overflow (or division by zero) so the caller can fall back
//! to floating point; nothing here panics.

/// A reduced fraction `num / den` with `den > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    num: i128,
    den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.checked_abs().unwrap_or(i128::MAX);
    b = b.checked_abs().unwrap_or(i128::MAX);
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Rational {
    /// Zero.
    pub const ZERO: Rational = Rational { num: 0, den: 1 };
    /// One.
    pub const ONE: Rational = Rational { num: 1, den: 1 };

    /// `num / den` reduced; `None` when `den == 0` or on overflow.
    pub fn new(num: i128, den: i128) -> Option<Rational> {
        if den == 0 || num == i128::MIN || den == i128::MIN {
            return None;
        }
        let g = gcd(num, den).max(1);
        let (mut n, mut d) = (num / g, den / g);
        if d < 0 {
            n = n.checked_neg()?;
            d = d.checked_neg()?;
        }
        Some(Rational { num: n, den: d })
    }

    /// An integer as a rational.
    pub fn from_int(n: i128) -> Option<Rational> {
        Rational::new(n, 1)
    }

    /// Parses a plain decimal literal such as `12`, `0.125`, `.5` (no sign, no exponent).
    /// `None` if it has more than 36 significant digits or is not a decimal literal.
    pub fn parse_decimal(s: &str) -> Option<Rational> {
        let (int_part, frac_part) = match s.split_once('.') {
            Some((a, b)) => (a, b),
            None => (s, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let int_trim = int_part.trim_start_matches('0');
        let frac_trim = frac_part.trim_end_matches('0');
        if int_trim.len() + frac_trim.len() > 36 {
            return None;
        }
        let mut num: i128 = 0;
        for b in int_trim.bytes().chain(frac_trim.bytes()) {
            num = num.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        let den = 10i128.checked_pow(u32::try_from(frac_trim.len()).ok()?)?;
        Rational::new(num, den)
    }

    /// Numerator (sign carrier).
    pub fn num(self) -> i128 {
        self.num
    }

    /// Denominator (always positive).
    pub fn den(self) -> i128 {
        self.den
    }

    /// True when the denominator is 1.
    pub fn is_integer(self) -> bool {
        self.den == 1
    }

    /// Nearest `f64`.
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// Checked sum.
    pub fn checked_add(self, o: Rational) -> Option<Rational> {
        let g = gcd(self.den, o.den).max(1);
        let l = (self.den / g).checked_mul(o.den)?;
        let a = self.num.checked_mul(l / self.den)?;
        let b = o.num.checked_mul(l / o.den)?;
        Rational::new(a.checked_add(b)?, l)
    }

    /// Checked negation.
    pub fn checked_neg(self) -> Option<Rational> {
        Some(Rational {
            num: self.num.checked_neg()?,
            den: self.den,
        })
    }

    /// Checked difference.
    pub fn checked_sub(self, o: Rational) -> Option<Rational> {
        self.checked_add(o.checked_neg()?)
    }

    /// Checked product.
    pub fn checked_mul(self, o: Rational) -> Option<Rational> {
        let g1 = gcd(self.num, o.den).max(1);
        let g2 = gcd(o.num, self.den).max(1);
        let n = (self.num / g1).checked_mul(o.num / g2)?;
        let d = (self.den / g2).checked_mul(o.den / g1)?;
        Rational::new(n, d)
    }

    /// Checked quotient; `None` when dividing by zero.
    pub fn checked_div(self, o: Rational) -> Option<Rational> {
        if o.num == 0 {
            return None;
        }
        self.checked_mul(Rational::new(o.den, o.num)?)
    }

    /// Integer power with `|exp| <= 512`; `None` on overflow or `0^negative`.
    pub fn pow(self, exp: i128) -> Option<Rational> {
        if exp.unsigned_abs() > 512 {
            return None;
        }
        let mut base = if exp < 0 {
            Rational::ONE.checked_div(self)?
        } else {
            self
        };
        let mut e = exp.unsigned_abs();
        let mut acc = Rational::ONE;
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.checked_mul(base)?;
            }
            e >>= 1;
            if e > 0 {
                base = base.checked_mul(base)?;
            }
        }
        Some(acc)
    }

    /// Exact `n`-th root (`1 <= n <= 64`) when numerator and denominator are perfect powers.
    pub fn root(self, n: u32) -> Option<Rational> {
        if n == 0 || n > 64 {
            return None;
        }
        if self.num < 0 {
            if n % 2 == 0 {
                return None;
            }
            return self.checked_neg()?.root(n)?.checked_neg();
        }
        let a = int_root(self.num, n)?;
        let b = int_root(self.den, n)?;
        Rational::new(a, b)
    }

    /// Canonical text: `n` for integers, `n/d` otherwise.
    pub fn to_key(self) -> String {
        if self.den == 1 {
            format!("{}", self.num)
        } else {
            format!("{}/{}", self.num, self.den)
        }
    }
}

/// Exact integer `n`-th root of a non-negative `x`, if `x` is a perfect power.
fn int_root(x: i128, n: u32) -> Option<i128> {
    if x < 0 {
        return None;
    }
    if x < 2 || n == 1 {
        return Some(x);
    }
    let guess = (x as f64).powf(1.0 / f64::from(n)).round() as i128;
    [guess - 1, guess, guess + 1]
        .into_iter()
        .find(|&c| c >= 0 && c.checked_pow(n) == Some(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_and_overflow() {
        let a = Rational::new(1, 3).unwrap();
        let b = Rational::new(1, 6).unwrap();
        assert_eq!(a.checked_add(b), Rational::new(1, 2));
        assert_eq!(a.checked_div(Rational::ZERO), None);
        assert_eq!(Rational::from_int(2).unwrap().pow(200), None);
        assert_eq!(Rational::from_int(2).unwrap().pow(-3), Rational::new(1, 8));
        assert_eq!(Rational::parse_decimal("0.125"), Rational::new(1, 8));
        assert_eq!(Rational::parse_decimal(".5"), Rational::new(1, 2));
        assert_eq!(Rational::new(9, 4).unwrap().root(2), Rational::new(3, 2));
        assert_eq!(Rational::new(-8, 1).unwrap().root(3), Rational::new(-2, 1));
        assert_eq!(Rational::new(2, 1).unwrap().root(2), None);
        assert_eq!(Rational::new(i128::MIN, 1), None);
    }
}
