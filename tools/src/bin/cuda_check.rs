//! Device checks of the CUDA trainer against the CPU trainer, on random-weight models of every
//! supported architecture (llama, qwen2), F32 and Q4_K weights, in both GPU precisions:
//! weight expansion bit-exact with ggml, per-token log-probs, LoRA gradients of the GRPO loss,
//! AdamW, the loss kernels, and three GRPO updates side by side. The GPU runs with small chunks
//! (vocabulary, scored rows, attention query rows, MLP tokens) so every chunked path is taken. Prints `PASS`/`FAIL` lines; exits 1 on a failure.
//!
//! Usage: `cuda_check [--dir DIR] [--threads N]` (DIR receives the random models, default
//! `cuda-check-models`). Needs a build with `--features cuda-train` and a GPU.

use std::path::PathBuf;
use std::sync::Arc;

use fmr::train::cuda::{CudaOptions, CudaTransformer, Precision};
use fmr::train::lora::{LoraConfig, LoraTarget, LoraWeights};
use fmr::train::loss::{
    grpo_loss_and_grad, grpo_loss_from_logprobs, sft_loss_from_logprobs, Advantages, GrpoBatch,
    GrpoConfig, GrpoSequence, LossType,
};
use fmr::train::model::{LoraModel, SeqRef, Transformer};
use fmr::train::optim::{AdamW, AdamWConfig};
use fmr::train::rng::Rng;
use fmr::train::weights::{write_random_gguf, Arch, GgmlType, GgufModel, RandomModelSpec};

struct Tally {
    failed: usize,
}

impl Tally {
    fn check(&mut self, ok: bool, what: &str, detail: String) {
        println!("{} {what}: {detail}", if ok { "PASS" } else { "FAIL" });
        if !ok {
            self.failed += 1;
        }
    }
}

fn spec(arch: Arch, ty: GgmlType) -> RandomModelSpec {
    RandomModelSpec {
        arch,
        n_vocab: 1000,
        n_embd: 256,
        n_layer: 3,
        n_head: 4,
        n_head_kv: 2,
        n_ff: 512,
        weight_type: ty,
        init_std: Some(0.05),
        n_ctx: 1024,
        seed: 11,
        ..RandomModelSpec::tiny(arch)
    }
}

fn lora(model: &GgufModel, seed: u64) -> LoraWeights {
    let cfg = LoraConfig {
        rank: 8,
        alpha: 16.0,
        targets: LoraTarget::ALL.to_vec(),
        seed,
    };
    let mut w = LoraWeights::new(&cfg, model).expect("lora");
    let mut rng = Rng::new(seed + 1);
    for (i, p) in w.params_mut().iter_mut().enumerate() {
        if i % 2 == 1 {
            p.iter_mut().for_each(|v| *v = 0.05 * rng.normal());
        }
    }
    w
}

fn tokens(rng: &mut Rng, n: usize, v: usize) -> Vec<u32> {
    (0..n).map(|_| (rng.next_u64() % v as u64) as u32).collect()
}

/// (mean |a − b|, max |a − b|) over all values.
fn diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f64, f64) {
    let (mut s, mut m, mut n) = (0f64, 0f64, 0usize);
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len(), "shapes");
        for (p, q) in x.iter().zip(y) {
            let d = (p - q).abs() as f64;
            s += d;
            m = m.max(if d.is_nan() { f64::INFINITY } else { d });
            n += 1;
        }
    }
    (s / n.max(1) as f64, m)
}

/// ‖a − b‖ / ‖b‖ over all tensors.
fn rel(a: &LoraWeights, b: &LoraWeights) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a.params().iter().zip(b.params()) {
        for (p, q) in x.iter().zip(y) {
            num += ((p - q) as f64).powi(2);
            den += (*q as f64).powi(2);
        }
    }
    (num / den.max(1e-30)).sqrt()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
    };
    let dir = PathBuf::from(get("--dir").map_or("cuda-check-models", |s| s.as_str()));
    let threads: usize = get("--threads").and_then(|s| s.parse().ok()).unwrap_or(0);
    std::fs::create_dir_all(&dir).expect("model dir");
    let mut t = Tally { failed: 0 };
    for arch in [Arch::Llama, Arch::Qwen2] {
        for ty in [GgmlType::F32, GgmlType::Q4_K] {
            let path = dir.join(format!("small-{}-{}.gguf", arch.name(), ty.name()));
            write_random_gguf(&spec(arch, ty), &path).expect("write model");
            let model = Arc::new(GgufModel::open(&path).expect("open model"));
            check_model(
                &mut t,
                &model,
                threads,
                &format!("{}/{}", arch.name(), ty.name()),
            );
        }
    }
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::F16,
        GgmlType::BF16,
    ] {
        let path = dir.join(format!("small-llama-{}.gguf", ty.name()));
        write_random_gguf(&spec(Arch::Llama, ty), &path).expect("write model");
        let model = Arc::new(GgufModel::open(&path).expect("open model"));
        match CudaTransformer::new(model, &CudaOptions::default()) {
            Ok(g) => {
                let (worst, n) = g.dequant_max_error().expect("dequant");
                t.check(
                    worst == 0.0,
                    &format!("dequant {} bit-exact with ggml", ty.name()),
                    format!("max |Δ| {worst:e} over {n} values"),
                );
            }
            Err(e) => t.check(false, "open GPU", e.to_string()),
        }
    }
    println!("cuda_check: {} failure(s)", t.failed);
    if t.failed > 0 {
        std::process::exit(1);
    }
}

fn check_model(t: &mut Tally, model: &Arc<GgufModel>, threads: usize, name: &str) {
    let cpu = Transformer::new(model.clone(), threads).expect("cpu transformer");
    let hp = model.hp().clone();
    let mut rng = Rng::new(5);
    let seqs: Vec<Vec<u32>> = [97usize, 200, 33]
        .iter()
        .map(|&n| tokens(&mut rng, n, hp.n_vocab))
        .collect();
    let refs: Vec<SeqRef> = seqs.iter().map(|s| SeqRef::all(s)).collect();
    let w = lora(model, 3);
    let lp_cpu = cpu.logprobs(Some(&w), &refs).expect("cpu logprobs");
    let (_, am_cpu) = cpu
        .logprobs_and_argmax(Some(&w), &refs)
        .expect("cpu argmax");
    let base_cpu = cpu.logprobs(None, &refs).expect("cpu base logprobs");
    let batch = GrpoBatch {
        seqs: seqs
            .iter()
            .map(|s| GrpoSequence {
                prompt: s[..10].to_vec(),
                completion: s[10..].to_vec(),
                ..Default::default()
            })
            .collect(),
        advantages: Advantages::Given(vec![1.0, -0.5, 0.7]),
    };
    let gcfg = GrpoConfig::default();
    let mut g_cpu = w.zeros_like();
    let st_cpu = grpo_loss_and_grad(&cpu, &w, &batch, &gcfg, &mut g_cpu).expect("cpu grads");
    for (precision, ckpt16, tol_lp, tol_g) in [
        (Precision::F32, false, 1e-4, 1e-3),
        (Precision::Bf16, false, 2e-3, 2e-2),
        (Precision::Bf16, true, 2e-3, 2e-2),
    ] {
        let opts = CudaOptions {
            precision,
            bf16_checkpoints: ckpt16,
            vocab_chunk: 300,
            row_chunk: 50,
            attn_budget_bytes: 4 * hp.n_head * 200 * 64,
            mlp_chunk: 100,
            ..CudaOptions::default()
        };
        let tag = format!(
            "{name} {precision:?}{}",
            if ckpt16 { " bf16-checkpoints" } else { "" }
        );
        let gpu = match CudaTransformer::new(model.clone(), &opts) {
            Ok(g) => g,
            Err(e) => {
                t.check(false, &format!("{tag}: open GPU"), e.to_string());
                return;
            }
        };
        if precision == Precision::F32 {
            let (worst, n) = gpu.dequant_max_error().expect("dequant");
            t.check(
                worst == 0.0,
                &format!("{tag}: dequant bit-exact with ggml"),
                format!("max |Δ| {worst:e} over {n} values"),
            );
        }
        let dw = gpu.upload_lora(&w).expect("upload");
        let lp = gpu.logprobs(Some(&dw), &refs).expect("gpu logprobs");
        let (mean, max) = diff(&lp, &lp_cpu);
        t.check(
            mean <= tol_lp,
            &format!("{tag}: log-probs with LoRA vs CPU"),
            format!("mean |Δ| {mean:.2e} nats (≤ {tol_lp:.0e}), max {max:.2e}"),
        );
        let base = gpu.logprobs(None, &refs).expect("gpu base logprobs");
        let (mean, max) = diff(&base, &base_cpu);
        t.check(
            mean <= tol_lp,
            &format!("{tag}: log-probs of the base model vs CPU"),
            format!("mean |Δ| {mean:.2e} nats, max {max:.2e}"),
        );
        let (_, am) = gpu
            .logprobs_and_argmax(Some(&dw), &refs)
            .expect("gpu argmax");
        let (same, all) = am
            .iter()
            .flatten()
            .zip(am_cpu.iter().flatten())
            .fold((0, 0), |(s, n), (a, b)| (s + (a == b) as usize, n + 1));
        let agree = same as f64 / all as f64;
        t.check(
            agree >= 0.98,
            &format!("{tag}: argmax agreement"),
            format!("{agree:.4}"),
        );
        let mut dg = gpu.zeros_like(&dw).expect("zeros");
        let st = grpo_loss_and_grad(&gpu, &dw, &batch, &gcfg, &mut dg).expect("gpu grads");
        let mut g_gpu = w.zeros_like();
        gpu.download_lora(&dg, &mut g_gpu).expect("download");
        let r = rel(&g_gpu, &g_cpu);
        t.check(
            r <= tol_g
                && (st.loss - st_cpu.loss).abs() <= 10.0 * tol_lp * st_cpu.loss.abs().max(1.0),
            &format!("{tag}: GRPO LoRA gradients vs CPU"),
            format!(
                "relative error {r:.2e} (≤ {tol_g:.0e}); loss {:.6} vs {:.6}",
                st.loss, st_cpu.loss
            ),
        );
        if ckpt16 {
            continue;
        }
        // AdamW on the device from the CPU's gradients, against the host optimizer.
        let ocfg = AdamWConfig {
            lr: 1e-3,
            weight_decay: 0.01,
            ..Default::default()
        };
        let mut host_opt = AdamW::new(ocfg, &w).expect("adamw");
        let mut dev_opt = gpu.upload_adamw(&host_opt).expect("upload adamw");
        let mut dp = gpu.upload_lora(&w).expect("upload");
        let dgc = gpu.upload_lora(&g_cpu).expect("upload grads");
        let mut host_w = w.clone();
        for _ in 0..2 {
            host_opt.step(&mut host_w, &g_cpu, 0.5).expect("host step");
            gpu.adamw_step(&mut dev_opt, &mut dp, &dgc, 0.5)
                .expect("device step");
        }
        let mut dev_w = w.zeros_like();
        gpu.download_lora(&dp, &mut dev_w).expect("download");
        let r = rel(&dev_w, &host_w);
        t.check(
            r <= 1e-6,
            &format!("{tag}: AdamW on the device vs host (2 steps)"),
            format!("relative difference {r:.2e}"),
        );
        if precision == Precision::Bf16 {
            grpo_steps(t, &tag, &cpu, &gpu, &w, &batch, &gcfg);
        } else {
            loss_kernels(t, &tag, &gpu, &lp_cpu, &base_cpu);
        }
    }
}

/// The GRPO and SFT loss kernels against the host losses on the same log-probs.
fn loss_kernels(
    t: &mut Tally,
    tag: &str,
    gpu: &CudaTransformer,
    lp: &[Vec<f32>],
    refp: &[Vec<f32>],
) {
    let old: Vec<Vec<f32>> = lp
        .iter()
        .map(|v| v.iter().map(|x| x + 0.3 * (x * 7.0).sin()).collect())
        .collect();
    let adv = vec![1.0, -0.5, 0.7];
    let mask: Vec<usize> = lp.iter().map(|v| v.len() - 3).collect();
    for loss_type in [LossType::Grpo, LossType::Dapo, LossType::DrGrpo] {
        let cfg = GrpoConfig {
            loss_type,
            epsilon_high: Some(0.28),
            ..GrpoConfig::default()
        };
        let (hs, hg) =
            grpo_loss_from_logprobs(lp, Some(&old), Some(refp), &adv, &mask, &cfg).expect("host");
        let (ds, dg) = gpu
            .grpo_loss_on_device(lp, Some(&old), Some(refp), &adv, &mask, &cfg)
            .expect("device");
        let (gm, _) = diff(&dg, &hg);
        let ok = (ds.loss - hs.loss).abs() <= 1e-6 * hs.loss.abs().max(1.0)
            && (ds.mean_kl - hs.mean_kl).abs() <= 1e-6
            && ds.clip_ratio == hs.clip_ratio
            && gm <= 1e-7;
        t.check(
            ok,
            &format!("{tag}: GRPO loss kernel vs host ({loss_type:?})"),
            format!(
                "loss {:.8} vs {:.8}, kl {:.3e} vs {:.3e}, clip {} vs {}, grad mean |Δ| {gm:.1e}",
                ds.loss, hs.loss, ds.mean_kl, hs.mean_kl, ds.clip_ratio, hs.clip_ratio
            ),
        );
    }
    let (hs, hg) = sft_loss_from_logprobs(lp);
    let (dl, dg) = gpu.sft_loss_on_device(lp).expect("device sft");
    let (gm, _) = diff(&dg, &hg);
    t.check(
        (dl - hs.loss).abs() <= 1e-6 * hs.loss.abs().max(1.0) && gm <= 1e-9,
        &format!("{tag}: SFT loss kernel vs host"),
        format!("loss {dl:.8} vs {:.8}", hs.loss),
    );
}

/// Three GRPO updates from the same start on both devices; the adapters must stay close.
fn grpo_steps(
    t: &mut Tally,
    tag: &str,
    cpu: &Transformer,
    gpu: &CudaTransformer,
    w: &LoraWeights,
    batch: &GrpoBatch,
    gcfg: &GrpoConfig,
) {
    let ocfg = AdamWConfig {
        lr: 1e-3,
        ..Default::default()
    };
    let mut hw = w.clone();
    let mut hopt = AdamW::new(ocfg, &hw).expect("adamw");
    let mut dw = gpu.upload_lora(w).expect("upload");
    let mut dopt = gpu.upload_adamw(&hopt).expect("upload adamw");
    let mut dg = gpu.zeros_like(&dw).expect("zeros");
    let mut losses = Vec::new();
    for _ in 0..3 {
        let mut hg = hw.zeros_like();
        let hs = grpo_loss_and_grad(cpu, &hw, batch, gcfg, &mut hg).expect("cpu step");
        hopt.step(&mut hw, &hg, 1.0).expect("host adamw");
        gpu.zero_lora(&mut dg).expect("zero");
        let ds = grpo_loss_and_grad(gpu, &dw, batch, gcfg, &mut dg).expect("gpu step");
        gpu.adamw_step(&mut dopt, &mut dw, &dg, 1.0)
            .expect("device adamw");
        losses.push((ds.loss, hs.loss));
    }
    let mut dev = w.zeros_like();
    gpu.download_lora(&dw, &mut dev).expect("download");
    let mut delta_dev = dev.clone();
    delta_dev.add_scaled(w, -1.0).expect("shape");
    let mut delta_host = hw.clone();
    delta_host.add_scaled(w, -1.0).expect("shape");
    let r = rel(&delta_dev, &delta_host);
    let finite = losses.iter().all(|(a, b)| a.is_finite() && b.is_finite());
    t.check(
        finite && r <= 5e-2,
        &format!("{tag}: 3 GRPO updates on the GPU track the CPU"),
        format!("update relative difference {r:.2e}; losses (gpu, cpu) {losses:?}"),
    );
}
