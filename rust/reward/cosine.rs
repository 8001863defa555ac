//! Cosine-scaled length reward (Yeo et al. 2025).

use crate::reward::config::CosineConfig;

/// Cosine reward for a completion of length `len` (in the configured unit):
/// `p = min(1, len / max_len)`, `c = cos(πp)`; correct `min_c + ½(max_c − min_c)(1 + c)`,
/// wrong `max_w + ½(min_w − max_w)(1 + c)`. `max_len == 0` is treated as 1.
pub fn cosine_reward(len: usize, correct: bool, cfg: &CosineConfig) -> f64 {
    let max_len = cfg.max_len.max(1) as f64;
    let p = (len as f64 / max_len).min(1.0);
    let c = (std::f64::consts::PI * p).cos();
    let (lo, hi) = if correct {
        (cfg.min_value_correct, cfg.max_value_correct)
    } else {
        (cfg.max_value_wrong, cfg.min_value_wrong)
    };
    lo + 0.5 * (hi - lo) * (1.0 + c)
}
