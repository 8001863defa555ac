//! Unit-level checks: errors, dequantization of every supported type, GEMM, losses, optimizer,
//! and a short training run.

use super::support as common;

use std::sync::Arc;

use crate::train::cpu::{gemm, Mat, MatMut};
use crate::train::lora::{LoraConfig, LoraTarget, LoraWeights};
use crate::train::loss::{
    compute_advantages, grpo_loss_from_logprobs, sft_loss_and_grad, GrpoConfig, LossType,
    ScaleRewards, SftConfig, SftExample,
};
use crate::train::model::{SeqRef, Transformer};
use crate::train::optim::{AdamW, AdamWConfig, Schedule};
use crate::train::rng::Rng;
use crate::train::weights::ggml::GgufBuilder;
use crate::train::weights::{write_random_gguf, Arch, GgmlType, GgufModel, RandomModelSpec};
use crate::train::TrainError;

#[test]
fn clear_errors_on_bad_input() {
    let dir = common::scratch_dir();
    let e = GgufModel::open(dir.join("does-not-exist.gguf")).unwrap_err();
    assert!(matches!(e, TrainError::MissingFile(_)));
    assert!(e.to_string().contains("missing file"), "{e}");

    let junk = dir.join("junk.gguf");
    std::fs::write(&junk, b"this is not a gguf file at all").unwrap();
    let e = GgufModel::open(&junk).unwrap_err();
    assert!(matches!(e, TrainError::CorruptGguf { .. }), "{e}");

    let other = dir.join("mamba.gguf");
    let mut b = GgufBuilder::new(1).unwrap();
    b.set_str("general.architecture", "mamba").unwrap();
    b.add_tensor("token_embd.weight", GgmlType::F32, &[4, 4])
        .unwrap();
    b.write(&other, |_, _, out| {
        out.extend(std::iter::repeat_n(0u8, 64));
        Ok(())
    })
    .unwrap();
    let e = GgufModel::open(&other).unwrap_err();
    assert_eq!(e.to_string(), "unsupported architecture \"mamba\"");

    // Truncated model file: tensor data past the end.
    let good = dir.join("units-tiny.gguf");
    write_random_gguf(&RandomModelSpec::tiny(Arch::Llama), &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.join("truncated.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    assert!(GgufModel::open(&cut).is_err());

    // Bad configs and inputs.
    let m = GgufModel::open(&good).unwrap();
    let bad = LoraConfig {
        rank: 0,
        ..Default::default()
    };
    assert!(matches!(
        LoraWeights::new(&bad, &m),
        Err(TrainError::BadConfig(_))
    ));
    let tf = Transformer::new(Arc::new(m), 1).unwrap();
    let toks = [1u32, 5, 100_000];
    assert!(matches!(
        tf.logprobs(None, &[SeqRef::all(&toks)]),
        Err(TrainError::BadConfig(_))
    ));
    assert!(tf
        .logprobs(
            None,
            &[SeqRef {
                tokens: &[1, 2],
                score_from: 0
            }]
        )
        .is_err());
    assert!(tf.logprobs(None, &[]).is_err());
    let spec = RandomModelSpec {
        n_head: 3,
        ..RandomModelSpec::tiny(Arch::Qwen2)
    };
    assert!(matches!(
        write_random_gguf(&spec, &dir.join("x.gguf")),
        Err(TrainError::BadConfig(_))
    ));
    // Row lengths that a K-quant cannot hold fall back to Q8_0 (as llama.cpp's quantizer does).
    let spec = RandomModelSpec {
        weight_type: GgmlType::Q4_K,
        ..RandomModelSpec::tiny(Arch::Qwen2)
    };
    write_random_gguf(&spec, &dir.join("fallback.gguf")).unwrap();
    let m = GgufModel::open(dir.join("fallback.gguf")).unwrap();
    assert_eq!(m.layers[0].wq.ty, GgmlType::Q8_0);
}

#[test]
fn every_supported_type_dequantizes_close_to_f32() {
    let base = RandomModelSpec {
        n_vocab: 64,
        n_embd: 256,
        n_layer: 1,
        n_head: 4,
        n_head_kv: 2,
        n_ff: 512,
        seed: 3,
        ..RandomModelSpec::tiny(Arch::Qwen2)
    };
    let dir = common::scratch_dir();
    let p32 = dir.join("types-f32.gguf");
    write_random_gguf(&base, &p32).unwrap();
    let ref_w = GgufModel::open(&p32).unwrap().layers[0]
        .w_up
        .to_f32()
        .unwrap();
    let rms = (ref_w.iter().map(|v| v * v).sum::<f32>() / ref_w.len() as f32).sqrt();
    let toks: Vec<u32> = (0..20).map(|i| (i * 7 % 64) as u32).collect();
    let tf32 = Transformer::new(Arc::new(GgufModel::open(&p32).unwrap()), 2).unwrap();
    let lp32 = tf32.logprobs(None, &[SeqRef::all(&toks)]).unwrap();
    for (ty, tol) in [
        (GgmlType::F16, 1e-3),
        (GgmlType::BF16, 5e-3),
        (GgmlType::Q8_0, 1e-2),
        (GgmlType::Q6_K, 3e-2),
        (GgmlType::Q5_K, 5e-2),
        (GgmlType::Q4_K, 0.1),
        (GgmlType::Q4_0, 0.15),
        (GgmlType::Q4_1, 0.15),
    ] {
        let p = dir.join(format!("types-{}.gguf", ty.name()));
        write_random_gguf(
            &RandomModelSpec {
                weight_type: ty,
                ..base.clone()
            },
            &p,
        )
        .unwrap();
        let m = GgufModel::open(&p).unwrap();
        assert_eq!(m.layers[0].w_up.ty, ty);
        let w = m.layers[0].w_up.to_f32().unwrap();
        let err = (w
            .iter()
            .zip(&ref_w)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
            / w.len() as f32)
            .sqrt()
            / rms;
        eprintln!("{}: relative RMS dequantization error {err:.2e}", ty.name());
        assert!(err < tol, "{}: {err}", ty.name());
        let tf = Transformer::new(Arc::new(m), 2).unwrap();
        let lp = tf.logprobs(None, &[SeqRef::all(&toks)]).unwrap();
        assert!(lp[0]
            .iter()
            .zip(&lp32[0])
            .all(|(a, b)| a.is_finite() && (a - b).abs() < 1.0));
    }
}

#[test]
fn gemm_matches_naive_with_transposes_and_strides() {
    let mut rng = Rng::new(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for &(m, k, n) in &[(1, 1, 1), (7, 5, 3), (130, 70, 90), (300, 64, 1000)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let ld_a = if ta { m } else { k } + 3;
            let rows_a = if ta { k } else { m };
            let a: Vec<f32> = (0..rows_a * ld_a).map(|_| rng.normal()).collect();
            let ld_b = if tb { k } else { n } + 1;
            let rows_b = if tb { n } else { k };
            let b: Vec<f32> = (0..rows_b * ld_b).map(|_| rng.normal()).collect();
            let at = |i: usize, p: usize| if ta { a[p * ld_a + i] } else { a[i * ld_a + p] };
            let bt = |p: usize, j: usize| if tb { b[j * ld_b + p] } else { b[p * ld_b + j] };
            let mut c: Vec<f32> = (0..m * n).map(|_| rng.normal()).collect();
            let c0 = c.clone();
            let mut am = Mat::strided(&a, rows_a, ld_a - 3, ld_a);
            if ta {
                am = am.t();
            }
            let mut bm = Mat::strided(&b, rows_b, ld_b - 1, ld_b);
            if tb {
                bm = bm.t();
            }
            pool.install(|| gemm(0.5, am, bm, 2.0, MatMut::new(&mut c, m, n)));
            for i in 0..m {
                for j in 0..n {
                    let s: f32 = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
                    let want = 0.5 * s + 2.0 * c0[i * n + j];
                    assert!(
                        (c[i * n + j] - want).abs() < 1e-3 * (1.0 + want.abs()),
                        "{m}x{k}x{n} {ta} {tb}"
                    );
                }
            }
        }
    }
}

#[test]
fn advantages_and_grpo_loss_values() {
    let a = compute_advantages(
        &[1.0, 0.0, 1.0, 0.0, 5.0, 5.0],
        &[0, 0, 0, 0, 1, 1],
        ScaleRewards::Group,
    )
    .unwrap();
    // Group 0: mean 0.5, unbiased std = sqrt(1/3).
    let s = (1.0f64 / 3.0).sqrt() + 1e-4;
    assert!((a[0] as f64 - 0.5 / s).abs() < 1e-5 && (a[1] as f64 + 0.5 / s).abs() < 1e-5);
    assert_eq!(&a[4..], &[0.0, 0.0]);
    let none = compute_advantages(&[1.0, 3.0], &[0, 0], ScaleRewards::None).unwrap();
    assert_eq!(none, vec![-1.0, 1.0]);
    let batch =
        compute_advantages(&[1.0, 3.0, 0.0, 0.0], &[0, 0, 1, 1], ScaleRewards::Batch).unwrap();
    // Batch std of [1, 3, 0, 0] (unbiased): mean 1, Σ(x−1)² = 0 + 4 + 1 + 1 = 6, var = 6/3.
    let bstd = (6.0f64 / 3.0).sqrt() + 1e-4;
    assert!((batch[1] as f64 - 1.0 / bstd).abs() < 1e-5);
    assert!(batch[1] > 0.0 && (batch[0] + batch[1]).abs() < 1e-6);
    assert!(compute_advantages(&[1.0], &[0, 1], ScaleRewards::Group).is_err());

    // On-policy (ρ = 1), no KL: loss = −mean_seq(A), dℓ/dlogp = −A / (n_seq · len).
    let lp = vec![vec![-1.0f32, -2.0, -0.5], vec![-0.1, -0.2]];
    let cfg = GrpoConfig {
        beta: 0.0,
        ..Default::default()
    };
    let (st, g) = grpo_loss_from_logprobs(&lp, None, None, &[1.0, -2.0], &[3, 2], &cfg).unwrap();
    assert!((st.loss - (-(1.0 - 2.0) / 2.0)).abs() < 1e-9);
    assert!((g[0][0] + 1.0 / 6.0).abs() < 1e-7 && (g[1][1] - 2.0 / 4.0).abs() < 1e-7);
    // dapo: sum / total tokens; dr_grpo: sum / (n_seq · max_len).
    let (st, _) = grpo_loss_from_logprobs(
        &lp,
        None,
        None,
        &[1.0, -2.0],
        &[3, 2],
        &GrpoConfig {
            loss_type: LossType::Dapo,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert!((st.loss - (-(3.0 - 4.0) / 5.0)).abs() < 1e-9);
    let dr = GrpoConfig {
        loss_type: LossType::DrGrpo,
        max_completion_length: Some(10),
        ..cfg.clone()
    };
    let (st, _) = grpo_loss_from_logprobs(&lp, None, None, &[1.0, -2.0], &[3, 2], &dr).unwrap();
    assert!((st.loss - (-(3.0 - 4.0) / 20.0)).abs() < 1e-9);
    // Clipping: ρ = e^0.5 > 1.2 with A > 0 → clipped, zero gradient.
    let old = vec![vec![-1.5f32, -2.0, -0.5], vec![-0.1, -0.2]];
    let (st, g) =
        grpo_loss_from_logprobs(&lp, Some(&old), None, &[1.0, -2.0], &[3, 2], &cfg).unwrap();
    assert_eq!(g[0][0], 0.0);
    assert!((st.clip_ratio - 0.2).abs() < 1e-9);
    // KL: ref = logp → KL 0 and zero KL gradient; masked tokens get zero gradient.
    let kcfg = GrpoConfig {
        beta: 0.5,
        ..Default::default()
    };
    let (st, g) =
        grpo_loss_from_logprobs(&lp, None, Some(&lp), &[0.0, 0.0], &[2, 2], &kcfg).unwrap();
    assert_eq!(st.mean_kl, 0.0);
    assert!(g.iter().flatten().all(|&v| v == 0.0));
    assert!(grpo_loss_from_logprobs(&lp, None, None, &[1.0], &[3, 2], &cfg).is_err());
}

#[test]
fn schedules_and_adamw() {
    let c = Schedule::Cosine {
        warmup: 10,
        total: 110,
        min_ratio: 0.0,
    };
    assert_eq!(c.factor(0), 0.0);
    assert!((c.factor(5) - 0.5).abs() < 1e-6);
    assert!((c.factor(10) - 1.0).abs() < 1e-6);
    assert!((c.factor(60) - 0.5).abs() < 1e-5);
    assert!(c.factor(110).abs() < 1e-6 && c.factor(500).abs() < 1e-6);
    let l = Schedule::Linear {
        warmup: 0,
        total: 100,
    };
    assert!((l.factor(25) - 0.75).abs() < 1e-6);
    assert_eq!(Schedule::Constant { warmup: 4 }.factor(2), 0.5);

    let hp = GgufModel::open({
        let p = common::scratch_dir().join("units-adam.gguf");
        write_random_gguf(&RandomModelSpec::tiny(Arch::Llama), &p).unwrap();
        p
    })
    .unwrap()
    .hp;
    let cfg = LoraConfig {
        rank: 2,
        alpha: 2.0,
        targets: vec![LoraTarget::Q],
        seed: 0,
    };
    let mut p = LoraWeights::zeros(&cfg, &hp).unwrap();
    let mut g = p.zeros_like();
    g.params_mut()[0][0] = 3.0;
    g.params_mut()[0][1] = -0.5;
    g.params_mut()[1][0] = 4.0;
    let acfg = AdamWConfig {
        lr: 0.1,
        max_grad_norm: Some(1.0),
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(acfg, &p).unwrap();
    let st = opt.step(&mut p, &g, 1.0).unwrap();
    assert!((st.grad_norm - (9.0f64 + 0.25 + 16.0).sqrt()).abs() < 1e-5);
    // First Adam step moves each coordinate by ≈ lr · sign(g) (clipping scales g, not the step).
    assert!((p.params()[0][0] + 0.1).abs() < 1e-5 && (p.params()[0][1] - 0.1).abs() < 1e-5);
    assert_eq!(p.params()[0][2], 0.0);
    // Weight decay shrinks parameters with zero gradient.
    let mut q = p.clone();
    let mut wd = AdamW::new(
        AdamWConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..Default::default()
        },
        &q,
    )
    .unwrap();
    let zero = q.zeros_like();
    wd.step(&mut q, &zero, 1.0).unwrap();
    assert!((q.params()[0][0] - p.params()[0][0] * 0.95).abs() < 1e-6);
    let mut nan = g.clone();
    nan.params_mut()[0][0] = f32::NAN;
    assert!(opt.step(&mut p, &nan, 1.0).is_err());
    assert!(AdamW::new(
        AdamWConfig {
            beta1: 1.5,
            ..Default::default()
        },
        &p
    )
    .is_err());
}

#[test]
fn sft_training_reduces_loss() {
    let p = common::scratch_dir().join("units-train.gguf");
    write_random_gguf(
        &RandomModelSpec {
            seed: 4,
            init_std: Some(0.2),
            ..RandomModelSpec::tiny(Arch::Qwen2)
        },
        &p,
    )
    .unwrap();
    let m = Arc::new(GgufModel::open(&p).unwrap());
    let tf = Transformer::new(m.clone(), 2).unwrap();
    let cfg = LoraConfig {
        rank: 8,
        alpha: 16.0,
        targets: LoraTarget::ALL.to_vec(),
        seed: 1,
    };
    let mut lora = LoraWeights::new(&cfg, &m).unwrap();
    let mut opt = AdamW::new(
        AdamWConfig {
            lr: 1e-2,
            schedule: Schedule::Cosine {
                warmup: 2,
                total: 30,
                min_ratio: 0.1,
            },
            ..Default::default()
        },
        &lora,
    )
    .unwrap();
    let ex = [
        SftExample {
            prompt: vec![1, 2, 3],
            completion: vec![10, 20, 30, 40, 50, 60],
        },
        SftExample {
            prompt: vec![4, 5],
            completion: vec![70, 80, 90, 11],
        },
    ];
    let mut grads = lora.zeros_like();
    let mut first = 0.0;
    let mut last = 0.0;
    for step in 0..30 {
        grads.zero();
        // Two micro-batches accumulated, averaged by grad_scale.
        let a = sft_loss_and_grad(
            &tf,
            &lora,
            &ex[..1],
            &SftConfig {
                completion_only: true,
            },
            &mut grads,
        )
        .unwrap();
        let b = sft_loss_and_grad(
            &tf,
            &lora,
            &ex[1..],
            &SftConfig {
                completion_only: true,
            },
            &mut grads,
        )
        .unwrap();
        opt.step(&mut lora, &grads, 0.5).unwrap();
        let l = (a.loss + b.loss) / 2.0;
        if step == 0 {
            first = l;
        }
        last = l;
    }
    eprintln!("SFT loss {first:.3} → {last:.3}");
    assert!(last < 0.5 * first, "loss did not drop: {first} → {last}");
}

/// Our emulation of llama.cpp's Q4_1 × f32 product (activations rounded to Q8_1 blocks, the
/// block sums' f16 error added back) against ggml's own `mul_mat` on the CPU.
#[test]
fn q4_1_product_emulation_matches_ggml_mul_mat() {
    use crate::train::weights::{GgmlType, QTensor};
    use llama_cpp_sys_2 as sys;
    let (dout, din, n) = (48usize, 256usize, 5usize);
    let w: Vec<f32> = (0..dout * din)
        .map(|i| ((i * 2654435761usize % 1000) as f32 / 500.0 - 1.0) * 0.1)
        .collect();
    let x: Vec<f32> = (0..n * din)
        .map(|i| ((i * 40503usize % 997) as f32 / 498.5 - 1.0) * 2.0)
        .collect();
    let row_bytes = din / 32 * 20;
    let mut wq = vec![0u8; dout * row_bytes];
    // SAFETY: buffers sized for dout rows of din values in Q4_1.
    unsafe {
        sys::ggml_quantize_chunk(
            sys::GGML_TYPE_Q4_1,
            w.as_ptr(),
            wq.as_mut_ptr().cast(),
            0,
            dout as i64,
            din as i64,
            std::ptr::null(),
        );
    }
    // ggml: mul_mat(W[dout, din], X[n, din]) -> [n, dout].
    let theirs: Vec<f32> = unsafe {
        let ctx = sys::ggml_init(sys::ggml_init_params {
            mem_size: 16 << 20,
            mem_buffer: std::ptr::null_mut(),
            no_alloc: false,
        });
        assert!(!ctx.is_null());
        let tw = sys::ggml_new_tensor_2d(ctx, sys::GGML_TYPE_Q4_1, din as i64, dout as i64);
        std::ptr::copy_nonoverlapping(wq.as_ptr(), (*tw).data.cast::<u8>(), wq.len());
        let tx = sys::ggml_new_tensor_2d(ctx, sys::GGML_TYPE_F32, din as i64, n as i64);
        std::ptr::copy_nonoverlapping(x.as_ptr(), (*tx).data.cast::<f32>(), x.len());
        let ty = sys::ggml_mul_mat(ctx, tw, tx);
        let gf = sys::ggml_new_graph(ctx);
        sys::ggml_build_forward_expand(gf, ty);
        sys::ggml_graph_compute_with_ctx(ctx, gf, 1);
        let out = std::slice::from_raw_parts((*ty).data.cast::<f32>(), n * dout).to_vec();
        sys::ggml_free(ctx);
        out
    };
    let qt = QTensor::new("w".into(), GgmlType::Q4_1, dout, din, wq).unwrap();
    let (plain, emul) = common::q4_1_products(&qt, &x);
    let (mut worst_f32, mut worst_emul) = (0f32, 0f32);
    for ((p, e), g) in plain.iter().zip(&emul).zip(&theirs) {
        worst_f32 = worst_f32.max((p - g).abs());
        worst_emul = worst_emul.max((e - g).abs());
    }
    eprintln!(
        "Q4_1 product vs ggml: f32 activations max |Δ| {worst_f32:.3e}, emulated {worst_emul:.3e}"
    );
    assert!(
        worst_emul < 1e-4,
        "emulation differs from ggml by {worst_emul}"
    );
    assert!(
        worst_emul * 10.0 < worst_f32,
        "emulation is not closer than f32"
    );
}

/// The model code's memory knobs (MLP over token chunks, small vocabulary and row chunks of the
/// head) give the same log-probs and LoRA gradients as one pass over everything.
#[test]
fn chunked_mlp_and_head_match_the_unchunked_pass() {
    let p = common::scratch_dir().join("units-chunks.gguf");
    write_random_gguf(
        &RandomModelSpec {
            seed: 8,
            init_std: Some(0.2),
            ..RandomModelSpec::tiny(Arch::Llama)
        },
        &p,
    )
    .unwrap();
    let m = Arc::new(GgufModel::open(&p).unwrap());
    let mut lora = LoraWeights::new(&LoraConfig::default(), &m).unwrap();
    let mut rng = Rng::new(2);
    for (i, t) in lora.params_mut().iter_mut().enumerate() {
        if i % 2 == 1 {
            t.iter_mut().for_each(|v| *v = 0.2 * rng.normal());
        }
    }
    let seqs: Vec<Vec<u32>> = [23usize, 40, 9]
        .iter()
        .map(|&n| (0..n).map(|_| (rng.next_u64() % 96) as u32).collect())
        .collect();
    let refs: Vec<SeqRef> = seqs.iter().map(|s| SeqRef::all(s)).collect();
    let run = |tf: &Transformer| {
        let mut g = lora.zeros_like();
        let fb = tf
            .forward_backward(
                &lora,
                &refs,
                |lp| {
                    let g: Vec<Vec<f32>> = lp
                        .iter()
                        .map(|v| v.iter().map(|x| (x * 3.0).sin()).collect())
                        .collect();
                    Ok((0.0, g))
                },
                &mut g,
            )
            .unwrap();
        (
            fb.logprobs,
            g,
            tf.logprobs_and_argmax(Some(&lora), &refs).unwrap(),
        )
    };
    let whole = Transformer::new(m.clone(), 2).unwrap();
    let mut chunked = Transformer::new(m.clone(), 2).unwrap();
    chunked.mlp_chunk = 7;
    chunked.vocab_chunk = 13;
    chunked.logit_chunk = 5;
    let (lp_a, g_a, (lpf_a, am_a)) = run(&whole);
    let (lp_b, g_b, (lpf_b, am_b)) = run(&chunked);
    for (a, b) in lp_a.iter().flatten().zip(lp_b.iter().flatten()) {
        assert!((a - b).abs() < 1e-5, "log-probs {a} vs {b}");
    }
    for (a, b) in lpf_a.iter().flatten().zip(lpf_b.iter().flatten()) {
        assert!((a - b).abs() < 1e-5, "forward log-probs {a} vs {b}");
    }
    assert_eq!(am_a, am_b, "argmax");
    let mut diff = g_b.clone();
    diff.add_scaled(&g_a, -1.0).unwrap();
    let rel = diff.norm() / g_a.norm();
    assert!(
        g_a.norm() > 0.0 && rel < 1e-5,
        "gradient relative difference {rel}"
    );
}
