//! Per-sample confidence (DeepConf): token confidences, the sliding-window mean, the lowest
//! window, the tail, and thresholds from a warm-up or a calibration file.

use crate::error::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};

/// A sample's confidence summary. Token confidence is −mean of the step's top-k
/// log-probabilities (nats): higher means the model was surer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleConfidence {
    /// Mean token confidence over the sampled tokens.
    pub mean: f32,
    /// Lowest mean over any `window` consecutive sampled tokens (the mean of all of them when
    /// the sample has fewer).
    pub lowest_window: f32,
    /// Mean over the last `tail` sampled tokens (all of them when fewer).
    pub tail: f32,
}

/// The running confidence of one sample (sampled tokens only; forced tokens are skipped).
#[derive(Clone, Debug, Default)]
pub(super) struct ConfidenceTrack {
    window: usize,
    sampled: Vec<f32>,
    window_sum: f64,
    lowest: Option<f32>,
}

impl ConfidenceTrack {
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            ..Self::default()
        }
    }

    /// Adds a sampled token's confidence.
    pub fn push(&mut self, c: f32) {
        self.sampled.push(c);
        self.window_sum += c as f64;
        let n = self.sampled.len();
        if n > self.window {
            self.window_sum -= self.sampled[n - 1 - self.window] as f64;
        }
        if let Some(w) = self.current_window() {
            self.lowest = Some(self.lowest.map_or(w, |l| l.min(w)));
        }
    }

    /// Mean of the last `window` sampled tokens, once there are that many.
    pub fn current_window(&self) -> Option<f32> {
        (self.sampled.len() >= self.window).then(|| (self.window_sum / self.window as f64) as f32)
    }

    /// The summary, or `None` before the first sampled token.
    pub fn summary(&self, tail: usize) -> Option<SampleConfidence> {
        let n = self.sampled.len();
        if n == 0 {
            return None;
        }
        let mean =
            |xs: &[f32]| (xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64) as f32;
        let all = mean(&self.sampled);
        Some(SampleConfidence {
            mean: all,
            lowest_window: self.lowest.unwrap_or(all),
            tail: mean(&self.sampled[n.saturating_sub(tail.max(1))..]),
        })
    }
}

/// The `p`-th percentile (0..=100) of `xs` by linear interpolation between order statistics;
/// `None` for an empty list.
pub fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

/// A calibration file: the lowest window confidences of samples from an earlier run, with
/// the settings they were measured with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// `confidence.top_k` of the run.
    pub top_k: usize,
    /// `confidence.window` of the run.
    pub window: usize,
    /// One lowest window confidence per sample.
    pub confidences: Vec<f64>,
}

impl Calibration {
    /// Reads a calibration file and checks it was measured with `top_k` and `window`.
    pub fn load(path: &str, top_k: usize, window: usize) -> Result<Calibration> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::new(ErrorCode::Io, format!("calibration file {path}: {e}")))?;
        let c: Calibration = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("calibration file {path}: {e}")))?;
        if c.top_k != top_k || c.window != window {
            return Err(Error::invalid(format!(
                "calibration file {path} was measured with top_k {} and window {}, the rollout uses {top_k} and {window}",
                c.top_k, c.window
            )));
        }
        if c.confidences.is_empty() || c.confidences.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(format!(
                "calibration file {path} needs at least one finite confidence"
            )));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_lowest_and_tail() {
        let mut t = ConfidenceTrack::new(2);
        for c in [4.0, 2.0, 6.0, 8.0] {
            t.push(c);
        }
        let s = t.summary(3).unwrap();
        assert_eq!(s.mean, 5.0);
        assert_eq!(s.lowest_window, 3.0); // (4+2)/2
        assert!((s.tail - 16.0 / 3.0).abs() < 1e-6);
        assert_eq!(t.current_window(), Some(7.0));
        let mut short = ConfidenceTrack::new(8);
        short.push(1.0);
        short.push(3.0);
        assert_eq!(short.current_window(), None);
        assert_eq!(short.summary(64).unwrap().lowest_window, 2.0);
        assert!(ConfidenceTrack::new(4).summary(4).is_none());
    }

    #[test]
    fn percentiles_interpolate() {
        let xs = [3.0, 1.0, 2.0, 4.0];
        assert_eq!(percentile(&xs, 0.0), Some(1.0));
        assert_eq!(percentile(&xs, 100.0), Some(4.0));
        assert_eq!(percentile(&xs, 50.0), Some(2.5));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
