//! Sampler chains: temperature, top-k, top-p, min-p and a seeded draw, one chain per sample.

use super::context::Context;
use super::model::Token;
use crate::error::{Error, Result};
use llama_cpp_sys_2 as sys;
use serde::{Deserialize, Serialize};
use std::ptr::NonNull;

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
    /// Drop tokens whose probability is below min_p × the top probability; 0 = off. Range [0, 1).
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

/// One llama.cpp sampler chain. Not shared between threads; freed on drop.
pub struct SamplerChain {
    ptr: NonNull<sys::llama_sampler>,
}

// SAFETY: a sampler chain is plain state owned by this value.
unsafe impl Send for SamplerChain {}

impl Drop for SamplerChain {
    fn drop(&mut self) {
        // SAFETY: the chain owns the samplers added to it and frees them; freed once.
        unsafe { sys::llama_sampler_free(self.ptr.as_ptr()) }
    }
}

impl SamplerChain {
    /// Builds a chain for `params` with the given seed.
    pub fn new(params: &SamplingParams, seed: u32) -> Result<SamplerChain> {
        params.validate()?;
        // SAFETY: each init returns a new sampler which the chain takes ownership of.
        unsafe {
            let mut cp = sys::llama_sampler_chain_default_params();
            cp.no_perf = true;
            let chain = NonNull::new(sys::llama_sampler_chain_init(cp))
                .ok_or_else(|| Error::invalid("could not create sampler chain"))?;
            let c = chain.as_ptr();
            if params.temperature == 0.0 {
                sys::llama_sampler_chain_add(c, sys::llama_sampler_init_greedy());
            } else {
                if params.top_k > 0 {
                    sys::llama_sampler_chain_add(c, sys::llama_sampler_init_top_k(params.top_k));
                }
                if params.top_p < 1.0 {
                    sys::llama_sampler_chain_add(c, sys::llama_sampler_init_top_p(params.top_p, 1));
                }
                if params.min_p > 0.0 {
                    sys::llama_sampler_chain_add(c, sys::llama_sampler_init_min_p(params.min_p, 1));
                }
                sys::llama_sampler_chain_add(c, sys::llama_sampler_init_temp(params.temperature));
                sys::llama_sampler_chain_add(c, sys::llama_sampler_init_dist(seed));
            }
            Ok(SamplerChain { ptr: chain })
        }
    }

    /// Draws a token from the logits of batch entry `idx` of the last decode and records it in
    /// the chain's state.
    pub fn sample(&mut self, ctx: &Context, idx: usize) -> Token {
        // SAFETY: ctx is live and idx is an entry that requested logits (checked by the caller
        // through Context::logits); the chain is owned by self.
        unsafe { sys::llama_sampler_sample(self.ptr.as_ptr(), ctx.as_ptr(), idx as i32) }
    }
}

/// Log-probability of `token` under softmax(logits / temperature) over the whole vocabulary
/// (temperature 0 is treated as 1). This is the quantity GRPO's importance ratio uses.
pub fn token_logprob(logits: &[f32], token: Token, temperature: f32) -> f32 {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let inv_t = 1.0 / t;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits
        .iter()
        .map(|&l| (((l - max) * inv_t) as f64).exp())
        .sum();
    let lt = logits
        .get(token as usize)
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    ((lt - max) * inv_t) - (sum.ln() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprob_of_uniform_logits() {
        let l = vec![0.0f32; 4];
        assert!((token_logprob(&l, 2, 1.0) - (0.25f32).ln()).abs() < 1e-6);
    }

    #[test]
    fn logprob_respects_temperature() {
        let l = vec![2.0f32, 0.0];
        let lp = token_logprob(&l, 0, 2.0);
        let expect = (1.0f64.exp() / (1.0f64.exp() + 1.0)).ln() as f32;
        assert!((lp - expect).abs() < 1e-6);
    }

    #[test]
    fn params_reject_out_of_range() {
        let mut p = SamplingParams {
            top_p: 0.0,
            ..Default::default()
        };
        assert!(p.validate().is_err());
        p = SamplingParams {
            min_p: 1.0,
            ..Default::default()
        };
        assert!(p.validate().is_err());
        p = SamplingParams {
            temperature: -1.0,
            ..Default::default()
        };
        assert!(p.validate().is_err());
    }
}
