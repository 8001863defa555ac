//! Emulation of the activation rounding llama.cpp's CPU backend applies inside a matrix
//! product: before multiplying by a quantized weight it converts the activation rows to the
//! weight type's "vec_dot" partner (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the
//! K-quants, F16/BF16 for those weights). Used only to compare our forward with llama.cpp's on
//! quantized models; training always runs on f32 activations.

use crate::train::weights::GgmlType;

/// How llama.cpp rounds the activations multiplied with a weight of a given type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActRounding {
    /// Kept in f32.
    None,
    /// Rounded to f16 (round to nearest even).
    F16,
    /// Rounded to bf16 (round to nearest even).
    Bf16,
    /// Blocks of 32 with scale `amax / 127` stored as f16 (Q8_0 and Q8_1 round alike).
    Q8Block32,
    /// Blocks of 256 with scale from the signed extreme, stored as f32 (Q8_K).
    Q8K,
}

impl ActRounding {
    /// The rounding llama.cpp's CPU backend applies for weights of type `ty`.
    pub fn for_weight(ty: GgmlType) -> ActRounding {
        match ty {
            GgmlType::F32 => ActRounding::None,
            GgmlType::F16 => ActRounding::F16,
            GgmlType::BF16 => ActRounding::Bf16,
            GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => ActRounding::Q8K,
            _ => ActRounding::Q8Block32,
        }
    }
}

/// `x` rounded to the nearest f16 value (ties to even), as f32. Values beyond the f16 range
/// are returned unchanged (activations never get there).
pub fn round_to_f16(x: f32) -> f32 {
    if !x.is_finite() || x == 0.0 || x.abs() > 65504.0 {
        return x;
    }
    let exp = ((x.to_bits() >> 23) & 0xff) as i32 - 127;
    // f16 keeps 10 mantissa bits; below 2^-14 the quantum is fixed at 2^-24 (subnormals).
    let quantum = 2f32.powi(exp.max(-14) - 10);
    (x / quantum).round_ties_even() * quantum
}

/// `x` rounded to the nearest bf16 value (ties to even), as f32.
pub fn round_to_bf16(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    let b = x.to_bits();
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) & 0xffff_0000;
    f32::from_bits(rounded)
}

/// Rounds every row of `x` (`cols` values per row) in place as llama.cpp would before a
/// product with a weight of rounding `r`. `cols` must be a multiple of the block size.
pub fn round_activations(x: &mut [f32], cols: usize, r: ActRounding) {
    match r {
        ActRounding::None => {}
        ActRounding::F16 => x.iter_mut().for_each(|v| *v = round_to_f16(*v)),
        ActRounding::Bf16 => x.iter_mut().for_each(|v| *v = round_to_bf16(*v)),
        ActRounding::Q8Block32 => {
            debug_assert_eq!(cols % 32, 0);
            for block in x.chunks_mut(32) {
                let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
                let d16 = round_to_f16(d);
                for v in block.iter_mut() {
                    *v = (*v * id).round_ties_even() * d16;
                }
            }
        }
        ActRounding::Q8K => {
            debug_assert_eq!(cols % 256, 0);
            for block in x.chunks_mut(256) {
                let (mut amax, mut max) = (0f32, 0f32);
                for &v in block.iter() {
                    if v.abs() > amax {
                        amax = v.abs();
                        max = v;
                    }
                }
                if amax == 0.0 {
                    block.iter_mut().for_each(|v| *v = 0.0);
                    continue;
                }
                let iscale = -127.0 / max;
                let d = 1.0 / iscale;
                for v in block.iter_mut() {
                    let q = (iscale * *v).round_ties_even().min(127.0);
                    *v = q * d;
                }
            }
        }
    }
}

/// Q8_1 rounding of rows of `x` (as [`ActRounding::Q8Block32`]) that also returns, per block,
/// the error of the block sum llama.cpp stores in f16: `s16 − d16·Σq`, where the Q4_1 × Q8_1
/// dot adds `m_w · s16` for each block (`m_w` the weight block's minimum). Adding
/// `Σ_b m_w[b] · err[b]` to the product of the rounded rows with the dequantized weights gives
/// llama.cpp's value. Output: `[rows, cols / 32]`.
pub fn round_q8_1_with_sum_error(x: &mut [f32], cols: usize) -> Vec<f32> {
    debug_assert_eq!(cols % 32, 0);
    x.chunks_mut(32)
        .map(|block| {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let d16 = round_to_f16(d);
            let mut sum = 0i32;
            for v in block.iter_mut() {
                let q = (*v * id).round_ties_even();
                sum += q as i32;
                *v = q * d16;
            }
            round_to_f16(d * sum as f32) - d16 * sum as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounding_matches_known_values() {
        assert_eq!(round_to_f16(1.0), 1.0);
        assert_eq!(round_to_f16(1.0 + 1.0 / 4096.0), 1.0); // below half an f16 ulp
        assert_eq!(round_to_f16(1.0 + 3.0 / 2048.0), 1.0 + 2.0 / 1024.0); // tie goes to even
        assert_eq!(round_to_f16(0.1), 0.099975586);
        assert_eq!(round_to_f16(-2.5e-7), -2.3841858e-7); // subnormal quantum 2^-24
    }

    #[test]
    fn block32_rounding_keeps_the_extreme_and_has_127_levels() {
        let mut x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) * 0.37).collect();
        let orig = x.clone();
        round_activations(&mut x, 64, ActRounding::Q8Block32);
        for (b, o) in x.chunks(32).zip(orig.chunks(32)) {
            let amax = o.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = round_to_f16(amax / 127.0);
            for (v, w) in b.iter().zip(o) {
                assert!((v - w).abs() <= d * 0.5 + amax * 1e-3, "{v} vs {w}");
                assert!(((v / d).round() - v / d).abs() < 1e-3, "on the grid");
            }
        }
        assert_eq!(round_to_bf16(1.0 + 1.0 / 512.0), 1.0);
    }
}
