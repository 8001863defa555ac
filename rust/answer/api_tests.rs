//! Behaviour of the public verifier API beyond the labeled fixture.

use crate::answer::{
    answer_key, extract_answer, gold_parseable, verify, verify_completion, ExtractOptions,
    VerdictReason, VerifyOptions,
};

#[test]
fn reason_codes_are_stable() {
    use VerdictReason as R;
    let codes = [
        (R::ExactString, 1),
        (R::NumericExact, 2),
        (R::NumericClose, 3),
        (R::Symbolic, 4),
        (R::Structural, 5),
        (R::Equation, 6),
        (R::Choice, 7),
        (R::Text, 8),
        (R::NotEquivalent, 100),
        (R::PredictionMissing, 101),
        (R::GoldUnparseable, 102),
        (R::InputTooLong, 103),
    ];
    for (r, c) in codes {
        assert_eq!(r.code(), c, "{r:?}");
    }
}

#[test]
fn reasons_are_reported() {
    let o = VerifyOptions::default();
    assert_eq!(verify("5", "5", &o).reason, VerdictReason::ExactString);
    assert_eq!(
        verify("0.5", "\\frac12", &o).reason,
        VerdictReason::NumericExact
    );
    assert_eq!(
        verify("\\pi", "3.14159", &o).reason,
        VerdictReason::NumericClose
    );
    assert_eq!(verify("2x+2", "2(x+1)", &o).reason, VerdictReason::Symbolic);
    assert_eq!(
        verify("(1,2)", "(1, 2.0)", &o).reason,
        VerdictReason::Structural
    );
    assert_eq!(verify("x=5", "5.0", &o).reason, VerdictReason::Equation);
    assert_eq!(verify("C", "Option C", &o).reason, VerdictReason::Choice);
    assert_eq!(verify("\\text{Yes}", "yes", &o).reason, VerdictReason::Text);
    assert_eq!(verify("5", "6", &o).reason, VerdictReason::NotEquivalent);
    assert_eq!(
        verify("5", " ", &o).reason,
        VerdictReason::PredictionMissing
    );
    assert_eq!(
        verify("\\frac{", "5", &o).reason,
        VerdictReason::GoldUnparseable
    );
    assert_eq!(verify("", "5", &o).reason, VerdictReason::GoldUnparseable);
    assert_eq!(
        verify("5", &"1".repeat(5000), &o).reason,
        VerdictReason::InputTooLong
    );
}

#[test]
fn tolerance_is_configurable() {
    let loose = VerifyOptions {
        rel_tol: 1e-2,
        ..VerifyOptions::default()
    };
    let tight = VerifyOptions {
        rel_tol: 1e-8,
        ..VerifyOptions::default()
    };
    assert!(verify("\\pi", "3.14", &loose).equivalent);
    assert!(!verify("\\pi", "3.14", &VerifyOptions::default()).equivalent);
    assert!(!verify("\\pi", "3.14159", &tight).equivalent);
    let strict_pct = VerifyOptions {
        percent_lenient: false,
        ..VerifyOptions::default()
    };
    assert!(!verify("50", "50\\%", &strict_pct).equivalent);
    assert!(verify("0.5", "50\\%", &strict_pct).equivalent);
}

#[test]
fn completions_are_extracted_then_verified() {
    let o = VerifyOptions::default();
    let text = "<think>Try \\boxed{4}? No, recount.</think>\n**Final Answer**\n\\[\\boxed{\\dfrac{7}{2}}\\]";
    assert!(verify_completion("3.5", text, &o).equivalent);
    assert!(verify_completion("#### 18", "She makes $18 a day. The answer is 18.", &o).equivalent);
    assert_eq!(
        verify_completion("5", "I don't know", &o).reason,
        VerdictReason::PredictionMissing
    );
    let fallback = VerifyOptions {
        last_number_fallback: true,
        ..VerifyOptions::default()
    };
    assert!(verify_completion("5", "so we get 5", &fallback).equivalent);
    let aimo = VerifyOptions {
        aimo: true,
        ..VerifyOptions::default()
    };
    assert!(verify_completion("24", "\\boxed{2024}", &aimo).equivalent);
    assert!(verify("24", "1024", &aimo).equivalent);
    assert!(!verify_completion("24", "\\boxed{2025}", &aimo).equivalent);
}

#[test]
fn options_json_is_strict() {
    let o: VerifyOptions = serde_json::from_str(r#"{"rel_tol":0.001}"#).unwrap();
    assert_eq!(o.rel_tol, 0.001);
    assert!(o.prefer_after_think);
    assert!(serde_json::from_str::<VerifyOptions>(r#"{"tolerance":0.1}"#).is_err());
    assert!(serde_json::from_str::<ExtractOptions>(r#"{"aimo":true,"x":1}"#).is_err());
    let e: ExtractOptions = serde_json::from_str("{}").unwrap();
    assert_eq!(e, ExtractOptions::default());
}

#[test]
fn extraction_forms() {
    let o = ExtractOptions::default();
    assert_eq!(extract_answer("\\fbox{12}", &o).as_deref(), Some("12"));
    assert_eq!(
        extract_answer("Final answer: **42**", &o).as_deref(),
        Some("42")
    );
    assert_eq!(
        extract_answer("the answer is \\(x^2\\). Done", &o).as_deref(),
        Some("x^2")
    );
    assert_eq!(
        extract_answer("$\\boxed{\\left(1, \\frac{1}{2}\\right)}$", &o).as_deref(),
        Some("\\left(1, \\frac{1}{2}\\right)")
    );
    let no_after = ExtractOptions {
        prefer_after_think: false,
        ..ExtractOptions::default()
    };
    assert_eq!(
        extract_answer("\\boxed{1}</think>Final answer: 2", &no_after).as_deref(),
        Some("1")
    );
    assert_eq!(
        extract_answer("\\boxed{1}</think>Final answer: 2", &o).as_deref(),
        Some("2")
    );
}

#[test]
fn keys_group_equivalent_answers() {
    let groups: &[&[&str]] = &[
        &["\\frac{1}{2}", "0.5", "1/2", "\\dfrac{2}{4}", "50\\%"],
        &["1000", "1,000", "1 000", "10^3", "x = 1000"],
        &["\\{1,2\\}", "\\{2,1\\}", "2, 1", "\\{1,2,2\\}"],
        &["2\\sqrt{2}", "\\sqrt{8}"],
        &["x^2-1", "(x-1)(x+1)"],
        &["(1,2)", "\\left(1, 2\\right)"],
        &["\\text{Yes}", "yes"],
    ];
    for g in groups {
        let k0 = answer_key(g[0]);
        assert!(k0.is_some());
        for a in &g[1..] {
            assert_eq!(answer_key(a), k0, "{a} vs {}", g[0]);
        }
    }
    assert_ne!(answer_key("(1,2)"), answer_key("(2,1)"));
    assert_ne!(answer_key("[1,2]"), answer_key("(1,2)"));
    assert_ne!(answer_key("3"), answer_key("4"));
}

#[test]
fn gold_parseability() {
    for g in [
        "5",
        "\\frac{1}{2}",
        "\\text{Evelyn}",
        "#### 18",
        "(1,2]",
        "x^2+1",
        "\\{1,2\\}",
    ] {
        assert!(gold_parseable(g), "{g}");
    }
    for g in ["", "   ", "\\frac{", "\\boxed{}", "\\begin{pmatrix"] {
        assert!(!gold_parseable(g), "{g:?}");
    }
}

#[test]
fn free_form_is_the_default_and_strict_is_an_option() {
    let free = VerifyOptions::default();
    let strict = VerifyOptions::strict();
    for (gold, text) in [
        ("5", "so we get 5"),
        ("x \\geq 5", "Therefore $x \\geq 5$ is the solution."),
        ("12", "The total is $4 \\times 3 = 12$."),
    ] {
        assert!(verify_completion(gold, text, &free).equivalent, "{text}");
        let v = verify_completion(gold, text, &strict);
        assert_eq!(v.reason, VerdictReason::PredictionMissing, "{text}");
    }
    // a box or an answer phrase is read in both forms
    for text in ["\\boxed{5}", "The answer is 5.", "#### 5"] {
        assert!(verify_completion("5", text, &free).equivalent, "{text}");
        assert!(verify_completion("5", text, &strict).equivalent, "{text}");
    }
    // the JSON spelling of the strict form
    let json: VerifyOptions =
        serde_json::from_str(r#"{"final_math": false, "last_number_fallback": false}"#).unwrap();
    assert_eq!(json, strict);
    assert_eq!(free.extract_options(), ExtractOptions::free_form());
    // ExtractOptions::default() (voting) stays strict: no final math, no last number
    let vote = ExtractOptions::default();
    assert_eq!(extract_answer("She has 3 + 4 = 7 apples.", &vote), None);
    assert_eq!(extract_answer("so $x = 7$", &vote), None);
    assert_eq!(
        extract_answer("so $x = 7$", &ExtractOptions::free_form()).as_deref(),
        Some("x = 7")
    );
}

#[test]
fn free_form_extraction_order() {
    let o = ExtractOptions::free_form();
    let ex = |t: &str| extract_answer(t, &o);
    // box beats phrase beats final math / last number
    assert_eq!(
        ex("The answer is 3. \\boxed{4} then $5$").as_deref(),
        Some("4")
    );
    assert_eq!(ex("The answer is 3. Then $5$ and 6.").as_deref(), Some("3"));
    // final math and last number: whichever ends later
    assert_eq!(ex("We get $x = 2$, so 7 in all.").as_deref(), Some("7"));
    assert_eq!(ex("We get 7, so $x = 2$.").as_deref(), Some("x = 2"));
    // after </think> first, for every step
    assert_eq!(
        ex("<think>$x=1$ \\boxed{1}</think> so 2").as_deref(),
        Some("1")
    );
    assert_eq!(ex("<think>so $x=1$</think> it is 2").as_deref(), Some("2"));
    assert_eq!(ex("<think>so $x=1$</think> done").as_deref(), Some("x=1"));
    // joined spans, aligned last line, currency, decimal comma
    assert_eq!(ex("roots $1$, $2$ and $3$").as_deref(), Some("1, 2, 3"));
    assert_eq!(
        ex("$$\\begin{aligned} y &= 2+3 \\\\ &= 5 \\end{aligned}$$").as_deref(),
        Some("5")
    );
    assert_eq!(ex("pay $5 and $7 later").as_deref(), Some("7"));
    assert_eq!(ex("it is 3,5 m").as_deref(), Some("3.5"));
    assert_eq!(ex("no numbers at all"), None);
}

#[test]
fn long_completions_read_their_tail_first() {
    let o = VerifyOptions::default();
    let para = "We compute 3 + 4 = 7 and $x = 2$.\n\n";
    let long = para.repeat(3000);
    assert!(verify_completion("99", &(long.clone() + "So the total is $99$."), &o).equivalent);
    assert!(verify_completion("99", &(long + "So the total is 99 apples."), &o).equivalent);
    // nothing in the tail: the whole text is read
    let quiet = "Words only, no figures.\n\n".repeat(4000);
    assert!(verify_completion("5", &format!("We get $x = 5$.\n\n{quiet}"), &o).equivalent);
    let v = verify_completion("7", &quiet, &o);
    assert_eq!(v.reason, VerdictReason::PredictionMissing);
    // a display block opened before the tail still pairs up: the tail starts at a blank line
    let spans = format!("{}$$\ny = 3\n$$", "Some $a$ and $b$ text.\n\n".repeat(4000));
    assert!(verify_completion("3", &spans, &o).equivalent);
}
