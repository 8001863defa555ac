//! What `solve` and `eval` print for people: answers in display form marked against the gold,
//! and one summary line.

use fmr::answer::{verify_completion, VerifyOptions};
use fmr::generate::{GroupResult, RolloutParams};

/// The verifier options matching how a rollout extracted its answers.
pub fn verify_options(params: &RolloutParams) -> VerifyOptions {
    VerifyOptions {
        last_number_fallback: params.answer.last_number_fallback,
        answer_phrases: params.answer.answer_phrases,
        prefer_after_think: params.answer.prefer_after_think,
        aimo: params.answer.aimo,
        ..Default::default()
    }
}

/// `✓` or `✗`; nothing when there is no gold answer to compare with.
pub fn mark(correct: Option<bool>) -> &'static str {
    match correct {
        Some(true) => "✓",
        Some(false) => "✗",
        None => "",
    }
}

/// One group's answers judged against `gold` (None when there is no gold answer).
pub struct Judged {
    /// Per sample: correct?
    pub samples: Vec<Option<bool>>,
    /// The voted answer: correct?
    pub voted: Option<bool>,
}

/// Judges each sample's completion against `gold` with the verifier, and the vote by the first
/// sample that gave the voted answer.
pub fn judge(result: &GroupResult, gold: &str, opts: &VerifyOptions) -> Judged {
    if gold.trim().is_empty() {
        return Judged {
            samples: vec![None; result.samples.len()],
            voted: None,
        };
    }
    let samples: Vec<Option<bool>> = result
        .samples
        .iter()
        .map(|s| Some(verify_completion(gold, &s.text, opts).equivalent))
        .collect();
    let voted = Some(result.voted_answer.as_ref().is_some_and(|key| {
        result
            .samples
            .iter()
            .zip(&samples)
            .find(|(s, _)| s.answer.as_ref() == Some(key))
            .is_some_and(|(_, c)| *c == Some(true))
    }));
    Judged { samples, voted }
}

/// The answer of a sample or a vote as a person reads it; "no answer" when there is none.
pub fn shown(display: Option<&str>) -> String {
    match display {
        Some(d) if !d.trim().is_empty() => d.trim().to_string(),
        Some(_) => "(empty)".into(),
        None => "no answer".into(),
    }
}

/// Totals over the problems of a run.
#[derive(Default)]
pub struct Tally {
    pub problems: usize,
    /// Problems with a gold answer, and those whose vote was correct.
    pub graded: usize,
    pub correct: usize,
    pub tokens: usize,
    pub tokens_fixed_budget: usize,
    pub seconds: f64,
}

impl Tally {
    /// Adds one problem.
    pub fn add(&mut self, result: &GroupResult, voted_correct: Option<bool>) {
        self.problems += 1;
        if let Some(c) = voted_correct {
            self.graded += 1;
            self.correct += c as usize;
        }
        self.tokens += result.tokens_generated;
        self.tokens_fixed_budget += result.tokens_fixed_budget;
        self.seconds += result.wall_seconds;
    }

    /// `summary: 3 problems | accuracy 66.7% (2/3) | 1234 tokens, 411 per problem | 73% saved
    /// (4600 without early stopping) | 12.3 s`
    pub fn summary_line(&self) -> String {
        let mut parts = vec![format!(
            "{} problem{}",
            self.problems,
            if self.problems == 1 { "" } else { "s" }
        )];
        if self.graded > 0 {
            parts.push(format!(
                "accuracy {:.1}% ({}/{})",
                100.0 * self.correct as f64 / self.graded as f64,
                self.correct,
                self.graded
            ));
        }
        parts.push(format!(
            "{} tokens, {:.0} per problem",
            self.tokens,
            self.tokens as f64 / self.problems.max(1) as f64
        ));
        parts.push(format!(
            "{:.0}% saved ({} without early stopping)",
            100.0 * (1.0 - self.tokens as f64 / self.tokens_fixed_budget.max(1) as f64),
            self.tokens_fixed_budget
        ));
        parts.push(format!("{:.1} s", self.seconds));
        format!("summary: {}", parts.join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fmr::generate::{FinishReason, SampleResult, VoteEntry};

    fn sample(text: &str, key: Option<&str>, display: Option<&str>) -> SampleResult {
        SampleResult {
            text: text.into(),
            tokens: vec![1, 2, 3],
            logprobs: vec![0.0; 3],
            finish_reason: FinishReason::Eos,
            answer: key.map(str::to_string),
            answer_display: display.map(str::to_string),
            forced_tokens: 0,
            token_confidence: Vec::new(),
            confidence: None,
            top_tokens: Vec::new(),
            top_logprobs: Vec::new(),
            probes: Vec::new(),
            probe_tokens: 0,
        }
    }

    fn group() -> GroupResult {
        GroupResult {
            prompt_tokens: 10,
            samples: vec![
                sample(
                    "so \\boxed{\\frac{1}{2}}",
                    Some("q:1/2"),
                    Some("\\frac{1}{2}"),
                ),
                sample("it is \\boxed{3}", Some("q:3"), Some("3")),
                sample("no idea", None, None),
            ],
            votes: vec![
                VoteEntry {
                    answer: "q:1/2".into(),
                    count: 1,
                    weight: 1.0,
                },
                VoteEntry {
                    answer: "q:3".into(),
                    count: 1,
                    weight: 1.0,
                },
            ],
            voted_answer: Some("q:1/2".into()),
            tokens_generated: 9,
            tokens_fixed_budget: 12,
            stopped_by_consensus: false,
            cancelled: false,
            wall_seconds: 1.5,
            prompt_seconds: 0.1,
            probe_tokens: 0,
            confidence_threshold: None,
        }
    }

    #[test]
    fn answers_are_judged_against_the_gold_and_summed_up_for_people() {
        let g = group();
        let opts = VerifyOptions::default();
        let j = judge(&g, "0.5", &opts);
        assert_eq!(j.samples, vec![Some(true), Some(false), Some(false)]);
        assert_eq!(j.voted, Some(true));
        assert_eq!(mark(j.voted), "✓");
        assert_eq!(shown(g.answer_display("q:1/2")), "\\frac{1}{2}");
        assert_eq!(shown(None), "no answer");
        let ungraded = judge(&g, "", &opts);
        assert_eq!(ungraded.voted, None);
        assert_eq!(mark(ungraded.voted), "");

        let mut t = Tally::default();
        t.add(&g, j.voted);
        t.add(&g, Some(false));
        let line = t.summary_line();
        assert_eq!(
            line,
            "summary: 2 problems | accuracy 50.0% (1/2) | 18 tokens, 9 per problem | 25% saved \
             (24 without early stopping) | 3.0 s"
        );
        assert!(!line.contains("Some(") && !line.contains("q:"));
    }
}
