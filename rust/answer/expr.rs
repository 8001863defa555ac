//! Tokenizer and recursive-descent parser for plain-math scalar expressions.
//!
//! Input is the plain text produced by [`crate::answer::normalize()`]. Supports `+ - * / ^`,
//! implicit multiplication (`2x`, `3(x+1)`, `2π`), unary signs, factorial `!`, percent `%`,
//! functions (`sqrt`, `sin`, `log`, …), `binom(n,k)`, `|x|`, constants `π`/`pi`, `e`, `inf`,
//! and single-letter variables (ASCII or Unicode letters). Recursion depth is capped at
//! [`MAX_DEPTH`] and token count at [`MAX_TOKENS`]; exceeding either is a parse error.

use crate::answer::rational::Rational;

/// Maximum parser recursion depth.
pub const MAX_DEPTH: usize = 64;
/// Maximum number of tokens in one expression.
pub const MAX_TOKENS: usize = 1024;

/// Built-in unary functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// Square root.
    Sqrt,
    /// Sine.
    Sin,
    /// Cosine.
    Cos,
    /// Tangent.
    Tan,
    /// Cotangent.
    Cot,
    /// Secant.
    Sec,
    /// Cosecant.
    Csc,
    /// Inverse sine.
    Asin,
    /// Inverse cosine.
    Acos,
    /// Inverse tangent.
    Atan,
    /// Natural logarithm.
    Ln,
    /// Base-10 logarithm.
    Log,
    /// Exponential.
    Exp,
    /// Absolute value.
    Abs,
}

/// Named constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Const {
    /// π.
    Pi,
    /// Euler's number.
    E,
    /// +∞.
    Inf,
}

/// A parsed scalar expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal; `decimal` is true when written with a decimal point.
    Num {
        /// Exact value.
        value: Rational,
        /// Written with a decimal point (an approximation, for tolerance rules).
        decimal: bool,
    },
    /// A literal too large for exact arithmetic.
    Float(f64),
    /// A variable.
    Var(String),
    /// A constant.
    Const(Const),
    /// Negation.
    Neg(Box<Expr>),
    /// Sum.
    Add(Box<Expr>, Box<Expr>),
    /// Difference.
    Sub(Box<Expr>, Box<Expr>),
    /// Product.
    Mul(Box<Expr>, Box<Expr>),
    /// Quotient.
    Div(Box<Expr>, Box<Expr>),
    /// Power.
    Pow(Box<Expr>, Box<Expr>),
    /// Function application.
    Call(Func, Box<Expr>),
    /// Binomial coefficient.
    Binom(Box<Expr>, Box<Expr>),
    /// Factorial.
    Fact(Box<Expr>),
    /// Percent (`x%`).
    Percent(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(String),
    Var(String),
    Func(Func),
    Binom,
    Const(Const),
    Op(char),
    Open,
    Close,
    Comma,
    Bar,
    LogBase(String),
}

const WORDS: &[(&str, Tok)] = &[
    ("arcsin", Tok::Func(Func::Asin)),
    ("arccos", Tok::Func(Func::Acos)),
    ("arctan", Tok::Func(Func::Atan)),
    ("binom", Tok::Binom),
    ("sqrt", Tok::Func(Func::Sqrt)),
    ("sin", Tok::Func(Func::Sin)),
    ("cos", Tok::Func(Func::Cos)),
    ("tan", Tok::Func(Func::Tan)),
    ("cot", Tok::Func(Func::Cot)),
    ("sec", Tok::Func(Func::Sec)),
    ("csc", Tok::Func(Func::Csc)),
    ("log", Tok::Func(Func::Log)),
    ("exp", Tok::Func(Func::Exp)),
    ("abs", Tok::Func(Func::Abs)),
    ("inf", Tok::Const(Const::Inf)),
    ("ln", Tok::Func(Func::Ln)),
    ("pi", Tok::Const(Const::Pi)),
];

/// Multi-letter words the tokenizer understands (used to tell math from prose).
pub fn is_known_word(w: &str) -> bool {
    WORDS.iter().any(|(k, _)| *k == w) || w == "infty"
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if toks.len() > MAX_TOKENS {
            return Err("too many tokens".into());
        }
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            let mut seen_dot = false;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (chars[i] == '.'
                        && !seen_dot
                        && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
            {
                seen_dot |= chars[i] == '.';
                i += 1;
            }
            // scientific notation: 1.5e3, 2e-4 (only when followed by digits)
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '-' || chars[j] == '+') {
                    j += 1;
                }
                let digits_start = j;
                while j < chars.len() && chars[j].is_ascii_digit() && j - digits_start < 4 {
                    j += 1;
                }
                let next_is_alpha = chars.get(j).is_some_and(|c| c.is_alphanumeric());
                if j > digits_start && !next_is_alpha {
                    i = j;
                }
            }
            toks.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            split_word(&word, &mut toks);
        } else if c == '_' {
            // subscripts glue onto the previous variable: x_1, a_(n), x_{10}
            let mut j = i + 1;
            let mut sub = String::new();
            if j < chars.len() && chars[j] == '(' {
                j += 1;
                while j < chars.len() && chars[j] != ')' && sub.len() < 16 {
                    sub.push(chars[j]);
                    j += 1;
                }
                j += 1;
            } else if j < chars.len() && chars[j].is_alphanumeric() {
                sub.push(chars[j]);
                j += 1;
            }
            match toks.last_mut() {
                Some(Tok::Func(Func::Log)) if !sub.is_empty() => {
                    let last = toks.len() - 1;
                    toks[last] = Tok::LogBase(sub);
                }
                Some(Tok::Var(v)) if !sub.is_empty() => {
                    v.push('_');
                    v.push_str(&sub);
                }
                _ => return Err("stray subscript".into()),
            }
            i = j;
        } else if c == 'π' {
            toks.push(Tok::Const(Const::Pi));
            i += 1;
        } else if c.is_alphabetic() {
            toks.push(Tok::Var(c.to_string()));
            i += 1;
        } else {
            let t = match c {
                '(' | '[' => Tok::Open,
                ')' | ']' => Tok::Close,
                ',' => Tok::Comma,
                '|' => Tok::Bar,
                '+' | '-' | '*' | '/' | '^' | '!' | '%' => Tok::Op(c),
                '\'' => {
                    i += 1;
                    continue;
                }
                _ => return Err(format!("unexpected character {c:?}")),
            };
            toks.push(t);
            i += 1;
        }
    }
    Ok(toks)
}

/// Splits a run of ASCII letters into known words and single-letter variables.
fn split_word(word: &str, toks: &mut Vec<Tok>) {
    let mut rest = word;
    while !rest.is_empty() {
        if let Some((k, t)) = WORDS.iter().find(|(k, _)| rest.starts_with(k)) {
            toks.push(t.clone());
            rest = &rest[k.len()..];
            if *k == "inf" && rest.starts_with("ty") {
                rest = &rest[2..];
            }
            continue;
        }
        let ch = &rest[..1];
        if ch == "e" {
            toks.push(Tok::Const(Const::E));
        } else {
            toks.push(Tok::Var(ch.to_string()));
        }
        rest = &rest[1..];
    }
}

/// Parses a plain-math scalar expression.
pub fn parse(s: &str) -> Result<Expr, String> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err("empty expression".into());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.sum()?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected token at {}", p.pos));
    }
    Ok(e)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err("expression nested too deeply".into())
        } else {
            Ok(())
        }
    }

    fn sum(&mut self) -> Result<Expr, String> {
        self.enter()?;
        let mut lhs = self.term()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek() {
            let op = *op;
            self.pos += 1;
            let rhs = self.term()?;
            lhs = if op == '+' {
                Expr::Add(Box::new(lhs), Box::new(rhs))
            } else {
                Expr::Sub(Box::new(lhs), Box::new(rhs))
            };
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn starts_primary(t: Option<&Tok>) -> bool {
        matches!(
            t,
            Some(Tok::Num(_) | Tok::Var(_) | Tok::Func(_) | Tok::Const(_) | Tok::Open | Tok::Binom)
        )
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut lhs = self.unary()?;
        loop {
            match self.peek() {
                Some(Tok::Op('*')) => {
                    self.pos += 1;
                    let rhs = self.unary()?;
                    lhs = Expr::Mul(Box::new(lhs), Box::new(rhs));
                }
                Some(Tok::Op('/')) => {
                    self.pos += 1;
                    let rhs = self.unary()?;
                    lhs = Expr::Div(Box::new(lhs), Box::new(rhs));
                }
                t if Self::starts_primary(t) => {
                    let rhs = self.power()?;
                    lhs = Expr::Mul(Box::new(lhs), Box::new(rhs));
                }
                _ => return Ok(lhs),
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        self.enter()?;
        let r = match self.peek() {
            Some(Tok::Op('-')) => {
                self.pos += 1;
                Ok(Expr::Neg(Box::new(self.unary()?)))
            }
            Some(Tok::Op('+')) => {
                self.pos += 1;
                self.unary()
            }
            _ => self.power(),
        };
        self.depth -= 1;
        r
    }

    fn power(&mut self) -> Result<Expr, String> {
        let base = self.postfix()?;
        if let Some(Tok::Op('^')) = self.peek() {
            self.pos += 1;
            let exp = self.unary()?;
            let e = Expr::Pow(Box::new(base), Box::new(exp));
            return self.postfix_ops(e);
        }
        Ok(base)
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let e = self.primary()?;
        self.postfix_ops(e)
    }

    fn postfix_ops(&mut self, mut e: Expr) -> Result<Expr, String> {
        loop {
            match self.peek() {
                Some(Tok::Op('!')) => {
                    self.pos += 1;
                    e = Expr::Fact(Box::new(e));
                }
                Some(Tok::Op('%')) => {
                    self.pos += 1;
                    e = Expr::Percent(Box::new(e));
                }
                _ => return Ok(e),
            }
        }
    }

    /// A function's argument: a parenthesized group (`sin(x)^2` is `(sin x)^2`), or, written
    /// without parentheses, the implicit product that follows up to the next function, bracket
    /// or operator (`cos 2x` is `cos(2x)`, `sin x cos x` is `sin(x)·cos(x)`, `ln e^2` is
    /// `ln(e^2)`).
    fn function_argument(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::Open) {
            return self.postfix();
        }
        let mut arg = self.unary()?;
        while matches!(self.peek(), Some(Tok::Num(_) | Tok::Var(_) | Tok::Const(_))) {
            let rhs = self.power()?;
            arg = Expr::Mul(Box::new(arg), Box::new(rhs));
        }
        Ok(arg)
    }

    fn expect_close(&mut self) -> Result<(), String> {
        if self.peek() == Some(&Tok::Close) {
            self.pos += 1;
            Ok(())
        } else {
            Err("missing closing bracket".into())
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        self.enter()?;
        let tok = self.peek().cloned().ok_or("unexpected end")?;
        self.pos += 1;
        let r = match tok {
            Tok::Num(s) => Ok(number(&s)),
            Tok::Var(v) => Ok(Expr::Var(v)),
            Tok::Const(c) => Ok(Expr::Const(c)),
            Tok::Open => {
                let e = self.sum()?;
                self.expect_close()?;
                Ok(e)
            }
            Tok::Bar => {
                let e = self.sum()?;
                if self.peek() != Some(&Tok::Bar) {
                    return Err("missing closing |".into());
                }
                self.pos += 1;
                Ok(Expr::Call(Func::Abs, Box::new(e)))
            }
            Tok::Func(mut f) => {
                // `sin^2 x` style powers on the function name; `sin^{-1} x` is arcsin
                let mut fpow = None;
                if let Some(Tok::Op('^')) = self.peek() {
                    let one = |t: Option<&Tok>| matches!(t, Some(Tok::Num(n)) if n == "1");
                    let t = |k: usize| self.toks.get(self.pos + k);
                    let inv_len = if t(1) == Some(&Tok::Open)
                        && t(2) == Some(&Tok::Op('-'))
                        && one(t(3))
                        && t(4) == Some(&Tok::Close)
                    {
                        5
                    } else if t(1) == Some(&Tok::Op('-')) && one(t(2)) {
                        3
                    } else {
                        0
                    };
                    let inverse = match f {
                        Func::Sin => Some(Func::Asin),
                        Func::Cos => Some(Func::Acos),
                        Func::Tan => Some(Func::Atan),
                        _ => None,
                    };
                    match inverse {
                        Some(g) if inv_len > 0 => {
                            self.pos += inv_len;
                            f = g;
                        }
                        _ => {
                            self.pos += 1;
                            fpow = Some(self.postfix()?);
                        }
                    }
                }
                let arg = self.function_argument()?;
                let call = Expr::Call(f, Box::new(arg));
                Ok(match fpow {
                    Some(p) => Expr::Pow(Box::new(call), Box::new(p)),
                    None => call,
                })
            }
            Tok::LogBase(b) => {
                let base = parse(&b)?;
                let arg = self.power()?;
                let ln = |e| Expr::Call(Func::Ln, Box::new(e));
                Ok(Expr::Div(Box::new(ln(arg)), Box::new(ln(base))))
            }
            Tok::Binom => {
                if self.peek() != Some(&Tok::Open) {
                    return Err("binom needs (n,k)".into());
                }
                self.pos += 1;
                let n = self.sum()?;
                if self.peek() != Some(&Tok::Comma) {
                    return Err("binom needs (n,k)".into());
                }
                self.pos += 1;
                let k = self.sum()?;
                self.expect_close()?;
                Ok(Expr::Binom(Box::new(n), Box::new(k)))
            }
            other => Err(format!("unexpected token {other:?}")),
        };
        self.depth -= 1;
        r
    }
}

/// A numeric literal (decimal, or scientific notation) as an expression.
fn number(s: &str) -> Expr {
    let lower = s.to_ascii_lowercase();
    if let Some((mant, exp)) = lower.split_once('e') {
        let m = Rational::parse_decimal(mant);
        let e: Option<i128> = exp.parse().ok();
        if let (Some(m), Some(e)) = (m, e) {
            if let Some(v) = Rational::from_int(10)
                .and_then(|t| t.pow(e))
                .and_then(|p| m.checked_mul(p))
            {
                return Expr::Num {
                    value: v,
                    decimal: true,
                };
            }
        }
        return Expr::Float(s.parse().unwrap_or(f64::NAN));
    }
    match Rational::parse_decimal(s) {
        Some(v) => Expr::Num {
            value: v,
            decimal: s.contains('.'),
        },
        None => Expr::Float(s.parse().unwrap_or(f64::NAN)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        for s in [
            "2x+1",
            "((1)/(2))",
            "sqrt(2)π",
            "-x^2",
            "3!",
            "50%",
            "|x-1|",
            "binom(5,2)",
            "sin^2 x",
            "2e-3",
            "xy",
            "log_2 8",
            "log_(10)(100)",
            "x_1+x_(2)",
        ] {
            assert!(parse(s).is_ok(), "{s}");
        }
        for s in ["", "(", "2+", "binom(1)", ")"] {
            assert!(parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn depth_capped() {
        let s = "(".repeat(500) + "1" + &")".repeat(500);
        assert!(parse(&s).is_err());
        let s = "-".repeat(5000) + "1";
        assert!(parse(&s).is_err());
    }
}
