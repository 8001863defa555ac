//! Where answers sit in running text: math spans (`$…$`, `$$…$$`, `\(…\)`, `\[…\]`) and
//! numbers written in prose (`$1,234.50`, `3,5 €`, `12 m²`, `.4`, `45%`).
//!
//! [`scan`] makes one left-to-right pass and is linear in the text: each delimiter kind
//! remembers its last closer search, searches only move forward, a span's content is checked
//! once, and spans longer than [`MAX_SPAN`] bytes are not math. A `$…$` whose content reads as
//! prose (two or more words that are not math, outside `\text{}`) is not math either: its `$`
//! are currency signs, and the numbers between them count as prose numbers.

use std::ops::Range;

/// Longest span body (bytes) still taken for math.
pub const MAX_SPAN: usize = 4000;
/// Spans joined into one answer when written `$a$, $b$ and $c$`.
pub const MAX_JOINED: usize = 8;
/// Longest number run (bytes) read from prose.
const MAX_NUMBER: usize = 64;

/// The kinds of math delimiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `$…$`
    Inline,
    /// `$$…$$`
    Display,
    /// `\(…\)`
    Paren,
    /// `\[…\]`
    Bracket,
}

impl Kind {
    fn close(self) -> &'static [u8] {
        match self {
            Kind::Inline => b"$",
            Kind::Display => b"$$",
            Kind::Paren => b"\\)",
            Kind::Bracket => b"\\]",
        }
    }

    fn open_len(self) -> usize {
        match self {
            Kind::Inline => 1,
            _ => 2,
        }
    }
}

/// A math span: `outer` includes the delimiters, `body` is the content between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MathSpan {
    /// Delimiters included.
    pub outer: Range<usize>,
    /// Content.
    pub body: Range<usize>,
}

/// A number found in prose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProseNumber {
    /// Plain decimal text: separators removed, decimal comma turned into a point, a leading
    /// `.` given its `0`, a `%` kept (`-1234.5`, `0.4`, `45%`).
    pub text: String,
    /// Byte range of the number in the scanned text (a trailing `%` included).
    pub range: Range<usize>,
}

/// What one pass over a text found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// The last math span and the spans joined to it by `,`, `and`, `or` (at most
    /// [`MAX_JOINED`], in text order).
    pub final_math: Vec<MathSpan>,
    /// The last number outside math spans.
    pub last_number: Option<ProseNumber>,
    /// The first math span and the spans joined to it (in text order).
    pub first_math: Vec<MathSpan>,
}

impl Scan {
    /// End (byte) of the final math, if any.
    pub fn final_math_end(&self) -> Option<usize> {
        self.final_math.last().map(|s| s.outer.end)
    }
}

/// Finds the first closer of one kind at or after a position, remembering its last search so
/// that forward-moving queries never rescan bytes.
struct Closer {
    kind: Kind,
    from: usize,
    found: Option<usize>,
    valid: bool,
}

impl Closer {
    fn new(kind: Kind) -> Closer {
        Closer {
            kind,
            from: 0,
            found: None,
            valid: false,
        }
    }

    fn find(&mut self, b: &[u8], pos: usize) -> Option<usize> {
        if self.valid && pos >= self.from && self.found.is_none_or(|f| pos <= f) {
            return self.found;
        }
        let pat = self.kind.close();
        let dollar = matches!(self.kind, Kind::Inline | Kind::Display);
        let mut j = pos;
        let mut found = None;
        while j + pat.len() <= b.len() {
            // jump to the next byte that can matter: a backslash or the closer's first byte
            match b[j..].iter().position(|&c| c == b'\\' || c == pat[0]) {
                Some(k) => j += k,
                None => break,
            }
            if j + pat.len() > b.len() {
                break;
            }
            if dollar && b[j] == b'\\' {
                // `\$` is an escaped dollar, never a delimiter
                j += 2;
                continue;
            }
            if b[j] == pat[0] && (pat.len() == 1 || b[j + 1] == pat[1]) {
                found = Some(j);
                break;
            }
            j += 1;
        }
        self.valid = true;
        self.from = pos;
        self.found = found;
        found
    }
}

/// Short words that are math, not prose, when they appear in a span outside `\text{}`.
fn is_math_word(w: &[u8]) -> bool {
    const WORDS: &[&str] = &[
        "sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "sqrt", "max", "min", "gcd", "lcm",
        "mod", "det", "lim", "inf", "sup", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
        "pmod", "bmod", "deg", "arg", "ker", "dim", "infty",
    ];
    WORDS.iter().any(|k| k.as_bytes().eq_ignore_ascii_case(w))
}

/// True when a span body reads as math: non-empty, and fewer than two prose words outside
/// `\text{}`-like groups and command names. Linear in the body.
fn looks_like_math(body: &[u8], inline: bool) -> bool {
    if body.iter().all(|c| c.is_ascii_whitespace()) {
        return false;
    }
    if inline && body.windows(2).any(|w| w == b"\n\n") {
        return false;
    }
    let mut prose = 0;
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if c == b'\\' {
            let mut j = i + 1;
            while j < body.len() && body[j].is_ascii_alphabetic() {
                j += 1;
            }
            let name = &body[i + 1..j];
            let texty = matches!(
                name,
                b"text"
                    | b"mbox"
                    | b"textnormal"
                    | b"textbf"
                    | b"textit"
                    | b"textrm"
                    | b"hbox"
                    | b"begin"
                    | b"end"
                    | b"operatorname"
                    | b"mathrm"
            );
            i = j.max(i + 2);
            if texty {
                // skip the `{…}` group
                let mut k = i;
                while k < body.len() && body[k] == b' ' {
                    k += 1;
                }
                if k < body.len() && body[k] == b'{' {
                    let mut depth = 0usize;
                    while k < body.len() {
                        match body[k] {
                            b'{' => depth += 1,
                            b'}' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        k += 1;
                    }
                    i = k + 1;
                }
            }
            continue;
        }
        if c.is_ascii_alphabetic() {
            let mut j = i;
            while j < body.len() && body[j].is_ascii_alphabetic() {
                j += 1;
            }
            let w = &body[i..j];
            if w.len() >= 3 && !is_math_word(w) {
                prose += 1;
                if prose >= 2 {
                    return false;
                }
            }
            i = j;
            continue;
        }
        i += 1;
    }
    true
}

/// The text between two spans joins them into one answer (`,`, `and`, `or`, `, and`, `or`).
fn joins(between: &[u8]) -> bool {
    if between.len() > 12 {
        return false;
    }
    let t = String::from_utf8_lossy(between);
    let t = t.trim().to_ascii_lowercase();
    matches!(
        t.as_str(),
        "," | "and" | "or" | ", and" | ", or" | ",and" | ",or" | ";"
    )
}

fn is_digit_at(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_digit)
}

/// Separator characters that may sit inside a prose number.
fn is_num_space(b: &[u8], i: usize) -> Option<usize> {
    // ASCII space, no-break space (C2 A0), thin space (E2 80 89), narrow nbsp (E2 80 AF)
    match b.get(i)? {
        b' ' => Some(1),
        0xC2 if b.get(i + 1) == Some(&0xA0) => Some(2),
        0xE2 if b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0x89 | 0xAF)) => Some(3),
        _ => None,
    }
}

/// Reads the number run starting at `i` (a digit, or `.` before a digit). Returns the end of the
/// run (exclusive) and the canonical text, or `None` when the run is not a prose number.
fn read_number(b: &[u8], i: usize) -> usize {
    // the raw run: digits, `.`/`,` between digits, and spaces followed by exactly three digits
    // when the digits so far form a 1–3 digit group
    let mut j = i;
    let mut group = 0usize;
    let mut spaced = false;
    let mut separated = false;
    while j < b.len() && j - i < MAX_NUMBER {
        let c = b[j];
        if c.is_ascii_digit() {
            group += 1;
            j += 1;
        } else if (c == b'.' || c == b',') && is_digit_at(b, j + 1) {
            separated = true;
            group = 0;
            j += 1;
        } else if let Some(w) = is_num_space(b, j) {
            let prev_ok = if spaced {
                group == 3
            } else {
                (1..=3).contains(&group) && !separated
            };
            let next3 = (0..3).all(|k| is_digit_at(b, j + w + k)) && !is_digit_at(b, j + w + 3);
            if prev_ok && next3 {
                spaced = true;
                group = 0;
                j += w;
            } else {
                break;
            }
        } else {
            break;
        }
    }
    j
}

/// The raw run `b[range]` with its group spaces made plain.
fn raw_run(b: &[u8], range: Range<usize>) -> String {
    let mut raw = String::with_capacity(range.len());
    let mut j = range.start;
    while j < range.end {
        if let Some(w) = is_num_space(b, j) {
            raw.push(' ');
            j += w;
        } else {
            raw.push(b[j] as char);
            j += 1;
        }
    }
    raw
}

/// A number found by the scan, kept as positions until the scan ends.
#[derive(Debug, Clone)]
struct RawNumber {
    /// The digit run.
    run: Range<usize>,
    /// The denominator of a prose fraction (`3/4`).
    den: Option<Range<usize>>,
    percent: bool,
    neg: bool,
    range: Range<usize>,
}

impl RawNumber {
    fn finish(self, b: &[u8]) -> Option<ProseNumber> {
        let mut t = canonical_number(&raw_run(b, self.run))?;
        if let Some(d) = self.den {
            t.push('/');
            t.push_str(&raw_run(b, d));
        }
        if self.percent {
            t.push('%');
        }
        if self.neg {
            t.insert(0, '-');
        }
        Some(ProseNumber {
            text: t,
            range: self.range,
        })
    }
}

/// Separators → plain decimal text (see [`ProseNumber::text`]).
fn canonical_number(raw: &str) -> Option<String> {
    let raw = raw
        .trim_end_matches([',', '.', ' '])
        .trim_start_matches([',', ' ']);
    if raw.is_empty() {
        return None;
    }
    if raw.contains(' ') {
        let groups: Vec<&str> = raw.split(' ').collect();
        let ok = groups[0].len() <= 3
            && groups[0].bytes().all(|c| c.is_ascii_digit())
            && groups[1..groups.len() - 1].iter().all(|g| g.len() == 3)
            && groups
                .last()
                .is_some_and(|g| g.len() >= 3 && g.as_bytes()[..3].iter().all(u8::is_ascii_digit));
        if !ok {
            return canonical_number(groups.last().unwrap_or(&""));
        }
        let joined: String = groups.concat();
        return canonical_number(&joined);
    }
    let commas = raw.matches(',').count();
    let dots = raw.matches('.').count();
    let groups_of_three = |s: &str, sep: char| {
        let mut it = s.split(sep);
        let first = it.next().unwrap_or("");
        !first.is_empty() && first.len() <= 3 && it.all(|g| g.len() == 3)
    };
    let text = match (commas, dots) {
        (0, 0) => raw.to_string(),
        (0, 1) => raw.to_string(),
        (0, _) => {
            if groups_of_three(raw, '.') {
                raw.replace('.', "")
            } else {
                raw.rsplit('.').next().unwrap_or(raw).to_string()
            }
        }
        (_, 0) => {
            if groups_of_three(raw, ',') {
                raw.replace(',', "")
            } else if commas == 1 {
                raw.replace(',', ".")
            } else {
                raw.rsplit(',').next().unwrap_or(raw).to_string()
            }
        }
        _ => {
            let (last_c, last_d) = (raw.rfind(',').unwrap_or(0), raw.rfind('.').unwrap_or(0));
            if last_d > last_c && groups_of_three(&raw[..last_d], ',') {
                raw.replace(',', "")
            } else if last_c > last_d && groups_of_three(&raw[..last_c], '.') {
                raw.replace('.', "").replace(',', ".")
            } else {
                // `1.2,3.4` style lists: the last element
                let tail = &raw[last_c.max(last_d) + 1..];
                tail.to_string()
            }
        }
    };
    let text = text.trim_start_matches('0');
    let text = if text.is_empty() || text.starts_with('.') {
        format!("0{text}")
    } else {
        text.to_string()
    };
    Some(text)
}

/// A `-` (or U+2212) directly before byte `i` that reads as a sign, not a range dash or minus
/// between terms: preceded by the start, whitespace, `(`, `=`, `:`, `$` or a currency sign.
fn sign_before(b: &[u8], i: usize) -> Option<usize> {
    let start = if i >= 1 && b[i - 1] == b'-' {
        i - 1
    } else if i >= 3 && &b[i - 3..i] == "\u{2212}".as_bytes() {
        i - 3
    } else {
        return None;
    };
    let ok = start == 0
        || matches!(
            b[start - 1],
            b' ' | b'\n' | b'\t' | b'(' | b'=' | b':' | b'$' | b'*'
        )
        || b[start - 1] >= 0x80;
    ok.then_some(start)
}

/// True when a number starting at `i` stands alone: not glued to a preceding letter, digit,
/// `_`, `^`, `\` command or `{`.
fn starts_word(b: &[u8], i: usize) -> bool {
    if i == 0 {
        return true;
    }
    let p = b[i - 1];
    !(p.is_ascii_alphanumeric() || matches!(p, b'_' | b'^' | b'\\' | b'{' | b'.' | b',' | b'/'))
}

/// Ordinal suffixes (`3rd`, `2nd`) make a number a position, not an answer.
fn ordinal_after(b: &[u8], j: usize) -> bool {
    let s = &b[j..b.len().min(j + 3)];
    let word_end = |k: usize| !b.get(j + k).is_some_and(u8::is_ascii_alphabetic);
    (s.len() >= 2
        && (s[..2].eq_ignore_ascii_case(b"st")
            || s[..2].eq_ignore_ascii_case(b"nd")
            || s[..2].eq_ignore_ascii_case(b"rd")
            || s[..2].eq_ignore_ascii_case(b"th")))
        && word_end(2)
}

/// A `%`, `\%`, ` percent` right after a number: the end of the suffix.
fn percent_after(b: &[u8], j: usize) -> Option<usize> {
    let mut k = j;
    while k < b.len() && b[k] == b' ' && k - j < 2 {
        k += 1;
    }
    if b.get(k) == Some(&b'%') {
        return Some(k + 1);
    }
    if b[k..].starts_with(b"\\%") {
        return Some(k + 2);
    }
    if b.len() >= k + 7 && b[k..k + 7].eq_ignore_ascii_case(b"percent") {
        return Some(k + 7);
    }
    None
}

/// Bytes that can start a math span (`\\`, `$`) or a number (a digit, `.`).
const INTERESTING: [bool; 256] = {
    let mut t = [false; 256];
    t[b'\\' as usize] = true;
    t[b'$' as usize] = true;
    t[b'.' as usize] = true;
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = true;
        d += 1;
    }
    t
};

/// Scans `text` once for math spans and prose numbers (see the module docs).
pub fn scan(text: &str) -> Scan {
    let b = text.as_bytes();
    let mut closers = [
        Closer::new(Kind::Inline),
        Closer::new(Kind::Display),
        Closer::new(Kind::Paren),
        Closer::new(Kind::Bracket),
    ];
    let mut out = Scan::default();
    let mut last: Option<RawNumber> = None;
    let mut first_done = false;
    let mut i = 0;
    while i < b.len() {
        // skip to the next byte that can start a span or a number
        while i < b.len() && !INTERESTING[b[i] as usize] {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let c = b[i];
        let kind = match c {
            b'\\' => match b.get(i + 1) {
                Some(b'(') => Some(Kind::Paren),
                Some(b'[') => Some(Kind::Bracket),
                _ => {
                    i += 2;
                    continue;
                }
            },
            b'$' => Some(if b.get(i + 1) == Some(&b'$') {
                Kind::Display
            } else {
                Kind::Inline
            }),
            _ => None,
        };
        if let Some(kind) = kind {
            let body_start = i + kind.open_len();
            let idx = kind as usize;
            match closers[idx].find(b, body_start) {
                None => i = body_start,
                Some(close) => {
                    let body = &b[body_start..close];
                    let outer_end = close + kind.close().len();
                    if body.len() <= MAX_SPAN && looks_like_math(body, kind == Kind::Inline) {
                        let span = MathSpan {
                            outer: i..outer_end,
                            body: body_start..close,
                        };
                        push_span(&mut out.final_math, span.clone(), b);
                        if !first_done {
                            let joined = out.first_math.last().is_some_and(|prev: &MathSpan| {
                                joins(&b[prev.outer.end..span.outer.start])
                            });
                            if out.first_math.is_empty() || joined {
                                if out.first_math.len() < MAX_JOINED {
                                    out.first_math.push(span);
                                }
                            } else {
                                first_done = true;
                            }
                        }
                        i = outer_end;
                    } else if kind == Kind::Inline {
                        // currency: the `$` is text, and so is what follows it
                        i = body_start;
                    } else {
                        i = outer_end;
                    }
                }
            }
            continue;
        }
        let starts_number =
            c.is_ascii_digit() || (c == b'.' && is_digit_at(b, i + 1) && starts_word(b, i));
        if starts_number {
            let glued = !starts_word(b, i);
            let mut end = read_number(b, i);
            let run = i..end;
            let mut den = None;
            // a fraction written in prose: `3/4 of the cake`
            if b.get(end) == Some(&b'/') && is_digit_at(b, end + 1) {
                let plain = b[i..end].iter().all(u8::is_ascii_digit);
                let mut k = end + 1;
                while k < b.len() && b[k].is_ascii_digit() && k - end < MAX_NUMBER {
                    k += 1;
                }
                if plain
                    && !b
                        .get(k)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'/')
                {
                    den = Some(end + 1..k);
                    end = k;
                }
            }
            if !glued && !ordinal_after(b, end) {
                let percent = percent_after(b, end);
                let sign = sign_before(b, i);
                last = Some(RawNumber {
                    run,
                    den,
                    percent: percent.is_some(),
                    neg: sign.is_some(),
                    range: sign.unwrap_or(i)..percent.unwrap_or(end),
                });
            }
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    out.last_number = last.and_then(|n| n.finish(b));
    out
}

fn push_span(chain: &mut Vec<MathSpan>, span: MathSpan, b: &[u8]) {
    let joined = chain
        .last()
        .is_some_and(|prev| joins(&b[prev.outer.end..span.outer.start]));
    if !joined {
        chain.clear();
    }
    if chain.len() == MAX_JOINED {
        chain.remove(0);
    }
    chain.push(span);
}

/// The bodies of `spans` joined by `, ` (each trimmed).
pub fn join_bodies(text: &str, spans: &[MathSpan]) -> String {
    spans
        .iter()
        .map(|s| text[s.body.clone()].trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn final_math(t: &str) -> String {
        join_bodies(t, &scan(t).final_math)
    }

    fn last_num(t: &str) -> Option<String> {
        scan(t).last_number.map(|n| n.text)
    }

    #[test]
    fn spans() {
        assert_eq!(
            final_math("so $x = 1$ and then $$\n y = 2\n$$ done"),
            "y = 2"
        );
        assert_eq!(final_math("roots $x=2$ and $x=3$."), "x=2, x=3");
        assert_eq!(
            final_math("we get \\(\\frac{1}{2}\\), \\[ 3 \\]"),
            "\\frac{1}{2}, 3"
        );
        assert_eq!(final_math("Answer $ 9 $"), "9");
        assert_eq!(final_math("costs \\$5 and $x$"), "x");
        // currency dollars are not math
        assert_eq!(final_math("pay $5 for a pen and $3 for ink"), "");
        assert_eq!(
            last_num("pay $5 for a pen and $3 for ink"),
            Some("3".into())
        );
        assert_eq!(final_math("unclosed \\( x"), "");
        assert_eq!(final_math("$a$ text $b$"), "b");
    }

    #[test]
    fn numbers() {
        for (t, n) in [
            ("it costs €1.234,50 now", "1234.50"),
            ("it is 1,234,567 in all", "1234567"),
            ("a 3,5 m board", "3.5"),
            ("about 1 234 567 people", "1234567"),
            ("grew by 45 %", "45%"),
            ("grew by 45 percent", "45%"),
            ("p = .4", "0.4"),
            ("it is -7 degrees", "-7"),
            ("pages 3-4", "4"),
            ("area 12 m² total", "12"),
            ("x2 and y3 but 5", "5"),
            ("the 3rd one is 8 and the 2nd", "8"),
            ("version 1.2.3", "3"),
            ("1.234.567 inhabitants", "1234567"),
            ("007", "7"),
            ("eat 3/4 of the cake", "3/4"),
            ("half is 1/2.", "1/2"),
            ("0.50", "0.50"),
        ] {
            assert_eq!(last_num(t).as_deref(), Some(n), "{t}");
        }
        assert_eq!(last_num("no digits"), None);
        assert_eq!(last_num("x_1 y^2"), None);
        // numbers inside math spans are not prose numbers
        assert_eq!(last_num("we get 5 and $x = 7$"), Some("5".into()));
    }

    #[test]
    fn linear_on_adversarial_text() {
        for piece in ["\\(", "$", "\\[", "$$", "1,", "1 ", "\\( a b c ", "$5 and "] {
            let t = piece.repeat(200_000);
            let start = std::time::Instant::now();
            let _ = scan(&t);
            assert!(start.elapsed().as_millis() < 500, "{piece:?}");
        }
    }
}
