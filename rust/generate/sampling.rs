//! Per-sample token sampling: temperature, top-k, top-p, min-p and a seeded draw, plus the
//! log-probability of the drawn token.
//!
//! The filters compose as in vLLM (the paper's sampler): temperature scales the logits, top-k
//! keeps the k most likely tokens, top-p keeps the smallest set of those whose mass reaches p
//! (mass renormalized over the top-k set), min-p drops tokens below `min_p x` the top
//! probability. Only tokens that can survive min-p are ever sorted, so a step costs three linear
//! passes over the vocabulary (max, normalizer, candidates) plus a sort of a few candidates.

use crate::engine::Token;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Sampling settings. The defaults are the paper's GRPO sampling values (temperature 1.0,
/// top_p 0.9, min_p 0.05, no top-k).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    /// Softmax temperature; 0 = greedy. Range 0..=10.
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 = off.
    pub top_k: i32,
    /// Nucleus sampling mass in (0, 1]; 1 = off.
    pub top_p: f32,
    /// Drop tokens whose probability is below min_p x the top probability; 0 = off. Range [0, 1).
    pub min_p: f32,
    /// Base seed; sample `i` of a group uses `seed + i`, so the same seed gives the same output.
    pub seed: u32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.9,
            min_p: 0.05,
            seed: 42,
        }
    }
}

impl SamplingParams {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=10.0).contains(&self.temperature) {
            return Err(Error::invalid(format!(
                "temperature must be in [0, 10], got {}",
                self.temperature
            )));
        }
        if self.top_k < 0 {
            return Err(Error::invalid(format!(
                "top_k must be >= 0, got {}",
                self.top_k
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::invalid(format!(
                "top_p must be in (0, 1], got {}",
                self.top_p
            )));
        }
        if !(0.0..1.0).contains(&self.min_p) {
            return Err(Error::invalid(format!(
                "min_p must be in [0, 1), got {}",
                self.min_p
            )));
        }
        Ok(())
    }
}

/// A seeded sampler for one sample of a group. Owns its RNG state and scratch space; not shared
/// between threads (it is `Send`).
pub struct Sampler {
    params: SamplingParams,
    rng: SplitMix64,
    /// Candidate (scaled logit, token) pairs, reused across steps.
    candidates: Vec<(f32, Token)>,
    /// How many of the most likely tokens [`Sampler::top_logprobs`] reports (0 = none).
    top_k_logprobs: usize,
    /// The most likely tokens of the last step: (raw logit, token) while sampling, then
    /// (log-probability, token) sorted by descending probability.
    top: Vec<(f32, Token)>,
}

impl Sampler {
    /// A sampler with its own seed.
    pub fn new(params: &SamplingParams, seed: u64) -> Result<Sampler> {
        params.validate()?;
        Ok(Sampler {
            params: params.clone(),
            rng: SplitMix64(seed),
            candidates: Vec::new(),
            top_k_logprobs: 0,
            top: Vec::new(),
        })
    }

    /// Also reports the `k` most likely tokens of every step ([`Sampler::top_logprobs`]),
    /// found in the pass over the logits that sampling makes anyway (0 = off).
    pub fn with_top_logprobs(mut self, k: usize) -> Sampler {
        self.top_k_logprobs = k;
        self
    }

    /// The `k` most likely tokens of the last [`Sampler::sample`] call (fewer when the
    /// vocabulary is smaller) as (log-probability, token) pairs in descending order, with
    /// log-probabilities under the same distribution as the drawn token's. Empty when
    /// [`Sampler::with_top_logprobs`] was not set.
    pub fn top_logprobs(&self) -> &[(f32, Token)] {
        &self.top
    }

    /// Draws a token from `logits` (one row, length n_vocab) and returns it with its
    /// log-probability (nats) under softmax(logits / temperature) over the whole vocabulary
    /// (temperature 0 = greedy, log-probability at temperature 1).
    ///
    /// Errors: an empty row, or a row holding NaN or ±inf (a corrupt model or adapter); the
    /// check rides on the pass that finds the maximum.
    pub fn sample(&mut self, logits: &[f32]) -> std::result::Result<(Token, f32), BadLogits> {
        if logits.is_empty() {
            return Err(BadLogits::Empty);
        }
        let p = &self.params;
        let inv_t = if p.temperature > 0.0 {
            1.0 / p.temperature
        } else {
            1.0
        };
        let (max, all_finite) = max_and_finite(logits);
        if !all_finite {
            return Err(BadLogits::NonFinite);
        }
        let log_z = log_sum_exp_scaled(logits, max, inv_t);
        let logprob = |t: Token| (logits[t as usize] - max) * inv_t - log_z;
        let k_top = self.top_k_logprobs;
        self.top.clear();
        if p.temperature == 0.0 {
            let t = if k_top > 0 {
                // The argmax is the first of the top tokens: one pass finds both.
                let mut top_min = f32::NEG_INFINITY;
                for (i, &l) in logits.iter().enumerate() {
                    if l > top_min || self.top.len() < k_top {
                        top_min = push_top(&mut self.top, k_top, l, i as Token);
                    }
                }
                finish_top(&mut self.top, max, inv_t, log_z);
                self.top[0].1
            } else {
                argmax(logits)
            };
            return Ok((t, logprob(t)));
        }
        // Candidates: every token min-p could keep (scaled logit >= ln(min_p)); all tokens when
        // min-p is off. Scaled logits are <= 0, the top token's is 0.
        // The test runs on raw logits (a compare per token) and scales only the survivors.
        let raw_floor = if p.min_p > 0.0 {
            max + p.min_p.ln() * p.temperature
        } else {
            f32::NEG_INFINITY
        };
        self.candidates.clear();
        if k_top > 0 {
            // The same pass keeps the k largest logits (a compare per token; rare inserts).
            let mut top_min = f32::NEG_INFINITY;
            for (i, &l) in logits.iter().enumerate() {
                if l >= raw_floor {
                    self.candidates.push(((l - max) * inv_t, i as Token));
                }
                if l > top_min || self.top.len() < k_top {
                    top_min = push_top(&mut self.top, k_top, l, i as Token);
                }
            }
            finish_top(&mut self.top, max, inv_t, log_z);
        } else {
            for (i, &l) in logits.iter().enumerate() {
                if l >= raw_floor {
                    self.candidates.push(((l - max) * inv_t, i as Token));
                }
            }
        }
        let by_logit_desc =
            |a: &(f32, Token), b: &(f32, Token)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        // Normalizer of the distribution top-p works on: the whole vocabulary, or the top-k set.
        let mut norm = log_z.exp();
        let k = p.top_k as usize;
        if k > 0 && k < logits.len() {
            let mut all: Vec<(f32, Token)> = logits
                .iter()
                .enumerate()
                .map(|(i, &l)| ((l - max) * inv_t, i as Token))
                .collect();
            all.select_nth_unstable_by(k - 1, by_logit_desc);
            all.truncate(k);
            norm = all.iter().map(|&(s, _)| s.exp()).sum();
            if self.candidates.len() > k {
                self.candidates.sort_unstable_by(by_logit_desc);
                self.candidates.truncate(k);
            }
        }
        self.candidates.sort_unstable_by(by_logit_desc);
        // Nucleus: keep tokens while the mass before them is below top_p.
        let mut kept = 0usize;
        let mut kept_mass = 0.0f32;
        for &(s, _) in &self.candidates {
            if kept > 0 && kept_mass / norm >= p.top_p {
                break;
            }
            kept_mass += s.exp();
            kept += 1;
        }
        let mut u = self.rng.next_f32() * kept_mass;
        let mut chosen = self.candidates[kept - 1].1;
        for &(s, t) in &self.candidates[..kept] {
            let w = s.exp();
            if u < w {
                chosen = t;
                break;
            }
            u -= w;
        }
        Ok((chosen, logprob(chosen)))
    }
}

/// Turns the kept (raw logit, token) pairs into (log-probability, token), most likely first
/// (ties: lower token id first, as the argmax).
fn finish_top(top: &mut [(f32, Token)], max: f32, inv_t: f32, log_z: f32) {
    for e in top.iter_mut() {
        e.0 = (e.0 - max) * inv_t - log_z;
    }
    top.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
}

/// Offers (logit `l`, token `t`) to `top`, which keeps at most `k` of the largest logits seen
/// (earlier tokens win ties); returns the smallest logit kept once `top` is full (every
/// later logit must exceed it to enter), or −∞ while it is not.
fn push_top(top: &mut Vec<(f32, Token)>, k: usize, l: f32, t: Token) -> f32 {
    if top.len() < k {
        top.push((l, t));
    } else {
        // Replace the smallest (the latest of equal ones is replaced first, so ties keep the
        // earlier token).
        let mut at = 0;
        for (j, e) in top.iter().enumerate() {
            if e.0 < top[at].0 || (e.0 == top[at].0 && e.1 > top[at].1) {
                at = j;
            }
        }
        if l <= top[at].0 {
            return top[at].0;
        }
        top[at] = (l, t);
    }
    if top.len() < k {
        return f32::NEG_INFINITY;
    }
    top.iter().map(|e| e.0).fold(f32::INFINITY, f32::min)
}

/// Token confidence (DeepConf): the negative mean of the top-k log-probabilities of a step
/// (high when the distribution is peaked). 0 for an empty list.
pub fn token_confidence(top: &[(f32, Token)]) -> f32 {
    if top.is_empty() {
        return 0.0;
    }
    -top.iter().map(|e| e.0).sum::<f32>() / top.len() as f32
}

/// Why a logits row could not be sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadLogits {
    /// The row has no entries.
    Empty,
    /// The row holds NaN or ±inf.
    NonFinite,
}

/// Log-probability of `token` under softmax(logits / temperature) over the whole vocabulary
/// (temperature 0 is treated as 1).
pub fn token_logprob(logits: &[f32], token: Token, temperature: f32) -> f32 {
    let inv_t = if temperature > 0.0 {
        1.0 / temperature
    } else {
        1.0
    };
    let Some(&l) = logits.get(token as usize) else {
        return f32::NEG_INFINITY;
    };
    let max = max_of(logits);
    (l - max) * inv_t - log_sum_exp_scaled(logits, max, inv_t)
}

/// SplitMix64: a small, well-mixed generator; the same seed gives the same stream.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }
}

const LANES: usize = 8;

fn max_of(xs: &[f32]) -> f32 {
    max_and_finite(xs).0
}

/// The maximum of `xs` and whether every entry is finite, in one vectorizable pass
/// (`x * 0` is 0 for finite `x` and NaN for NaN or ±inf, so the lanes' sums stay 0 only when
/// every entry is finite).
fn max_and_finite(xs: &[f32]) -> (f32, bool) {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut zero = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..LANES {
            acc[j] = acc[j].max(c[j]);
            zero[j] += c[j] * 0.0;
        }
    }
    let tail_zero: f32 = rest.iter().map(|&x| x * 0.0).sum();
    let max = rest
        .iter()
        .copied()
        .chain(acc)
        .fold(f32::NEG_INFINITY, f32::max);
    (max, zero.iter().sum::<f32>() + tail_zero == 0.0)
}

/// The index of the largest logit (the first one on a tie): greedy decoding, and the answer
/// probes' greedy tokens.
pub(super) fn argmax(xs: &[f32]) -> Token {
    let mut best = 0usize;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as Token
}

/// ln Σ exp((x - max) · inv_t), with a vectorizable exp.
fn log_sum_exp_scaled(xs: &[f32], max: f32, inv_t: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..LANES {
            acc[j] += fast_exp((c[j] - max) * inv_t);
        }
    }
    let tail: f32 = rest.iter().map(|&x| fast_exp((x - max) * inv_t)).sum();
    (acc.iter().sum::<f32>() + tail).ln()
}

/// exp(x) for x <= 0 with relative error below 2e-7 (2^n times a degree-6 polynomial on
/// |r| <= ln2/2); 0 below -87. Branch-free so loops over it vectorize.
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.max(-87.0);
    let n = (x * LOG2E).round_ties_even();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n from the bits of n + 2^23 + 127 (exact for integral n in [-127, 128]): no int cast,
    // so the loop stays vectorized.
    let biased = (n + (8_388_608.0 + 127.0))
        .to_bits()
        .wrapping_sub(0x4B00_0000);
    let scale = f32::from_bits(biased << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(logits: &[f32], t: f32) -> Vec<f64> {
        let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let e: Vec<f64> = logits
            .iter()
            .map(|&l| ((l as f64 - m) / t as f64).exp())
            .collect();
        let z: f64 = e.iter().sum();
        e.iter().map(|x| x / z).collect()
    }

    #[test]
    fn fast_exp_is_accurate() {
        for i in 0..20000 {
            let x = -(i as f32) * 0.004;
            let rel = ((fast_exp(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            assert!(rel < 3e-7, "x {x} rel {rel}");
        }
        assert_eq!(fast_exp(-1000.0), fast_exp(-87.0));
    }

    #[test]
    fn logprob_matches_f64_softmax() {
        let logits: Vec<f32> = (0..49_152)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.02 - 10.0)
            .collect();
        for t in [1.0f32, 0.7] {
            let p = probs(&logits, t);
            for tok in [0, 5, 4_000, 49_151] {
                let lp = token_logprob(&logits, tok, t) as f64;
                assert!((lp - p[tok as usize].ln()).abs() < 1e-4, "t {t} tok {tok}");
            }
        }
        let uniform = vec![0.0f32; 4];
        assert!((token_logprob(&uniform, 2, 1.0) - 0.25f32.ln()).abs() < 1e-6);
        assert_eq!(token_logprob(&uniform, 9, 1.0), f32::NEG_INFINITY);
    }

    #[test]
    fn same_seed_same_draws_and_greedy_is_argmax() {
        let logits: Vec<f32> = (0..1000).map(|i| ((i * 31) % 97) as f32 * 0.05).collect();
        let p = SamplingParams::default();
        let draw = |seed| {
            let mut s = Sampler::new(&p, seed).unwrap();
            (0..50)
                .map(|_| s.sample(&logits).unwrap().0)
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        let mut g = Sampler::new(
            &SamplingParams {
                temperature: 0.0,
                ..p
            },
            0,
        )
        .unwrap();
        assert_eq!(g.sample(&logits).unwrap().0, argmax(&logits));
    }

    #[test]
    fn filters_keep_exactly_the_expected_tokens() {
        // probabilities 0.5, 0.3, 0.15, 0.04, 0.01 at temperature 1
        let p = [0.5f64, 0.3, 0.15, 0.04, 0.01];
        let logits: Vec<f32> = p.iter().map(|x| x.ln() as f32).collect();
        let support = |params: SamplingParams| {
            let mut s = Sampler::new(&params, 7).unwrap();
            let mut seen = [0usize; 5];
            for _ in 0..4000 {
                seen[s.sample(&logits).unwrap().0 as usize] += 1;
            }
            seen
        };
        let base = SamplingParams {
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        };
        // top_p 0.9: 0.5 + 0.3 = 0.8 < 0.9, so 0.15 is needed too; 0.04 and 0.01 are out.
        let s = support(SamplingParams {
            top_p: 0.9,
            ..base.clone()
        });
        assert!(
            s[0] > 0 && s[1] > 0 && s[2] > 0 && s[3] == 0 && s[4] == 0,
            "{s:?}"
        );
        // min_p 0.05: threshold 0.025 drops 0.01 only.
        let s = support(SamplingParams {
            min_p: 0.05,
            ..base.clone()
        });
        assert!(s[3] > 0 && s[4] == 0, "{s:?}");
        // top_k 2.
        let s = support(SamplingParams {
            top_k: 2,
            ..base.clone()
        });
        assert!(s[0] > 0 && s[1] > 0 && s[2] == 0, "{s:?}");
        // No filter: frequencies follow the probabilities.
        let s = support(base);
        assert!((s[0] as f64 / 4000.0 - 0.5).abs() < 0.04, "{s:?}");
        assert!((s[2] as f64 / 4000.0 - 0.15).abs() < 0.03, "{s:?}");
    }

    #[test]
    fn non_finite_logits_are_errors_not_panics() {
        let greedy = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        for params in [SamplingParams::default(), greedy] {
            let mut s = Sampler::new(&params, 3).unwrap();
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                for n in [1usize, 7, 8, 49_152] {
                    for at in [0, n / 2, n - 1] {
                        let mut row: Vec<f32> = (0..n).map(|i| (i % 13) as f32 * 0.1).collect();
                        row[at] = bad;
                        assert_eq!(
                            s.sample(&row),
                            Err(BadLogits::NonFinite),
                            "{bad} n {n} at {at}"
                        );
                    }
                }
                assert_eq!(s.sample(&vec![bad; 64]), Err(BadLogits::NonFinite));
            }
            assert_eq!(s.sample(&[]), Err(BadLogits::Empty));
            assert!(s.sample(&[f32::MAX, -f32::MAX, 0.0]).is_ok());
        }
    }

    #[test]
    fn params_reject_out_of_range() {
        let bad = [
            SamplingParams {
                top_p: 0.0,
                ..Default::default()
            },
            SamplingParams {
                min_p: 1.0,
                ..Default::default()
            },
            SamplingParams {
                temperature: -1.0,
                ..Default::default()
            },
            SamplingParams {
                top_k: -2,
                ..Default::default()
            },
        ];
        for p in bad {
            assert!(Sampler::new(&p, 0).is_err(), "{p:?}");
        }
    }
}
