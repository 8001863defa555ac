//! LaTeX → plain-math text conversion (pure, bounded).
//!
//! Output conventions: grouping braces become parentheses, set braces `\{ \}` become `{ }`,
//! `\frac{a}{b}` becomes `((a)/(b))` (mixed numbers `3\frac12` become `(3+1/2)`), roots become
//! `sqrt(x)` or `((x)^(1/(n)))`, `\text{..}` and font commands keep their contents, spacing and
//! sizing commands disappear, relations become `<=`, `>=`, `!=`, `\cup` becomes ` U `, Greek
//! letters become single Unicode letters, and degrees become `°`. Recursion depth is capped at
//! [`MAX_DEPTH`]; deeper input is copied without conversion. Runs in time linear in the input
//! times the depth cap.

/// Maximum nesting depth of converted groups.
pub const MAX_DEPTH: usize = 48;

/// Converts LaTeX `s` to plain-math text.
pub fn to_plain(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    convert(&chars, 0, &mut out);
    out
}

fn convert(c: &[char], depth: usize, out: &mut String) {
    if depth > MAX_DEPTH {
        out.extend(c.iter().filter(|ch| !matches!(ch, '{' | '}' | '\\')));
        return;
    }
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        match ch {
            '\\' => i = command(c, i, depth, out),
            '{' => {
                let end = group_end(c, i);
                let inner = &c[i + 1..end.min(c.len())];
                if inner == [','] {
                    // `7{,}425` thousands separator
                } else {
                    out.push('(');
                    convert(inner, depth + 1, out);
                    out.push(')');
                }
                i = end + 1;
            }
            '}' | '$' => i += 1,
            '~' => {
                out.push(' ');
                i += 1;
            }
            '\u{2212}' | '\u{2013}' | '\u{2014}' => {
                out.push('-');
                i += 1;
            }
            '\u{00d7}' | '\u{22c5}' | '\u{00b7}' => {
                out.push('*');
                i += 1;
            }
            '\u{00f7}' => {
                out.push('/');
                i += 1;
            }
            '\u{2264}' => {
                out.push_str("<=");
                i += 1;
            }
            '\u{2265}' => {
                out.push_str(">=");
                i += 1;
            }
            '\u{2248}' => {
                out.push_str(" \u{2248} ");
                i += 1;
            }
            '\u{2208}' => {
                out.push_str(" in ");
                i += 1;
            }
            '\u{2260}' => {
                out.push_str("!=");
                i += 1;
            }
            '\u{221e}' => {
                out.push_str("inf");
                i += 1;
            }
            '\u{222a}' => {
                out.push_str(" U ");
                i += 1;
            }
            '\u{221a}' => {
                out.push_str("sqrt");
                i += 1;
            }
            '\u{00a0}' | '\u{2009}' | '\u{202f}' => {
                out.push(' ');
                i += 1;
            }
            _ => {
                out.push(ch);
                i += 1;
            }
        }
    }
}

/// Index of the `}` matching the `{` at `open` (or `c.len()` when unbalanced).
fn group_end(c: &[char], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i < c.len() {
        match c[i] {
            '\\' => {
                i += 2;
                continue;
            }
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    c.len()
}

/// Reads one macro argument starting at `i` (after spaces): a `{group}`, a `\command`, or one
/// character. Returns the argument's characters and the index after it.
fn argument(c: &[char], mut i: usize) -> (&[char], usize) {
    while i < c.len() && c[i] == ' ' {
        i += 1;
    }
    if i >= c.len() {
        return (&[], i);
    }
    match c[i] {
        '{' => {
            let end = group_end(c, i);
            (&c[i + 1..end.min(c.len())], end + 1)
        }
        '\\' => {
            let j = name_end(c, i + 1);
            (&c[i..j], j)
        }
        _ => (&c[i..i + 1], i + 1),
    }
}

/// End of a command name starting at `i` (letters, or a single non-letter).
fn name_end(c: &[char], i: usize) -> usize {
    if i >= c.len() {
        return i;
    }
    if !c[i].is_ascii_alphabetic() {
        return i + 1;
    }
    let mut j = i;
    while j < c.len() && c[j].is_ascii_alphabetic() {
        j += 1;
    }
    j
}

fn plain_of(arg: &[char], depth: usize) -> String {
    let mut s = String::new();
    convert(arg, depth + 1, &mut s);
    s
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Handles the command at `c[i] == '\\'`; returns the index after it.
fn command(c: &[char], i: usize, depth: usize, out: &mut String) -> usize {
    let j = name_end(c, i + 1);
    let name: String = c[i + 1..j].iter().collect();
    match name.as_str() {
        "mathbb" if argument(c, j).0 == ['R'] => {
            // the real line
            out.push_str("(-inf,inf)");
            argument(c, j).1
        }
        "frac" | "dfrac" | "tfrac" | "cfrac" => {
            let (a, k) = argument(c, j);
            let (b, k) = argument(c, k);
            let (a, b) = (plain_of(a, depth), plain_of(b, depth));
            emit_frac(out, a.trim(), b.trim());
            k
        }
        "sqrt" => {
            let mut k = j;
            while k < c.len() && c[k] == ' ' {
                k += 1;
            }
            let mut index = None;
            if k < c.len() && c[k] == '[' {
                if let Some(close) = c[k..].iter().position(|&x| x == ']') {
                    index = Some(plain_of(&c[k + 1..k + close], depth));
                    k += close + 1;
                }
            }
            let (a, k) = argument(c, k);
            let a = plain_of(a, depth);
            match index {
                Some(n) => out.push_str(&format!("(({a})^(1/({n})))")),
                None => out.push_str(&format!("sqrt({a})")),
            }
            k
        }
        "binom" | "dbinom" | "tbinom" | "choose" => {
            let (a, k) = argument(c, j);
            let (b, k) = argument(c, k);
            out.push_str(&format!(
                "binom({},{})",
                plain_of(a, depth),
                plain_of(b, depth)
            ));
            k
        }
        "text" | "textbf" | "textit" | "textrm" | "texttt" | "textsf" | "mbox" | "mathrm"
        | "mathbf" | "mathit" | "mathsf" | "mathtt" | "boldsymbol" | "bm" | "emph" | "hbox"
        | "operatorname" | "mathbb" | "mathcal" | "mathscr" | "mathfrak" | "textnormal"
        | "textup" | "boxed" | "fbox" | "framebox" | "underline" | "overline" | "rm" | "bf"
        | "it" | "sf" | "tt" => {
            let (a, k) = argument(c, j);
            let unit_like = name.starts_with("text")
                || matches!(
                    name.as_str(),
                    "mbox" | "hbox" | "mathrm" | "operatorname" | "rm"
                );
            if unit_like && after_number(out) && is_unit_text(&a.iter().collect::<String>()) {
                // `5\text{ cm}`, `12\mbox{ m}^2`: the unit goes, with its power
                return skip_unit_power(c, k);
            }
            let is_text = name.starts_with("text") || name == "mbox" || name == "hbox";
            if is_text {
                out.push(' ');
            }
            convert(a, depth + 1, out);
            if is_text {
                out.push(' ');
            }
            k
        }
        "begin" => environment(c, j, depth, out),
        "lim" | "limsup" | "liminf" => {
            // `\lim_{x \to 0}`: the limit's subscript goes with it
            let mut k = j;
            while k < c.len() && c[k] == ' ' {
                k += 1;
            }
            if k < c.len() && c[k] == '_' {
                return argument(c, k + 1).1;
            }
            j
        }
        "end" => argument(c, j).1,
        "left" | "right" | "bigl" | "bigr" | "Bigl" | "Bigr" | "biggl" | "biggr" | "Biggl"
        | "Biggr" | "big" | "Big" | "bigg" | "Bigg" | "middle" => {
            // sizing: drop; `\left.` drops the dot
            if j < c.len() && c[j] == '.' {
                j + 1
            } else {
                j
            }
        }
        "displaystyle" | "textstyle" | "scriptstyle" | "limits" | "nolimits" | "quad" | "qquad"
        | "hfill" | "noindent" | "phantom" | "hspace" | "vspace" | "mathord" => {
            if matches!(name.as_str(), "hspace" | "vspace" | "phantom") {
                return argument(c, j).1;
            }
            out.push(' ');
            j
        }
        "," | ";" | ":" | "!" | " " | ">" => {
            out.push(' ');
            j
        }
        "{" => {
            out.push('{');
            j
        }
        "}" => {
            out.push('}');
            j
        }
        "%" | "$" | "&" | "#" | "_" => {
            if name != "$" {
                out.push_str(&name);
            }
            j
        }
        "\\" => {
            out.push(',');
            j
        }
        _ => {
            out.push_str(simple_command(&name));
            // keep a separator so `\pi r` does not glue into an identifier
            if j < c.len() && c[j].is_ascii_alphabetic() {
                out.push(' ');
            }
            j
        }
    }
}

/// Unit symbols and words that may follow a number inside `\text{}`/`\mbox{}`.
const UNIT_SYMBOLS: &[&str] = &[
    "m", "s", "h", "g", "l", "L", "mL", "ml", "N", "J", "W", "V", "A", "Pa", "kPa", "Hz", "kWh",
    "mi", "in", "ms", "kJ", "cal", "kcal", "mg", "t", "ha", "dm", "cc", "C", "F", "K",
];

/// True when `s` is only units: unit words joined by spaces, `/`, `*`, `·`, `^` and powers
/// (`cm`, ` km/h`, `m/s^2`, `square feet`, `dollars`).
fn is_unit_text(s: &str) -> bool {
    let t = s.trim();
    if t.is_empty() || t.len() > 40 {
        return false;
    }
    let chars_ok = t.chars().all(|c| {
        c.is_ascii_alphabetic() || " /*^{}0123456789.-\u{b7}\u{b2}\u{b3}\u{b0}".contains(c)
    });
    let mut words = 0;
    let all_units = t.split(|c: char| !c.is_ascii_alphabetic()).all(|w| {
        if w.is_empty() {
            return true;
        }
        words += 1;
        UNIT_SYMBOLS.contains(&w) || crate::answer::normalize::is_unit_word(&w.to_ascii_lowercase())
    });
    chars_ok && all_units && words > 0
}

/// The output so far ends with a number (a digit or a closing parenthesis).
fn after_number(out: &str) -> bool {
    out.trim_end()
        .ends_with(|c: char| c.is_ascii_digit() || c == ')')
}

/// Skips a `^2`, `^{3}` after a dropped unit; returns the index after it.
fn skip_unit_power(c: &[char], k: usize) -> usize {
    let mut i = k;
    while i < c.len() && c[i] == ' ' {
        i += 1;
    }
    if i < c.len() && c[i] == '^' {
        let (arg, after) = argument(c, i + 1);
        if !arg.is_empty() && arg.iter().all(|ch| ch.is_ascii_digit()) {
            return after;
        }
    }
    k
}

fn emit_frac(out: &mut String, a: &str, b: &str) {
    // mixed number: an integer literal directly before a numeric fraction
    let spaced = out.trim_end_matches(' ').len();
    let digits_end = if spaced < out.len()
        && out[..spaced].ends_with(|ch: char| ch.is_ascii_digit())
        && is_digits(a)
        && is_digits(b)
    {
        out.truncate(spaced);
        spaced
    } else {
        out.len()
    };
    let trailing = digits_end
        - out[..digits_end]
            .trim_end_matches(|ch: char| ch.is_ascii_digit())
            .len();
    if trailing > 0 && is_digits(a) && is_digits(b) {
        let before = out[..out.len() - trailing].chars().last();
        let standalone = !matches!(before, Some(ch) if ch.is_alphanumeric() || ch == '.' || ch == ')' || ch == '^' || ch == '_' || ch == '{');
        if standalone {
            let whole = out.split_off(out.len() - trailing);
            out.push_str(&format!("({whole}+{a}/{b})"));
            return;
        }
    }
    out.push_str(&format!("(({a})/({b}))"));
}

/// `\begin{env} … \end{env}`: matrices become nested tuples, other environments keep contents.
fn environment(c: &[char], j: usize, depth: usize, out: &mut String) -> usize {
    let (env, k) = argument(c, j);
    let k = k.min(c.len());
    let env: String = env.iter().collect();
    let end_tag: Vec<char> = format!("\\end{{{env}}}").chars().collect();
    let mut e = k;
    let mut found = None;
    while e + end_tag.len() <= c.len() {
        if c[e..e + end_tag.len()] == end_tag[..] {
            found = Some(e);
            break;
        }
        e += 1;
    }
    let (body_end, after) = match found {
        Some(e) => (e, e + end_tag.len()),
        None => (c.len(), c.len()),
    };
    let mut body_start = k;
    if env == "array" {
        // skip the column spec `{cc}`
        let (_, after_spec) = argument(c, k);
        body_start = after_spec.min(body_end);
    }
    let body = &c[body_start..body_end];
    let is_matrix = env.ends_with("matrix") || env == "array";
    if is_matrix {
        let text: String = body.iter().collect();
        let rows: Vec<&str> = text
            .split("\\\\")
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect();
        out.push('(');
        for (ri, row) in rows.iter().enumerate() {
            if ri > 0 {
                out.push(',');
            }
            out.push('(');
            for (ci, cell) in row.split('&').enumerate() {
                if ci > 0 {
                    out.push(',');
                }
                out.push_str(plain_of(&cell.chars().collect::<Vec<_>>(), depth).trim());
            }
            out.push(')');
        }
        out.push(')');
    } else {
        let mut inner = String::new();
        convert(body, depth + 1, &mut inner);
        out.push_str(&inner.replace('&', " "));
    }
    after
}

/// Replacement text for a command without arguments.
fn simple_command(name: &str) -> &str {
    match name {
        "pi" => "\u{03c0}",
        "infty" | "infinity" => "inf",
        "cdot" | "times" | "ast" => "*",
        "div" => "/",
        "le" | "leq" | "leqslant" => "<=",
        "ge" | "geq" | "geqslant" => ">=",
        "ne" | "neq" => "!=",
        "lt" => "<",
        "gt" => ">",
        "cup" => " U ",
        "cap" => " I ",
        "in" => " in ",
        "circ" | "degree" => "\u{00b0}",
        "dots" | "ldots" | "cdots" | "dotsc" | "dotsb" => "...",
        "emptyset" | "varnothing" => "{}",
        "lbrace" => "{",
        "rbrace" => "}",
        "langle" => "(",
        "rangle" => ")",
        "lfloor" | "rfloor" | "lceil" | "rceil" => "",
        "vert" | "mid" | "lvert" | "rvert" => "|",
        "pm" => "\u{00b1}",
        "mp" => "\u{2213}",
        "implies" | "Rightarrow" | "rightarrow" | "to" => " => ",
        "iff" | "Leftrightarrow" => " <=> ",
        "wedge" | "land" => " and ",
        "vee" | "lor" => " or ",
        "approx" | "sim" | "simeq" | "approxeq" | "thickapprox" => " \u{2248} ",
        "equiv" | "cong" => "=",
        "prime" => "'",
        "alpha" => "\u{03b1}",
        "beta" => "\u{03b2}",
        "gamma" => "\u{03b3}",
        "delta" => "\u{03b4}",
        "epsilon" | "varepsilon" => "\u{03b5}",
        "zeta" => "\u{03b6}",
        "eta" => "\u{03b7}",
        "theta" | "vartheta" => "\u{03b8}",
        "lambda" => "\u{03bb}",
        "mu" => "\u{03bc}",
        "nu" => "\u{03bd}",
        "xi" => "\u{03be}",
        "rho" => "\u{03c1}",
        "sigma" => "\u{03c3}",
        "tau" => "\u{03c4}",
        "phi" | "varphi" => "\u{03c6}",
        "chi" => "\u{03c7}",
        "psi" => "\u{03c8}",
        "omega" => "\u{03c9}",
        "Delta" => "\u{0394}",
        "Omega" => "\u{03a9}",
        "Gamma" => "\u{0393}",
        "Theta" => "\u{0398}",
        "Phi" => "\u{03a6}",
        "Sigma" => "\u{03a3}",
        "Lambda" => "\u{039b}",
        "Pi" => "\u{03a0}",
        "sin" | "cos" | "tan" | "cot" | "sec" | "csc" | "arcsin" | "arccos" | "arctan" | "sinh"
        | "cosh" | "tanh" | "ln" | "log" | "exp" | "lg" | "max" | "min" | "gcd" | "lcm" | "det"
        | "deg" => name,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::to_plain;

    #[test]
    fn conversions() {
        assert_eq!(to_plain("\\frac{1}{2}"), "((1)/(2))");
        assert_eq!(to_plain("\\dfrac12"), "((1)/(2))");
        assert_eq!(to_plain("3\\frac{1}{2}"), "(3+1/2)");
        assert_eq!(to_plain("137 \\frac{1}{2}"), "(137+1/2)");
        assert_eq!(to_plain("\\sqrt{2}"), "sqrt(2)");
        assert_eq!(to_plain("\\sqrt[3]{8}"), "((8)^(1/(3)))");
        assert_eq!(to_plain("\\left( 1, 2 \\right]"), "( 1, 2 ]");
        assert_eq!(to_plain("\\{1,2\\}"), "{1,2}");
        assert_eq!(to_plain("7{,}425"), "7425");
        assert_eq!(
            to_plain("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}"),
            "((1,2),(3,4))"
        );
        assert_eq!(to_plain("\\frac{\\frac{1}{2}}{3}"), "((((1)/(2)))/(3))");
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let s = "{".repeat(5000) + &"}".repeat(5000);
        let _ = to_plain(&s);
        let s = "\\frac{".repeat(3000);
        let _ = to_plain(&s);
    }
}
