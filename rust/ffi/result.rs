//! `fmr_result`: the outcome of one group rollout, read through accessors.

use super::boundary::{guard, guard_value, non_null};
use super::error::fmr_error;
use super::growable::{out_size, write_out, Growable};
use super::strings::into_c_string;
use crate::error::{Error, ErrorCode, Result};
use crate::generate::GroupResult;
use std::ffi::c_char;

/// Why a sample stopped (`fmr_sample_info.finish_reason`). Fixed values, never reused.
pub type fmr_finish_reason = u32;
/// End-of-generation token.
pub const FMR_FINISH_EOS: fmr_finish_reason = 1;
/// A stop string, or a closed `\boxed{}` with `stop_at_boxed`.
pub const FMR_FINISH_STOP: fmr_finish_reason = 2;
/// The per-sample `max_tokens`.
pub const FMR_FINISH_LENGTH: fmr_finish_reason = 3;
/// The thinking budget or the group token budget.
pub const FMR_FINISH_BUDGET: fmr_finish_reason = 4;
/// Budget forcing appended the closing text, then the sample ended.
pub const FMR_FINISH_FORCED: fmr_finish_reason = 5;
/// The group's samples agreed.
pub const FMR_FINISH_CONSENSUS: fmr_finish_reason = 6;
/// The problem's deadline passed.
pub const FMR_FINISH_DEADLINE: fmr_finish_reason = 7;
/// The caller cancelled.
pub const FMR_FINISH_CANCELLED: fmr_finish_reason = 8;
/// The sample's window confidence fell below the threshold (`confidence_stop`).
pub const FMR_FINISH_LOW_CONFIDENCE: fmr_finish_reason = 9;
/// Answer probes agreed (`probe`); the sample's answer is the probes' answer.
pub const FMR_FINISH_PROBE: fmr_finish_reason = 10;

/// A group result. Immutable: a `const fmr_result*` may be read from several threads. Every
/// pointer an accessor returns stays valid until `fmr_result_free`.
pub struct fmr_result {
    result: GroupResult,
    /// NUL-terminated copies of each sample's text, answer key and display form, and of the
    /// votes' keys and display forms.
    texts: Vec<Vec<u8>>,
    answer_keys: Vec<Option<Vec<u8>>>,
    answer_displays: Vec<Option<Vec<u8>>>,
    vote_keys: Vec<Vec<u8>>,
    vote_displays: Vec<Vec<u8>>,
}

fn nul_terminated(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

impl fmr_result {
    pub(crate) fn into_raw(result: GroupResult) -> *mut fmr_result {
        let texts = result
            .samples
            .iter()
            .map(|s| nul_terminated(&s.text))
            .collect();
        let answer_keys = result
            .samples
            .iter()
            .map(|s| s.answer.as_deref().map(nul_terminated))
            .collect();
        let answer_displays = result
            .samples
            .iter()
            .map(|s| {
                s.answer
                    .as_deref()
                    .map(|k| nul_terminated(s.answer_display.as_deref().unwrap_or(k)))
            })
            .collect();
        let vote_keys = result
            .votes
            .iter()
            .map(|v| nul_terminated(&v.answer))
            .collect();
        let vote_displays = result
            .votes
            .iter()
            .map(|v| nul_terminated(result.answer_display(&v.answer).unwrap_or(&v.answer)))
            .collect();
        Box::into_raw(Box::new(fmr_result {
            result,
            texts,
            answer_keys,
            answer_displays,
            vote_keys,
            vote_displays,
        }))
    }

    fn check_sample(&self, i: usize) -> Result<()> {
        if i >= self.result.samples.len() {
            return Err(Error::new(
                ErrorCode::OutOfRange,
                format!(
                    "sample {i} out of range (n_samples {})",
                    self.result.samples.len()
                ),
            ));
        }
        Ok(())
    }
}

/// Writes a NUL-terminated buffer as pointer + length (without the NUL).
///
/// # Safety
/// `text` and `len` are writable.
unsafe fn write_text(buf: &[u8], text: *mut *const c_char, len: *mut usize) {
    // SAFETY: writable per the caller's contract.
    unsafe {
        *text = buf.as_ptr().cast();
        *len = buf.len() - 1;
    }
}

/// Per-sample summary (caller-allocated output: set `struct_size`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct fmr_sample_info {
    /// Size of this struct in the caller's header: set it before the call.
    pub struct_size: u32,
    /// `FMR_FINISH_*`.
    pub finish_reason: fmr_finish_reason,
    /// Generated tokens (forced tokens and a final end-of-generation token included).
    pub n_tokens: usize,
    /// Tokens inserted by budget forcing.
    pub n_forced_tokens: usize,
    /// Whether an answer was extracted.
    pub has_answer: bool,
    /// Padding (the fields below were added after 0.2.0).
    pub _reserved0: [u8; 7],
    /// Mean token confidence (−mean of each step's top-k log-probabilities) over the sampled
    /// tokens; 0 when `has_confidence` is false.
    pub confidence_mean: f32,
    /// Lowest mean confidence over `confidence.window` consecutive sampled tokens.
    pub confidence_lowest_window: f32,
    /// Mean confidence of the last `confidence.tail` sampled tokens.
    pub confidence_tail: f32,
    /// Whether the three confidences are set (confidence on and a token sampled).
    pub has_confidence: bool,
    /// Answer probes taken.
    pub n_probes: usize,
    /// Tokens decoded by the sample's probes (not part of `n_tokens`).
    pub probe_tokens: usize,
}

/// Group summary (caller-allocated output: set `struct_size`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct fmr_group_stats {
    /// Size of this struct in the caller's header: set it before the call.
    pub struct_size: u32,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Tokens generated by all samples.
    pub tokens_generated: usize,
    /// Tokens a run without group-level stopping would have generated (upper bound).
    pub tokens_fixed_budget: usize,
    /// Votes for the winning answer (0 if none).
    pub voted_count: usize,
    /// Consensus stopped the group.
    pub stopped_by_consensus: bool,
    /// The caller cancelled.
    pub cancelled: bool,
    /// Wall time in seconds.
    pub wall_seconds: f64,
    /// Seconds spent on the prompt.
    pub prompt_seconds: f64,
    /// Tokens decoded by answer probes, apart from `tokens_generated` (added after 0.2.0).
    pub probe_tokens: usize,
    /// The confidence threshold samples were gated with (when `has_confidence_threshold`).
    pub confidence_threshold: f64,
    /// Whether a confidence threshold applied.
    pub has_confidence_threshold: bool,
}

// SAFETY: repr(C), struct_size first, plain data.
unsafe impl Growable for fmr_sample_info {
    const NAME: &'static str = "fmr_sample_info";
    /// Version 1 (0.2) ended before `confidence_mean`.
    const MIN_SIZE: usize = std::mem::offset_of!(fmr_sample_info, confidence_mean);
    const INIT: &'static str = "set it to sizeof(fmr_sample_info)";
}

// SAFETY: repr(C), struct_size first, plain data.
unsafe impl Growable for fmr_group_stats {
    const NAME: &'static str = "fmr_group_stats";
    /// Version 1 (0.2) ended before `probe_tokens`.
    const MIN_SIZE: usize = std::mem::offset_of!(fmr_group_stats, probe_tokens);
    const INIT: &'static str = "set it to sizeof(fmr_group_stats)";
}

/// One answer of the vote (caller-allocated output: set `struct_size`). Its strings belong to
/// the result and stay valid until `fmr_result_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fmr_vote {
    /// Size of this struct in the caller's header: set it before the call.
    pub struct_size: u32,
    /// The answer key: the verifier's canonical form (`q:1/2`), equal for equivalent answers;
    /// for comparing, not for people. NUL-terminated.
    pub key: *const c_char,
    /// Length of `key` in bytes.
    pub key_len: usize,
    /// The answer as a person should read it (`1/2`, `\frac{1}{2}`): the display form of the
    /// first sample that gave it. NUL-terminated.
    pub display: *const c_char,
    /// Length of `display` in bytes.
    pub display_len: usize,
    /// Samples that voted for it.
    pub count: usize,
    /// Sum of their vote weights (`count` when votes are not weighted; added after 0.2.0).
    pub weight: f64,
}

// SAFETY: repr(C), struct_size first, plain data (pointers into the result).
unsafe impl Growable for fmr_vote {
    const NAME: &'static str = "fmr_vote";
    /// Version 1 (0.2) ended before `weight`.
    const MIN_SIZE: usize = std::mem::offset_of!(fmr_vote, weight);
    const INIT: &'static str = "set it to sizeof(fmr_vote)";
}

/// Number of samples (0 for NULL).
///
/// # Safety
/// `result` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn fmr_result_n_samples(result: *const fmr_result) -> usize {
    // SAFETY: NULL or live per the contract.
    guard_value(0, || {
        unsafe { result.as_ref() }.map_or(0, |r| r.result.samples.len())
    })
}

/// The text of sample `i` (NUL-terminated; `*len` excludes the NUL).
///
/// # Safety
/// `result` is live; `text` and `len` are writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_result_sample_text(
    result: *const fmr_result,
    i: usize,
    text: *mut *const c_char,
    len: *mut usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(result, "result")?;
        non_null(text, "text")?;
        non_null(len, "len")?;
        // SAFETY: live per the contract.
        let r = unsafe { &*result };
        r.check_sample(i)?;
        // SAFETY: writable per the contract.
        unsafe { write_text(&r.texts[i], text, len) };
        Ok(())
    })
}

/// Writes an optional NUL-terminated buffer as pointer + length; NULL and 0 for none.
///
/// # Safety
/// `text` and `len` are writable.
unsafe fn write_opt_text(buf: Option<&Vec<u8>>, text: *mut *const c_char, len: *mut usize) {
    match buf {
        // SAFETY: writable per the caller's contract.
        Some(b) => unsafe { write_text(b, text, len) },
        // SAFETY: writable per the caller's contract.
        None => unsafe {
            *text = std::ptr::null();
            *len = 0;
        },
    }
}

/// The answer key of sample `i`: the verifier's canonical form of its extracted answer
/// (`q:224` for the number 224, `q:1/2` for one half, `t:…` for text), equal exactly when the
/// answers are equivalent. For comparing and counting, not for people: show
/// `fmr_result_sample_answer_display`. `*text` is NULL and `*len` 0 when the sample stated no
/// answer. The string belongs to the result.
///
/// # Safety
/// `result` is live; `text` and `len` are writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_result_sample_answer_key(
    result: *const fmr_result,
    i: usize,
    text: *mut *const c_char,
    len: *mut usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(result, "result")?;
        non_null(text, "text")?;
        non_null(len, "len")?;
        // SAFETY: live per the contract.
        let r = unsafe { &*result };
        r.check_sample(i)?;
        // SAFETY: writable per the contract.
        unsafe { write_opt_text(r.answer_keys[i].as_ref(), text, len) };
        Ok(())
    })
}

/// The answer of sample `i` as a person should read it: the text extracted from the
/// completion (`224`, `\frac{1}{2}`), trimmed but not normalized. `*text` is NULL and `*len` 0
/// exactly when the sample stated no answer (as for the key). The string belongs to the result.
///
/// # Safety
/// `result` is live; `text` and `len` are writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_result_sample_answer_display(
    result: *const fmr_result,
    i: usize,
    text: *mut *const c_char,
    len: *mut usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(result, "result")?;
        non_null(text, "text")?;
        non_null(len, "len")?;
        // SAFETY: live per the contract.
        let r = unsafe { &*result };
        r.check_sample(i)?;
        // SAFETY: writable per the contract.
        unsafe { write_opt_text(r.answer_displays[i].as_ref(), text, len) };
        Ok(())
    })
}

/// Token ids and their log-probabilities for sample `i` (arrays of `*n` entries each).
///
/// # Safety
/// `result` is live; `tokens`, `logprobs` and `n` are writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_result_sample_tokens(
    result: *const fmr_result,
    i: usize,
    tokens: *mut *const i32,
    logprobs: *mut *const f32,
    n: *mut usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(result, "result")?;
        non_null(tokens, "tokens")?;
        non_null(logprobs, "logprobs")?;
        non_null(n, "n")?;
        // SAFETY: live per the contract.
        let r = unsafe { &*result };
        r.check_sample(i)?;
        let s = &r.result.samples[i];
        // SAFETY: writable per the contract.
        unsafe {
            *tokens = s.tokens.as_ptr();
            *logprobs = s.logprobs.as_ptr();
            *n = s.tokens.len();
        }
        Ok(())
    })
}

/// The confidence of each token of sample `i` (−mean of the step's top-k log-probabilities,
/// nats; 0 for forced tokens): `*n` entries, one per token of `fmr_result_sample_tokens`, or
/// 0 when confidence was off. The array belongs to the result.
///
/// # Safety
/// `result` is live; `confidence` and `n` are writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_result_sample_confidence(
    result: *const fmr_result,
    i: usize,
    confidence: *mut *const f32,
    n: *mut usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(result, "result")?;
        non_null(confidence, "confidence")?;
        non_null(n, "n")?;
        // SAFETY: live per the contract.
        let r = unsafe { &*result };
        r.check_sample(i)?;
        let s = &r.result.samples[i];
        // SAFETY: writable per the contract.
        unsafe {
            *confidence = s.token_confidence.as_ptr();
            *n = s.token_confidence.len();
        }
        Ok(())
    })
}

/// The top-k log-probabilities of each token of sample `i`, kept when the rollout asked for
/// them (`confidence.keep_top_logprobs`): `*n` tokens × `*k` entries, row-major, most likely
/// first (`tokens[t * k + j]`, `logprobs[t * k + j]`; forced tokens hold −1 and 0). `*n` is 0
/// when they were not kept. The arrays belong to the result.
///
/// # Safety
/// `result` is live; `tokens`, `logprobs`, `k` and `n` are writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_result_sample_top_logprobs(
    result: *const fmr_result,
    i: usize,
    tokens: *mut *const i32,
    logprobs: *mut *const f32,
    k: *mut usize,
    n: *mut usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(result, "result")?;
        non_null(tokens, "tokens")?;
        non_null(logprobs, "logprobs")?;
        non_null(k, "k")?;
        non_null(n, "n")?;
        // SAFETY: live per the contract.
        let r = unsafe { &*result };
        r.check_sample(i)?;
        let s = &r.result.samples[i];
        let rows = s.tokens.len();
        let per = if rows > 0 && !s.top_tokens.is_empty() {
            s.top_tokens.len() / rows
        } else {
            0
        };
        // SAFETY: writable per the contract.
        unsafe {
            *tokens = s.top_tokens.as_ptr();
            *logprobs = s.top_logprobs.as_ptr();
            *k = per;
            *n = if per > 0 { rows } else { 0 };
        }
        Ok(())
    })
}

/// Summary of sample `i`, written to the caller's struct (set `info->struct_size` first).
///
/// # Safety
/// `result` is live; `info` is writable for its `struct_size`.
#[no_mangle]
pub unsafe extern "C" fn fmr_result_sample_info(
    result: *const fmr_result,
    i: usize,
    info: *mut fmr_sample_info,
) -> *mut fmr_error {
    guard(|| {
        non_null(result, "result")?;
        non_null(info, "info")?;
        // SAFETY: live per the contract.
        let r = unsafe { &*result };
        r.check_sample(i)?;
        // SAFETY: the caller's struct per the contract.
        let size = unsafe { out_size(info) }?;
        let s = &r.result.samples[i];
        let c = s.confidence.unwrap_or(crate::generate::SampleConfidence {
            mean: 0.0,
            lowest_window: 0.0,
            tail: 0.0,
        });
        let value = fmr_sample_info {
            struct_size: 0,
            finish_reason: s.finish_reason as u32,
            n_tokens: s.tokens.len(),
            n_forced_tokens: s.forced_tokens,
            has_answer: s.answer.is_some(),
            _reserved0: [0; 7],
            confidence_mean: c.mean,
            confidence_lowest_window: c.lowest_window,
            confidence_tail: c.tail,
            has_confidence: s.confidence.is_some(),
            n_probes: s.probes.len(),
            probe_tokens: s.probe_tokens,
        };
        // SAFETY: writable for size bytes per the contract.
        unsafe { write_out(info, size, value) };
        Ok(())
    })
}

/// Number of distinct answers voted for (0 for NULL).
///
/// # Safety
/// `result` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn fmr_result_n_votes(result: *const fmr_result) -> usize {
    // SAFETY: NULL or live per the contract.
    guard_value(0, || {
        unsafe { result.as_ref() }.map_or(0, |r| r.result.votes.len())
    })
}

/// The `i`-th answer by descending votes (index 0 is the voted answer; ties keep the order in
/// which answers were reached): its key, display form and count, written to the caller's
/// struct (set `vote->struct_size` first).
///
/// # Safety
/// `result` is live; `vote` is writable for its `struct_size`.
#[no_mangle]
pub unsafe extern "C" fn fmr_result_vote(
    result: *const fmr_result,
    i: usize,
    vote: *mut fmr_vote,
) -> *mut fmr_error {
    guard(|| {
        non_null(result, "result")?;
        non_null(vote, "vote")?;
        // SAFETY: live per the contract.
        let r = unsafe { &*result };
        let Some(v) = r.result.votes.get(i) else {
            return Err(Error::new(
                ErrorCode::OutOfRange,
                format!("vote {i} out of range (n_votes {})", r.result.votes.len()),
            ));
        };
        // SAFETY: the caller's struct per the contract.
        let size = unsafe { out_size(vote) }?;
        let (key, display) = (&r.vote_keys[i], &r.vote_displays[i]);
        let value = fmr_vote {
            struct_size: 0,
            key: key.as_ptr().cast(),
            key_len: key.len() - 1,
            display: display.as_ptr().cast(),
            display_len: display.len() - 1,
            count: v.count,
            weight: v.weight,
        };
        // SAFETY: writable for size bytes per the contract.
        unsafe { write_out(vote, size, value) };
        Ok(())
    })
}

/// Group summary, written to the caller's struct (set `stats->struct_size` first).
///
/// # Safety
/// `result` is live; `stats` is writable for its `struct_size`.
#[no_mangle]
pub unsafe extern "C" fn fmr_result_stats(
    result: *const fmr_result,
    stats: *mut fmr_group_stats,
) -> *mut fmr_error {
    guard(|| {
        non_null(result, "result")?;
        non_null(stats, "stats")?;
        // SAFETY: the caller's struct per the contract.
        let size = unsafe { out_size(stats) }?;
        // SAFETY: live per the contract.
        let r = &unsafe { &*result }.result;
        // SAFETY: writable for size bytes per the contract.
        unsafe {
            write_out(
                stats,
                size,
                fmr_group_stats {
                    struct_size: 0,
                    prompt_tokens: r.prompt_tokens,
                    tokens_generated: r.tokens_generated,
                    tokens_fixed_budget: r.tokens_fixed_budget,
                    voted_count: r.votes.first().map_or(0, |v| v.count),
                    stopped_by_consensus: r.stopped_by_consensus,
                    cancelled: r.cancelled,
                    wall_seconds: r.wall_seconds,
                    prompt_seconds: r.prompt_seconds,
                    probe_tokens: r.probe_tokens,
                    confidence_threshold: r.confidence_threshold.unwrap_or(0.0),
                    has_confidence_threshold: r.confidence_threshold.is_some(),
                },
            )
        };
        Ok(())
    })
}

/// The whole result as JSON (UTF-8, NUL-terminated; `*len` excludes the NUL). Release it with
/// `fmr_string_free(*json)`.
///
/// # Safety
/// `result` is live; `json` and `len` are writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_result_to_json(
    result: *const fmr_result,
    json: *mut *mut c_char,
    len: *mut usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(result, "result")?;
        non_null(json, "json")?;
        non_null(len, "len")?;
        // SAFETY: live per the contract.
        let r = &unsafe { &*result }.result;
        let s = serde_json::to_string(r)
            .map_err(|e| Error::new(ErrorCode::Internal, format!("serialising result: {e}")))?;
        let (p, n) = into_c_string(s)?;
        // SAFETY: writable per the contract.
        unsafe {
            *json = p;
            *len = n;
        }
        Ok(())
    })
}

/// Releases a result. NULL is a no-op.
///
/// # Safety
/// `result` is NULL or live, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn fmr_result_free(result: *mut fmr_result) {
    guard_value((), || {
        if !result.is_null() {
            // SAFETY: came from Box::into_raw in into_raw; freed once.
            drop(unsafe { Box::from_raw(result) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::FinishReason;

    #[test]
    fn header_finish_reasons_match_the_enum() {
        let pairs = [
            (FMR_FINISH_EOS, FinishReason::Eos),
            (FMR_FINISH_STOP, FinishReason::Stop),
            (FMR_FINISH_LENGTH, FinishReason::Length),
            (FMR_FINISH_BUDGET, FinishReason::Budget),
            (FMR_FINISH_FORCED, FinishReason::Forced),
            (FMR_FINISH_CONSENSUS, FinishReason::Consensus),
            (FMR_FINISH_DEADLINE, FinishReason::Deadline),
            (FMR_FINISH_CANCELLED, FinishReason::Cancelled),
            (FMR_FINISH_LOW_CONFIDENCE, FinishReason::LowConfidence),
            (FMR_FINISH_PROBE, FinishReason::Probe),
        ];
        for (c, r) in pairs {
            assert_eq!(c, r as u32);
        }
    }
}
