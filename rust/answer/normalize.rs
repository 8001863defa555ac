//! String normalization of an extracted answer into plain-math text.
//!
//! Contract: pure, never panics, output is at most a small constant factor longer than the
//! input, and runs in time roughly linear in the input (inputs longer than
//! [`crate::answer::MAX_ANSWER_CHARS`] are truncated first).

use crate::answer::latex;
use crate::answer::MAX_ANSWER_CHARS;

/// Unit words stripped from the end of an answer (`5 cm`, `12 dollars`).
const UNITS: &[&str] = &[
    "cm",
    "mm",
    "km",
    "meters",
    "meter",
    "metres",
    "metre",
    "centimeters",
    "centimetres",
    "millimeters",
    "kilometers",
    "inches",
    "inch",
    "feet",
    "foot",
    "ft",
    "yards",
    "yard",
    "yd",
    "miles",
    "mile",
    "hours",
    "hour",
    "hrs",
    "hr",
    "minutes",
    "minute",
    "mins",
    "min",
    "seconds",
    "second",
    "sec",
    "secs",
    "days",
    "day",
    "weeks",
    "week",
    "months",
    "month",
    "years",
    "year",
    "dollars",
    "dollar",
    "cents",
    "cent",
    "units",
    "unit",
    "degrees",
    "degree",
    "deg",
    "radians",
    "kg",
    "grams",
    "gram",
    "pounds",
    "pound",
    "lbs",
    "lb",
    "ounces",
    "oz",
    "liters",
    "litres",
    "liter",
    "ml",
    "gallons",
    "gallon",
    "mph",
    "kmh",
    "sq",
    "square",
    "cubic",
    "points",
    "point",
    "people",
    "students",
    "times",
    "ways",
    "steps",
    "tiles",
    "pages",
    "books",
    "cups",
    "boxes",
    "per",
    "each",
    "total",
    "only",
    "approximately",
    "about",
];

/// True when `w` (lowercase) is one of the unit words stripped after a number.
pub fn is_unit_word(w: &str) -> bool {
    UNITS.contains(&w)
}

/// Normalizes an answer string to plain-math text: strips `$…$`, `\(…\)`, `\[…\]`, markdown
/// bold, `\boxed`, LaTeX spacing/sizing, `\text{}` wrappers, units, degrees, `\$`, trailing
/// periods, a leading `x =` (a single variable on the left of the only `=`), thousands
/// separators at top level (`7,425,000`, `1 000`), and converts fractions, roots, `\pi`,
/// relations and set braces (see the `latex` module). Whitespace is collapsed to single
/// spaces. Example: `"\\$\\dfrac{3}{4}\\text{ cm}."` → `"(3)/(4)"`.
pub fn normalize(s: &str) -> String {
    normalize_with(s, true)
}

/// [`normalize`] with the leading-`x =` stripping optional (the verifier keeps equations whole
/// and compares `x = 5` with `5` structurally).
pub fn normalize_with(s: &str, strip_var_eq: bool) -> String {
    let s: String = s.chars().take(MAX_ANSWER_CHARS).collect();
    let s = s.replace("**", "").replace(",\\! ", ",").replace("\\!", "");
    let mut p = latex::to_plain(&s);
    p = p.replace("^(°)", "").replace("^°", "").replace('°', "");
    p = p.replace('\u{00b7}', "*");
    let mut p = collapse_spaces(&p);
    // `\text{ and }` style words stay; strip a leading "answer:" label
    for label in ["final answer:", "answer:", "ans:"] {
        if p.get(..label.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(label))
        {
            p = p[label.len()..].trim().to_string();
        }
    }
    p = trim_trailing_punct(&p);
    p = strip_units(&p);
    p = p.replace(" percent", "%").replace("percent", "%");
    p = tidy_subscripts(&p);
    p = strip_var_in(&p);
    if strip_var_eq {
        p = strip_leading_var_eq(&p);
    }
    p = thousands_commas(&p);
    p = thousands_spaces(&p);
    p = mixed_number_plain(&p);
    p = strip_outer_parens_of_scalar(&p);
    collapse_spaces(&p)
}

fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.trim().chars() {
        if c.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

fn trim_trailing_punct(s: &str) -> String {
    let mut t = s.trim();
    loop {
        let before = t;
        t = t.trim_end_matches(['.', ';', ':', '!']).trim_end();
        // keep factorials like `5!` but drop `5.` and `!` after text
        if before.ends_with('!')
            && before[..before.len() - 1].ends_with(|c: char| c.is_ascii_digit() || c == ')')
        {
            t = before;
        }
        if t == before {
            break;
        }
    }
    t.to_string()
}

/// `18 eggs` → `18`: trailing prose words (2+ letters each, none a math word) after a number.
fn strip_trailing_words(s: &str) -> String {
    let Some(i) = s.find(' ') else {
        return s.to_string();
    };
    let (head, tail) = (s[..i].trim_end(), &s[i..]);
    let head_ok = head.ends_with(|c: char| c.is_ascii_digit() || c == ')' || c == '%')
        && head.chars().any(|c| c.is_ascii_digit())
        && !head.contains(['=', '<', '>', ',']);
    let words: Vec<&str> = tail.split_whitespace().collect();
    let words_ok = !words.is_empty()
        && words.iter().all(|w| {
            let w = w.trim_end_matches('.');
            w.len() >= 2
                && w.chars().all(|c| c.is_ascii_alphabetic())
                && !crate::answer::expr::is_known_word(&w.to_ascii_lowercase())
                && !matches!(w, "and" | "or" | "in" | "U")
        });
    if head_ok && words_ok {
        head.to_string()
    } else {
        s.to_string()
    }
}

fn strip_units(s: &str) -> String {
    let s = strip_trailing_words(s.trim());
    let mut t = s.trim().to_string();
    for _ in 0..4 {
        let lower = t.to_ascii_lowercase();
        // optional `^2` / `^(2)` after the unit
        let core = lower
            .trim_end_matches("^(2)")
            .trim_end_matches("^(3)")
            .trim_end_matches("^2")
            .trim_end_matches("^3")
            .trim_end();
        let mut stripped = false;
        for u in UNITS {
            if let Some(rest) = core.strip_suffix(u) {
                let boundary_ok =
                    rest.ends_with(|c: char| c == ' ' || c.is_ascii_digit() || c == ')');
                if !rest.trim().is_empty() && boundary_ok {
                    let keep = rest.trim_end().len();
                    t = t[..keep].trim_end().to_string();
                    stripped = true;
                    break;
                }
            }
        }
        if !stripped {
            break;
        }
    }
    t
}

/// `x = 5` → `5` when the left side is one variable (optionally subscripted) and there is
/// exactly one relation sign in the whole string.
fn strip_leading_var_eq(s: &str) -> String {
    let rel_count = s.matches(['=', '<', '>']).count();
    if rel_count != 1 {
        return s.to_string();
    }
    if let Some((lhs, rhs)) = s.split_once('=') {
        let lhs = lhs.trim();
        if is_simple_var(lhs) && !rhs.trim().is_empty() && !rhs.contains(',') {
            return rhs.trim().to_string();
        }
    }
    s.to_string()
}

/// `52_(8)` → `52_8`: a parenthesized alphanumeric subscript loses its parentheses (except a
/// logarithm's base of more than one character).
fn tidy_subscripts(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("_(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(')') {
            // a logarithm's base keeps its parentheses (`log_(10) 100` is not `log_1 0100`)
            Some(j)
                if j > 0
                    && after[..j].chars().all(char::is_alphanumeric)
                    && (j == 1 || !out.ends_with("log")) =>
            {
                out.push('_');
                out.push_str(&after[..j]);
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("_(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `x in [-2,7]` → `[-2,7]` (membership of a single variable).
fn strip_var_in(s: &str) -> String {
    if let Some((lhs, rhs)) = s.split_once(" in ") {
        if is_simple_var(lhs.trim()) && !rhs.trim().is_empty() {
            return rhs.trim().to_string();
        }
    }
    s.to_string()
}

/// One letter, optionally followed by `_x`, `_(12)`, or digits.
pub fn is_simple_var(s: &str) -> bool {
    let mut it = s.chars();
    let Some(first) = it.next() else { return false };
    if !first.is_alphabetic() || first == 'π' || first == 'e' {
        return false;
    }
    let rest: String = it.collect();
    rest.is_empty()
        || rest.strip_prefix('_').is_some_and(|r| {
            let r = r.trim_start_matches('(').trim_end_matches(')');
            !r.is_empty() && r.chars().all(|c| c.is_alphanumeric())
        })
}

/// Removes thousands commas `7,425,000` outside brackets.
fn thousands_commas(s: &str) -> String {
    group_digits(s, ',')
}

/// Removes thousands spaces `1 000 000` outside brackets.
fn thousands_spaces(s: &str) -> String {
    group_digits(s, ' ')
}

fn group_digits(s: &str, sep: char) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut depth = 0i32;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        match ch {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        let at_number_start = ch.is_ascii_digit()
            && (i == 0 || !(c[i - 1].is_ascii_digit() || c[i - 1] == '.' || c[i - 1] == ','));
        if depth == 0 && at_number_start && ch != '0' {
            let mut j = i;
            while j < c.len() && c[j].is_ascii_digit() {
                j += 1;
            }
            let lead = j - i;
            let mut k = j;
            let mut groups = 0;
            while lead <= 3
                && k + 4 <= c.len()
                && c[k] == sep
                && c[k + 1..k + 4].iter().all(char::is_ascii_digit)
                && !c.get(k + 4).is_some_and(char::is_ascii_digit)
            {
                k += 4;
                groups += 1;
            }
            if groups > 0 {
                out.extend(c[i..k].iter().filter(|&&x| x != sep));
                i = k;
                continue;
            }
        }
        out.push(ch);
        i += 1;
    }
    out
}

/// `3 1/2` → `(3+1/2)` when that is the whole answer.
fn mixed_number_plain(s: &str) -> String {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    if let Some((whole, frac)) = body.split_once(' ') {
        if let Some((a, b)) = frac.split_once('/') {
            let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
            if digits(whole) && digits(a) && digits(b) {
                return format!("{}({whole}+{a}/{b})", if neg { "-" } else { "" });
            }
        }
    }
    s.to_string()
}

/// `(5)` → `5` when the parentheses wrap the whole string and there is no comma inside.
fn strip_outer_parens_of_scalar(s: &str) -> String {
    let mut t = s.trim();
    for _ in 0..8 {
        if t.starts_with('(')
            && t.ends_with(')')
            && matching_close(t) == Some(t.len() - 1)
            && !t.contains(',')
        {
            t = t[1..t.len() - 1].trim();
        } else {
            break;
        }
    }
    t.to_string()
}

/// Byte index of the bracket closing the one at index 0.
pub fn matching_close(s: &str) -> Option<usize> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn examples() {
        assert_eq!(normalize("\\$\\dfrac{3}{4}\\text{ cm}."), "(3)/(4)");
        assert_eq!(normalize("7,425,000"), "7425000");
        assert_eq!(normalize("1 000"), "1000");
        assert_eq!(normalize("x = 5"), "5");
        assert_eq!(normalize("(1,100)"), "(1,100)");
        assert_eq!(normalize("90^\\circ"), "90");
        assert_eq!(normalize("50\\%"), "50%");
        assert_eq!(normalize("3 1/2"), "3+1/2");
        assert_eq!(normalize("**12**"), "12");
        assert_eq!(normalize("\u{2212}3"), "-3");
        assert_eq!(normalize("\\left[ 1, 2 \\right)"), "[ 1, 2 )");
        assert_eq!(normalize("4210_{5}"), "4210_5");
        assert_eq!(normalize("18 \\text{ eggs}"), "18");
        assert_eq!(normalize("1 and 2"), "1 and 2");
        assert_eq!(normalize("2 pi"), "2 pi");
        assert_eq!(normalize("x \\in [-2,7]"), "[-2,7]");
        assert_eq!(normalize("11,\\! 111,\\! 100"), "11111100");
    }
}
