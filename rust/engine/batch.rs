//! A token batch for [`super::Context::decode`].

use super::model::Token;
use crate::error::{Error, Result};
use llama_cpp_sys_2 as sys;

/// A reusable batch of up to `capacity` tokens, each with one sequence id.
///
/// Ownership: allocated with `llama_batch_init`, freed on drop. Not shared between threads.
pub struct Batch {
    raw: sys::llama_batch,
    capacity: usize,
}

// SAFETY: the batch owns its heap arrays; moving it between threads is fine.
unsafe impl Send for Batch {}

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: raw came from llama_batch_init and is freed once.
        unsafe { sys::llama_batch_free(self.raw) }
    }
}

impl Batch {
    /// Allocates a batch for `capacity` tokens (at least 1).
    pub fn new(capacity: usize) -> Batch {
        let capacity = capacity.max(1);
        // SAFETY: allocates arrays for `capacity` tokens with one seq id each.
        let mut raw = unsafe { sys::llama_batch_init(capacity as i32, 0, 1) };
        raw.n_tokens = 0;
        Batch { raw, capacity }
    }

    /// Tokens currently in the batch.
    pub fn len(&self) -> usize {
        self.raw.n_tokens as usize
    }

    /// True when no token was added since the last clear.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the batch (keeps its allocation).
    pub fn clear(&mut self) {
        self.raw.n_tokens = 0;
    }

    /// Appends a token at position `pos` of sequence `seq`; `want_logits` asks for its logits.
    /// Returns the index of the entry (for [`super::Context::logits`]).
    pub fn push(&mut self, token: Token, pos: i32, seq: i32, want_logits: bool) -> Result<usize> {
        let i = self.len();
        if i >= self.capacity {
            return Err(Error::invalid(format!(
                "batch is full ({} tokens)",
                self.capacity
            )));
        }
        // SAFETY: i < capacity, and every array was allocated with `capacity` entries; seq_id[i]
        // points at an array of one id.
        unsafe {
            *self.raw.token.add(i) = token;
            *self.raw.pos.add(i) = pos;
            *self.raw.n_seq_id.add(i) = 1;
            *(*self.raw.seq_id.add(i)) = seq;
            *self.raw.logits.add(i) = want_logits as i8;
        }
        self.raw.n_tokens += 1;
        Ok(i)
    }

    /// The (token, position, sequence) of each entry, in order.
    pub fn entries(&self) -> impl Iterator<Item = (Token, i32, i32)> + '_ {
        // SAFETY: entries 0..len were written by `push` (len <= capacity), each with one seq id.
        (0..self.len()).map(move |i| unsafe {
            (
                *self.raw.token.add(i),
                *self.raw.pos.add(i),
                *(*self.raw.seq_id.add(i)),
            )
        })
    }

    /// Keeps the entries whose sequence `keep` accepts, in order, and returns for every former
    /// entry its new index (`None` when it was dropped).
    pub fn retain_seqs(&mut self, keep: impl Fn(i32) -> bool) -> Vec<Option<usize>> {
        let n = self.len();
        let mut map = Vec::with_capacity(n);
        let mut j = 0usize;
        for i in 0..n {
            // SAFETY: i < len <= capacity, and j <= i: both entries were written by `push`.
            unsafe {
                let seq = *(*self.raw.seq_id.add(i));
                if !keep(seq) {
                    map.push(None);
                    continue;
                }
                if j != i {
                    *self.raw.token.add(j) = *self.raw.token.add(i);
                    *self.raw.pos.add(j) = *self.raw.pos.add(i);
                    *self.raw.n_seq_id.add(j) = 1;
                    *(*self.raw.seq_id.add(j)) = seq;
                    *self.raw.logits.add(j) = *self.raw.logits.add(i);
                }
            }
            map.push(Some(j));
            j += 1;
        }
        self.raw.n_tokens = j as i32;
        map
    }

    pub(crate) fn raw(&self) -> sys::llama_batch {
        self.raw
    }
}
