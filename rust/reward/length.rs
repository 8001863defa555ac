//! Kimi k1.5 length reward over completions scored together.

/// `λ_i = 0.5 − (L_i − L_min)/(L_max − L_min)` over `lengths`; correct → `λ_i`, wrong →
/// `min(0, λ_i)`; all zeros when `L_max == L_min`. `correct` shorter than `lengths` counts the
/// missing entries as wrong. Returns one value per length.
pub fn length_rewards(lengths: &[usize], correct: &[bool]) -> Vec<f64> {
    let (Some(&lo), Some(&hi)) = (lengths.iter().min(), lengths.iter().max()) else {
        return Vec::new();
    };
    if hi == lo {
        return vec![0.0; lengths.len()];
    }
    let span = (hi - lo) as f64;
    lengths
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let lambda = 0.5 - (l - lo) as f64 / span;
            if correct.get(i).copied().unwrap_or(false) {
                lambda
            } else {
                lambda.min(0.0)
            }
        })
        .collect()
}
