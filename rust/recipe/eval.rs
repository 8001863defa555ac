//! Held-out evaluation of a model (optionally with an adapter): one completion per problem,
//! accuracy and format rate with 95% Wilson intervals, mean and p90 completion tokens.

use serde::{Deserialize, Serialize};

use super::data::Problem;
use crate::error::{Error, ErrorCode, Result};
use crate::generate::{Generator, GroupRequest, RolloutHooks, RolloutParams};
use crate::reward::{correctness, format_reward_with, RewardConfig};

/// A proportion with its 95% Wilson score interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Proportion {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Proportion {
    /// `k` successes out of `n` (n = 0 gives 0 with the interval [0, 1]).
    pub fn wilson(k: usize, n: usize) -> Proportion {
        if n == 0 {
            return Proportion {
                value: 0.0,
                lo: 0.0,
                hi: 1.0,
            };
        }
        let (k, n, z) = (k as f64, n as f64, 1.959_963_984_540_054_f64);
        let p = k / n;
        let denom = 1.0 + z * z / n;
        let centre = (p + z * z / (2.0 * n)) / denom;
        let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / denom;
        Proportion {
            value: p,
            lo: (centre - half).max(0.0),
            hi: (centre + half).min(1.0),
        }
    }
}

/// One evaluated problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    pub problem: String,
    pub answer: String,
    pub completion: String,
    pub tokens: usize,
    pub correct: bool,
    pub formatted: bool,
}

/// Summary of an evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub n: usize,
    pub accuracy: Proportion,
    pub format_rate: Proportion,
    pub mean_tokens: f64,
    pub p90_tokens: usize,
    pub total_tokens: usize,
    pub wall_s: f64,
}

impl EvalReport {
    /// Summarises rows.
    pub fn from_rows(rows: &[EvalRow], wall_s: f64) -> EvalReport {
        let n = rows.len();
        let mut toks: Vec<usize> = rows.iter().map(|r| r.tokens).collect();
        toks.sort_unstable();
        let p90 = if n == 0 {
            0
        } else {
            toks[((0.9 * n as f64).ceil() as usize).clamp(1, n) - 1]
        };
        let total: usize = toks.iter().sum();
        EvalReport {
            n,
            accuracy: Proportion::wilson(rows.iter().filter(|r| r.correct).count(), n),
            format_rate: Proportion::wilson(rows.iter().filter(|r| r.formatted).count(), n),
            mean_tokens: total as f64 / n.max(1) as f64,
            p90_tokens: p90,
            total_tokens: total,
            wall_s,
        }
    }
}

/// Generates one completion per problem with `params` (its `n_samples` is forced to 1) and
/// scores it with the verifier (`rewards` gives its options) and the format rule. The problems
/// decode together, as many at once as the generator's context has sequences. `on_row` sees
/// each row as it is done (in finishing order, with its problem index, for progress output);
/// the rows come back in problem order.
pub fn evaluate(
    gen: &mut Generator,
    problems: &[Problem],
    params: &RolloutParams,
    rewards: &RewardConfig,
    on_row: &mut dyn FnMut(usize, &EvalRow),
) -> Result<(EvalReport, Vec<EvalRow>)> {
    let start = std::time::Instant::now();
    let mut p = params.clone();
    p.n_samples = 1;
    let mut requests = Vec::with_capacity(problems.len());
    for pr in problems {
        requests.push(GroupRequest {
            prompt: p.prompt.tokenize(gen.context().model(), &pr.problem)?,
            params: p.clone(),
            hooks: RolloutHooks::default(),
        });
    }
    let mut rows: Vec<Option<Result<EvalRow>>> = (0..problems.len()).map(|_| None).collect();
    gen.rollout_many(requests, 0, None, &mut |i, res| {
        let row = res.map(|res| {
            let s = &res.samples[0];
            let pr = &problems[i];
            EvalRow {
                problem: pr.problem.clone(),
                answer: pr.answer.clone(),
                completion: s.text.clone(),
                tokens: s.tokens.len(),
                correct: correctness(&pr.answer, &s.text, rewards).correct,
                formatted: format_reward_with(&s.text, rewards.format_requires_think) > 0.0,
            }
        });
        if let Ok(r) = &row {
            on_row(i, r);
        }
        rows[i] = Some(row);
    })?;
    let rows = rows
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| Err(Error::new(ErrorCode::Internal, "a problem never finished")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((
        EvalReport::from_rows(&rows, start.elapsed().as_secs_f64()),
        rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_matches_known_values() {
        // 50/100: centre 0.5, half-width 0.0962 (textbook value).
        let p = Proportion::wilson(50, 100);
        assert!(
            (p.lo - 0.4038).abs() < 1e-3 && (p.hi - 0.5962).abs() < 1e-3,
            "{p:?}"
        );
        let z = Proportion::wilson(0, 20);
        assert_eq!(z.lo, 0.0);
        assert!((z.hi - 0.1611).abs() < 1e-3, "{z:?}");
    }

    #[test]
    fn p90_and_means() {
        let rows: Vec<EvalRow> = (1..=10)
            .map(|t| EvalRow {
                problem: String::new(),
                answer: String::new(),
                completion: String::new(),
                tokens: t * 10,
                correct: t % 2 == 0,
                formatted: true,
            })
            .collect();
        let r = EvalReport::from_rows(&rows, 1.0);
        assert_eq!(r.p90_tokens, 90);
        assert_eq!(r.mean_tokens, 55.0);
        assert_eq!(r.accuracy.value, 0.5);
        assert_eq!(r.format_rate.value, 1.0);
    }
}
