//! One sampling step for every running sample of a group: each sample's sampler draws from its
//! own logits row.

use rayon::prelude::*;

use super::sampling::{BadLogits, Sampler};
use crate::engine::{Context, Token};
use crate::error::{Error, ErrorCode, Result};

/// A sampled token and its log-probability.
pub(super) type Draw = (Token, f32);

/// A sample that needs a token: its group and its index in the group, its sampler, and the
/// batch entry that holds its logits.
pub(super) struct DrawJob<'a> {
    pub group: usize,
    pub sample: usize,
    pub sampler: &'a mut Sampler,
    pub logits_idx: usize,
    /// A saved logits row to draw from instead of the batch entry (a sample that starts
    /// after its group's prompt was evaluated draws its first token from the prompt's row).
    pub saved: Option<&'a [f32]>,
    /// Tokens the sample has so far (for error messages).
    pub n_generated: usize,
}

/// Fewer rows than this are sampled on the calling thread: a row costs a few passes over the
/// vocabulary, less than handing it to another thread.
const PARALLEL_MIN_ROWS: usize = 4;

/// One job's outcome: `(group, sample, draw)`.
pub(super) type Drawn = (usize, usize, Result<Draw>);

/// Draws the next token of every job. Rows are independent and each sampler owns its RNG, so
/// the result does not depend on how rows are spread over rayon's pool (no thread is spawned
/// per step). Returns one outcome per job, in job order; a job fails with
/// [`ErrorCode::NonFinite`], naming the sample and its position, when its logits row holds NaN
/// or ±inf (a corrupt model or adapter).
///
/// Errors: a batch entry without logits (a bug).
pub(super) fn draw_all(ctx: &Context, jobs: Vec<DrawJob<'_>>) -> Result<Vec<Drawn>> {
    let mut rows = Vec::with_capacity(jobs.len());
    for job in jobs {
        let row = match job.saved {
            Some(r) => r,
            None => ctx.logits(job.logits_idx)?,
        };
        rows.push((job, row));
    }
    let draw = |(job, row): (DrawJob<'_>, &[f32])| -> Drawn {
        let d = match job.sampler.sample(row) {
            Ok(d) => Ok(d),
            Err(BadLogits::NonFinite) => Err(Error::new(
                ErrorCode::NonFinite,
                format!(
                    "sample {}: the model produced NaN or infinite logits for completion token {} \
                     (the model or adapter file is likely corrupt)",
                    job.sample, job.n_generated
                ),
            )),
            Err(BadLogits::Empty) => Err(Error::new(
                ErrorCode::Internal,
                format!("sample {}: empty logits row", job.sample),
            )),
        };
        (job.group, job.sample, d)
    };
    Ok(if rows.len() < PARALLEL_MIN_ROWS {
        rows.into_iter().map(draw).collect()
    } else {
        rows.into_par_iter().map(draw).collect()
    })
}
