//! Packing of a batch of sequences into one token stream.

use crate::train::error::{Result, TrainError};

/// One sequence to score: `tokens`, and the first position whose token's log-prob is wanted.
///
/// The output for this sequence has `tokens.len() - score_from` entries; entry `j` is
/// `log p(tokens[score_from + j] | tokens[..score_from + j])` in nats. `score_from >= 1`.
#[derive(Clone, Copy, Debug)]
pub struct SeqRef<'a> {
    pub tokens: &'a [u32],
    pub score_from: usize,
}

impl<'a> SeqRef<'a> {
    /// Scores every token after the first.
    pub fn all(tokens: &'a [u32]) -> Self {
        SeqRef {
            tokens,
            score_from: 1,
        }
    }
}

/// Prompt + completion pairs joined into owned token sequences, each scored from a position the
/// caller chooses; borrow them as [`SeqRef`]s with [`JoinedSeqs::refs`].
#[derive(Clone, Debug, Default)]
pub struct JoinedSeqs {
    tokens: Vec<Vec<u32>>,
    score_from: Vec<usize>,
}

impl JoinedSeqs {
    /// `(prompt, completion, score_from)` per sequence; `score_from` indexes the joined tokens.
    pub fn new<'p>(parts: impl IntoIterator<Item = (&'p [u32], &'p [u32], usize)>) -> Self {
        let mut joined = JoinedSeqs::default();
        for (prompt, completion, from) in parts {
            joined.tokens.push([prompt, completion].concat());
            joined.score_from.push(from);
        }
        joined
    }

    /// Scores exactly the completion tokens (`score_from` = prompt length).
    pub fn completions<'p>(pairs: impl IntoIterator<Item = (&'p [u32], &'p [u32])>) -> Self {
        JoinedSeqs::new(pairs.into_iter().map(|(p, c)| (p, c, p.len())))
    }

    /// The joined token sequences.
    pub fn tokens(&self) -> &[Vec<u32>] {
        &self.tokens
    }

    /// One [`SeqRef`] per sequence, borrowing from `self`.
    pub fn refs(&self) -> Vec<SeqRef<'_>> {
        self.tokens
            .iter()
            .zip(&self.score_from)
            .map(|(t, &from)| SeqRef {
                tokens: t,
                score_from: from,
            })
            .collect()
    }
}

/// Token-stream layout of a batch.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// `(offset, len)` per sequence.
    pub seqs: Vec<(usize, usize)>,
    /// Position within its sequence, per token.
    pub pos: Vec<u32>,
    /// All tokens, concatenated.
    pub tokens: Vec<u32>,
    /// `(row whose hidden state predicts, target token)` per scored position, in output order.
    pub scored: Vec<(usize, u32)>,
    /// Number of outputs per sequence.
    pub n_out: Vec<usize>,
    pub max_len: usize,
}

impl Layout {
    pub fn new(seqs: &[SeqRef<'_>], n_vocab: usize) -> Result<Layout> {
        if seqs.is_empty() {
            return Err(TrainError::config("empty batch"));
        }
        let mut l = Layout {
            seqs: Vec::new(),
            pos: Vec::new(),
            tokens: Vec::new(),
            scored: Vec::new(),
            n_out: Vec::new(),
            max_len: 0,
        };
        for (i, s) in seqs.iter().enumerate() {
            let n = s.tokens.len();
            if n == 0 {
                return Err(TrainError::config(format!("sequence {i} is empty")));
            }
            if s.score_from == 0 || s.score_from > n {
                return Err(TrainError::config(format!(
                    "sequence {i}: score_from {} not in 1..={n}",
                    s.score_from
                )));
            }
            if let Some(&bad) = s.tokens.iter().find(|&&t| t as usize >= n_vocab) {
                return Err(TrainError::config(format!(
                    "sequence {i}: token id {bad} >= vocabulary size {n_vocab}"
                )));
            }
            let off = l.tokens.len();
            l.seqs.push((off, n));
            l.tokens.extend_from_slice(s.tokens);
            l.pos.extend(0..n as u32);
            for j in s.score_from..n {
                l.scored.push((off + j - 1, s.tokens[j]));
            }
            l.n_out.push(n - s.score_from);
            l.max_len = l.max_len.max(n);
        }
        Ok(l)
    }

    pub fn n_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// Splits a flat per-scored-position vector into per-sequence vectors.
    pub fn split<T: Clone>(&self, flat: &[T]) -> Vec<Vec<T>> {
        let mut out = Vec::with_capacity(self.n_out.len());
        let mut i = 0;
        for &n in &self.n_out {
            out.push(flat[i..i + n].to_vec());
            i += n;
        }
        out
    }
}
