//! Training throughput benchmark: forward + backward (LoRA gradients, SFT loss) of SmolLM2-135M
//! on 8 sequences × 512 tokens with 2 threads, against the measured GEMM peak of this machine.
//!
//! Usage: `cargo run --release --bin train_bench [steps]` (model from `$FMR_MODEL_DIR`,
//! default `~/.cache/fmr/models`). Prints tokens/s, achieved GFLOP/s, % of GEMM peak, and peak
//! memory (VmHWM) with a breakdown.
//!
//! On a GPU (build with `--features cuda-train`):
//! `train_bench --device cuda --model M.gguf [--steps N] [--seqs G] [--prompt P]
//! [--completion C] [--micro-batch B] [--warmup W] [--precision bf16|f32] [--ckpt-bf16]` times one GRPO update (reference
//! log-probs, forward, backward, AdamW; LoRA r = 16 on all seven projections, β = 0.04) and
//! prints a `RESULT` line with seconds per update and peak device memory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use fmr::train::cpu::{gemm, Mat, MatMut};
use fmr::train::lora::{LoraConfig, LoraTarget, LoraWeights};
use fmr::train::loss::{sft_loss_and_grad, SftConfig, SftExample};
use fmr::train::model::{SeqRef, Transformer};
use fmr::train::rng::Rng;
use fmr::train::weights::{GgufModel, HyperParams};

const THREADS: usize = 2;
const N_SEQ: usize = 8;
const SEQ_LEN: usize = 512;

fn model_path() -> PathBuf {
    let dir = std::env::var("FMR_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/fmr/models")
        });
    dir.join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Best GFLOP/s of our GEMM (matrixmultiply tiles over the pool) on square-ish f32 problems.
fn gemm_peak(pool: &rayon::ThreadPool) -> f64 {
    let mut best = 0f64;
    for &(m, k, n) in &[
        (1024usize, 1024usize, 1024usize),
        (2048, 576, 1536),
        (4096, 576, 576),
        (2048, 2048, 2048),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0f32; m * n];
        pool.install(|| {
            gemm(
                1.0,
                Mat::new(&a, m, k),
                Mat::new(&b, k, n),
                0.0,
                MatMut::new(&mut c, m, n),
            );
            let reps = 6;
            let t = Instant::now();
            for _ in 0..reps {
                gemm(
                    1.0,
                    Mat::new(&a, m, k),
                    Mat::new(&b, n, k).t(),
                    0.0,
                    MatMut::new(&mut c, m, n),
                );
            }
            let g = 2.0 * (m * k * n * reps) as f64 / t.elapsed().as_secs_f64() / 1e9;
            println!("  gemm {m}x{k}x{n}: {g:.1} GFLOP/s");
            best = best.max(g);
        });
    }
    best
}

/// FLOPs executed by one forward_backward (matrix products only; element-wise ops excluded).
/// Returns (executed, useful) where "useful" excludes the recomputed forward.
fn flops(hp: &HyperParams, lora: &LoraWeights, n_seq: usize, len: usize) -> (f64, f64) {
    let t = (n_seq * len) as f64;
    let (d, qd, kvd, ff) = (
        hp.n_embd as f64,
        hp.q_dim() as f64,
        hp.kv_dim() as f64,
        hp.n_ff as f64,
    );
    let w = d * qd + 2.0 * d * kvd + qd * d + 3.0 * d * ff; // weights per layer
    let r = lora.config().rank as f64;
    let lora_w: f64 = lora
        .config()
        .targets
        .iter()
        .map(|tg| {
            let (i, o) = tg.dims(hp);
            r * (i + o) as f64
        })
        .sum();
    // Causal tiles of 128 query rows attend to keys [0, tile end) (see cpu::attention).
    let pairs: usize = (0..len)
        .step_by(128)
        .map(|i0| ((i0 + 128).min(len) - i0) * (i0 + 128).min(len))
        .sum();
    let attn_fwd = n_seq as f64 * 2.0 * 2.0 * pairs as f64 * hp.head_dim as f64 * hp.n_head as f64;
    let layer_fwd = 2.0 * t * (w + lora_w) + attn_fwd;
    // backward: dx through frozen W (1×), LoRA dA/dB/dx (3× its forward), attention 2.5× (recomputed
    // scores + dV, dP, dQ, dK).
    let layer_bwd = 2.0 * t * (w + 3.0 * lora_w) + 2.5 * attn_fwd;
    let n_scored = (n_seq * (len - 1)) as f64;
    let head = 2.0 * n_scored * hp.n_vocab as f64 * d;
    let nl = hp.n_layer as f64;
    let executed = nl * (2.0 * layer_fwd + layer_bwd) + head * 3.0;
    let useful = nl * (layer_fwd + layer_bwd) + head * 2.0;
    (executed, useful)
}

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--device") {
        match args.get(i + 1).map(String::as_str) {
            Some("cpu") => {}
            Some("cuda") => {
                #[cfg(feature = "cuda-train")]
                {
                    if let Err(e) = cuda::run(&args) {
                        eprintln!("error: {e}");
                        std::process::exit(1);
                    }
                    return;
                }
                #[cfg(not(feature = "cuda-train"))]
                {
                    eprintln!("train_bench was built without the cuda-train feature");
                    std::process::exit(2);
                }
            }
            other => {
                eprintln!("--device must be cpu or cuda, not {other:?}");
                std::process::exit(2);
            }
        }
    }
    let steps: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(2);
    let path = model_path();
    let model = match GgufModel::open(&path) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            eprintln!("cannot open benchmark model: {e}");
            std::process::exit(1);
        }
    };
    let hp = model.hp().clone();
    println!(
        "model: {} ({:?}, {} layers, d={}, ff={}, vocab={}, weights {})",
        path.display(),
        model.arch(),
        hp.n_layer,
        hp.n_embd,
        hp.n_ff,
        hp.n_vocab,
        model.weight_type().name()
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .expect("pool");
    println!("measuring GEMM peak on {THREADS} threads (matrixmultiply 0.3):");
    let peak = gemm_peak(&pool);
    drop(pool);
    let tf = Transformer::new(model.clone(), THREADS).expect("transformer");
    let cfg = LoraConfig {
        rank: 16,
        alpha: 32.0,
        targets: LoraTarget::ALL.to_vec(),
        seed: 1,
    };
    let lora = LoraWeights::new(&cfg, &model).expect("lora");
    let mut grads = lora.zeros_like();
    let mut rng = Rng::new(3);
    let examples: Vec<SftExample> = (0..N_SEQ)
        .map(|_| SftExample {
            prompt: vec![1],
            completion: (1..SEQ_LEN)
                .map(|_| (rng.next_u64() % hp.n_vocab as u64) as u32)
                .collect(),
        })
        .collect();
    let (exec, useful) = flops(&hp, &lora, N_SEQ, SEQ_LEN);
    let tokens = (N_SEQ * SEQ_LEN) as f64;
    println!(
        "batch: {N_SEQ} x {SEQ_LEN} tokens, LoRA r=16 on all 7 projections ({} params)",
        lora.n_params()
    );
    let mut times = Vec::new();
    for s in 0..steps {
        grads.zero();
        let t = Instant::now();
        let st = sft_loss_and_grad(&tf, &lora, &examples, &SftConfig::default(), &mut grads)
            .expect("step");
        let dt = t.elapsed().as_secs_f64();
        times.push(dt);
        println!(
            "step {s}: {dt:.2} s, loss {:.4}, {:.1} tokens/s, {:.1} GFLOP/s executed ({:.1}% of peak), {:.1} GFLOP/s useful",
            st.loss,
            tokens / dt,
            exec / dt / 1e9,
            100.0 * exec / dt / 1e9 / peak,
            useful / dt / 1e9
        );
    }
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    // Re-measure the peak after the run (the machine may be shared); keep the best.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .expect("pool");
    println!("re-measuring GEMM peak:");
    let peak = peak.max(gemm_peak(&pool));
    drop(pool);
    // Forward-only for reference.
    let refs: Vec<Vec<u32>> = examples
        .iter()
        .map(|e| [e.prompt.clone(), e.completion.clone()].concat())
        .collect();
    let seqs: Vec<SeqRef> = refs.iter().map(|t| SeqRef::all(t)).collect();
    let t = Instant::now();
    tf.logprobs(Some(&lora), &seqs).expect("forward");
    let fwd = t.elapsed().as_secs_f64();
    // One more step to get the memory breakdown.
    let mem = tf
        .forward_backward(
            &lora,
            &seqs,
            |lp| {
                Ok((
                    0.0,
                    lp.iter()
                        .map(|v| vec![-1.0 / tokens as f32; v.len()])
                        .collect(),
                ))
            },
            &mut grads,
        )
        .expect("fb")
        .memory;
    println!("\nRESULTS (2 threads)");
    println!("GEMM peak (best of sizes): {peak:.1} GFLOP/s");
    println!(
        "forward+backward: best {best:.2} s/step = {:.1} tokens/s",
        tokens / best
    );
    println!(
        "achieved: {:.1} GFLOP/s executed = {:.1}% of GEMM peak ({:.1} GFLOP/step incl. recompute); useful {:.1} GFLOP/s",
        exec / best / 1e9,
        100.0 * exec / best / 1e9 / peak,
        exec / 1e9,
        useful / best / 1e9
    );
    println!(
        "forward only (log-probs): {fwd:.2} s = {:.1} tokens/s",
        tokens / fwd
    );
    println!("peak RSS (VmHWM): {:.1} MiB", vm_hwm_kib() as f64 / 1024.0);
    println!("breakdown (MiB):");
    println!(
        "  base weights (stored {}): {:.1}",
        model.weight_type().name(),
        mib(mem.base_weights)
    );
    println!(
        "  one block dequantized to f32: {:.1}",
        mib(mem.dense_layer)
    );
    println!("  output projection f32: {:.1}", mib(mem.dense_head));
    println!(
        "  block-input checkpoints (+dh, out): {:.1}",
        mib(mem.checkpoints)
    );
    println!("  one block activations: {:.1}", mib(mem.activations));
    println!("  one block gradient scratch: {:.1}", mib(mem.grad_scratch));
    println!("  logits chunks: {:.1}", mib(mem.logits_scratch));
    println!("  LoRA params + grads: {:.1}", mib(mem.lora));
    println!("  sum: {:.1}", mib(mem.total()));
}

#[cfg(feature = "cuda-train")]
mod cuda {
    //! The GRPO-update benchmark on a GPU.

    use std::sync::Arc;
    use std::time::Instant;

    use fmr::train::cuda::{CudaOptions, CudaTransformer, Precision};
    use fmr::train::lora::{LoraConfig, LoraTarget, LoraWeights};
    use fmr::train::loss::{grpo_loss_and_grad, Advantages, GrpoBatch, GrpoConfig, GrpoSequence};
    use fmr::train::optim::{AdamW, AdamWConfig};
    use fmr::train::rng::Rng;
    use fmr::train::weights::GgufModel;

    fn flag(args: &[String], name: &str) -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    }

    fn num(args: &[String], name: &str, default: usize) -> Result<usize, String> {
        flag(args, name).map_or(Ok(default), |v| {
            v.parse().map_err(|e| format!("{name} {v}: {e}"))
        })
    }

    const GIB: f64 = (1u64 << 30) as f64;

    pub fn run(args: &[String]) -> Result<(), String> {
        let path = flag(args, "--model").ok_or("--device cuda needs --model M.gguf")?;
        let steps = num(args, "--steps", 3)?.max(1);
        let g = num(args, "--seqs", 8)?;
        let p = num(args, "--prompt", 256)?;
        let c = num(args, "--completion", 1024)?;
        let mb = num(args, "--micro-batch", g)?.clamp(1, g.max(1));
        let warmup = num(args, "--warmup", 1)?;
        let precision = match flag(args, "--precision").as_deref() {
            None | Some("bf16") => Precision::Bf16,
            Some("f32") => Precision::F32,
            Some(o) => return Err(format!("--precision bf16|f32, not {o}")),
        };
        let model = Arc::new(GgufModel::open(&path).map_err(|e| e.to_string())?);
        let hp = model.hp().clone();
        let opts = CudaOptions {
            precision,
            bf16_checkpoints: args.iter().any(|a| a == "--ckpt-bf16"),
            ..CudaOptions::default()
        };
        let t_load = Instant::now();
        let tf = CudaTransformer::new(model.clone(), &opts).map_err(|e| e.to_string())?;
        tf.synchronize().map_err(|e| e.to_string())?;
        let (free0, total) = tf.mem_info().map_err(|e| e.to_string())?;
        println!(
            "device: {} ({:.1} GiB); model {} ({:?}, {} layers, d={}, ff={}, vocab={}, {}) \
             uploaded in {:.1} s ({:.2} GiB)",
            tf.device_name(),
            total as f64 / GIB,
            path,
            model.arch(),
            hp.n_layer,
            hp.n_embd,
            hp.n_ff,
            hp.n_vocab,
            model.weight_type().name(),
            t_load.elapsed().as_secs_f64(),
            tf.weight_bytes() as f64 / GIB
        );
        let cfg = LoraConfig {
            rank: 16,
            alpha: 32.0,
            targets: LoraTarget::ALL.to_vec(),
            seed: 1,
        };
        let lora = LoraWeights::new(&cfg, &model).map_err(|e| e.to_string())?;
        let host_opt = AdamW::new(
            AdamWConfig {
                lr: 1e-5,
                ..Default::default()
            },
            &lora,
        )
        .map_err(|e| e.to_string())?;
        let mut dl = tf.upload_lora(&lora).map_err(|e| e.to_string())?;
        let mut grads = tf.zeros_like(&dl).map_err(|e| e.to_string())?;
        let mut opt = tf.upload_adamw(&host_opt).map_err(|e| e.to_string())?;
        let mut rng = Rng::new(7);
        let v = hp.n_vocab as u64;
        let mut tok =
            |n: usize| -> Vec<u32> { (0..n).map(|_| (rng.next_u64() % v) as u32).collect() };
        let seqs: Vec<GrpoSequence> = (0..g)
            .map(|_| GrpoSequence {
                prompt: tok(p),
                completion: tok(c),
                ..Default::default()
            })
            .collect();
        let mut rng = Rng::new(8);
        let adv: Vec<f32> = (0..g).map(|_| rng.normal()).collect();
        let gcfg = GrpoConfig::default();
        let mut times = Vec::new();
        for s in 0..steps + warmup {
            let t = Instant::now();
            tf.zero_lora(&mut grads).map_err(|e| e.to_string())?;
            let mut n_micro = 0;
            for (chunk, a) in seqs.chunks(mb).zip(adv.chunks(mb)) {
                let b = GrpoBatch {
                    seqs: chunk.to_vec(),
                    advantages: Advantages::Given(a.to_vec()),
                };
                grpo_loss_and_grad(&tf, &dl, &b, &gcfg, &mut grads).map_err(|e| e.to_string())?;
                n_micro += 1;
            }
            let st = tf
                .adamw_step(&mut opt, &mut dl, &grads, 1.0 / n_micro as f32)
                .map_err(|e| e.to_string())?;
            tf.synchronize().map_err(|e| e.to_string())?;
            let dt = t.elapsed().as_secs_f64();
            println!(
                "update {s}{}: {dt:.3} s, grad norm {:.3e}",
                if s < warmup { " (warm-up)" } else { "" },
                st.grad_norm
            );
            if s >= warmup {
                times.push(dt);
            }
        }
        let (free1, _) = tf.mem_info().map_err(|e| e.to_string())?;
        let peak = free0.saturating_sub(free1) + tf.weight_bytes();
        times.sort_by(|a, b| a.total_cmp(b));
        let med = times[times.len() / 2];
        let tokens = g * (p + c);
        println!(
            "RESULT train_bench device=cuda precision={precision:?} ckpt_bf16={} G={g} P={p} C={c} \
             micro_batch={mb} s_per_update={med:.3} train_tok_per_s={:.0} peak_gib={:.2} \
             workspace_gib={:.2}",
            opts.bf16_checkpoints,
            tokens as f64 / med,
            peak as f64 / GIB,
            tf.workspace_bytes() as f64 / GIB
        );
        Ok(())
    }
}
