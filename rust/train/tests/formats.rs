//! Adapter and checkpoint file formats.

use super::support as common;

use std::path::Path;

use crate::adapter::gguf_lora::export_gguf_lora;
use crate::adapter::peft::{load_peft, save_peft};
use crate::train::checkpoint::{load_checkpoint, save_checkpoint, Checkpoint};
use crate::train::lora::{LoraConfig, LoraTarget, LoraWeights};
use crate::train::optim::{AdamW, AdamWConfig, Schedule};
use crate::train::rng::Rng;
use crate::train::weights::{write_random_gguf, Arch, GgufFile, GgufModel, RandomModelSpec};
use crate::train::TrainError;

fn model(arch: Arch) -> GgufModel {
    // Tests run in parallel: each writes its own file.
    let p = common::scratch_dir().join(format!(
        "formats-{}-{:?}.gguf",
        arch.name(),
        std::thread::current().id()
    ));
    write_random_gguf(
        &RandomModelSpec {
            seed: 1,
            ..RandomModelSpec::tiny(arch)
        },
        &p,
    )
    .unwrap();
    GgufModel::open(&p).unwrap()
}

fn filled(m: &GgufModel, targets: &[LoraTarget]) -> LoraWeights {
    let cfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: targets.to_vec(),
        seed: 2,
    };
    let mut w = LoraWeights::new(&cfg, m).unwrap();
    let mut rng = Rng::new(8);
    w.params_mut()
        .iter_mut()
        .flatten()
        .for_each(|v| *v = rng.normal());
    w
}

/// Parses a safetensors file by the format's rules: u64 LE header size, JSON header with
/// `dtype`, `shape`, `data_offsets` per tensor (plus optional `__metadata__`), offsets
/// contiguous from 0 and covering the byte buffer exactly.
fn parse_safetensors(path: &Path) -> (serde_json::Map<String, serde_json::Value>, usize) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let obj = header.as_object().unwrap().clone();
    let data_len = bytes.len() - 8 - n;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for (k, v) in &obj {
        if k == "__metadata__" {
            continue;
        }
        let dtype = v["dtype"].as_str().unwrap();
        assert_eq!(dtype, "F32", "{k}");
        let shape: Vec<u64> = v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let off: Vec<u64> = v["data_offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(
            off[1] - off[0],
            shape.iter().product::<u64>() * 4,
            "{k}: byte size"
        );
        ranges.push((off[0], off[1]));
    }
    ranges.sort();
    let mut pos = 0;
    for (a, b) in ranges {
        assert_eq!(a, pos, "tensor data must be contiguous");
        pos = b;
    }
    assert_eq!(pos as usize, data_len, "data section fully covered");
    (obj, data_len)
}

#[test]
fn peft_files_follow_peft_names_shapes_and_config() {
    let m = model(Arch::Llama);
    let targets = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::O,
        LoraTarget::Down,
    ];
    let w = filled(&m, &targets);
    let dir = common::scratch_dir().join("peft-llama");
    let _ = std::fs::remove_dir_all(&dir);
    save_peft(
        &w,
        m.arch,
        &m.hp,
        &dir,
        "HuggingFaceTB/SmolLM2-135M-Instruct",
    )
    .unwrap();
    let (hdr, _) = parse_safetensors(&dir.join("adapter_model.safetensors"));
    let hp = &m.hp;
    for l in 0..hp.n_layer {
        for t in targets {
            let (din, dout) = t.dims(hp);
            let parent = if t == LoraTarget::Down {
                "mlp"
            } else {
                "self_attn"
            };
            let base = format!("base_model.model.model.layers.{l}.{parent}.{}", t.hf_name());
            let a = &hdr[&format!("{base}.lora_A.weight")];
            let b = &hdr[&format!("{base}.lora_B.weight")];
            assert_eq!(a["shape"], serde_json::json!([4, din]));
            assert_eq!(b["shape"], serde_json::json!([dout, 4]));
        }
    }
    assert_eq!(
        hdr.len() - 1,
        hp.n_layer * targets.len() * 2,
        "no extra tensors"
    );
    assert_eq!(
        hdr["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]["dtype"],
        "F32"
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["task_type"], "CAUSAL_LM");
    assert_eq!(cfg["r"], 4);
    assert_eq!(cfg["lora_alpha"], 8.0);
    assert_eq!(
        cfg["target_modules"],
        serde_json::json!(["q_proj", "k_proj", "o_proj", "down_proj"])
    );
    assert_eq!(
        cfg["base_model_name_or_path"],
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    );
    for key in [
        "lora_dropout",
        "bias",
        "fan_in_fan_out",
        "inference_mode",
        "use_rslora",
        "use_dora",
        "modules_to_save",
    ] {
        assert!(cfg.get(key).is_some(), "missing config key {key}");
    }
    // Round trip restores GGUF row order exactly; Q's B is stored permuted (HF order).
    let back = load_peft(&dir, m.arch, &m.hp).unwrap();
    assert_eq!(back.params(), w.params());
    assert_eq!(back.config.rank, 4);
    let st_bytes = std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    let bq = st
        .tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")
        .unwrap();
    let bq: Vec<f32> = bq
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let (_, gguf_bq) = w.pair(0, LoraTarget::Q).unwrap();
    let hd = m.hp.head_dim;
    // HF row (head 0, j = 1, i = 0) = GGUF row 1.
    assert_eq!(&bq[(hd / 2) * 4..(hd / 2) * 4 + 4], &gguf_bq[4..8]);
}

#[test]
fn peft_qwen2_roundtrip_and_errors() {
    let m = model(Arch::Qwen2);
    let w = filled(&m, &LoraTarget::ALL);
    let dir = common::scratch_dir().join("peft-qwen2");
    save_peft(&w, m.arch, &m.hp, &dir, "random").unwrap();
    assert_eq!(load_peft(&dir, m.arch, &m.hp).unwrap().params(), w.params());
    // Wrong model shape → shape error, not a panic.
    let other = model(Arch::Llama);
    let mut hp = other.hp.clone();
    hp.n_ff += 32;
    assert!(matches!(
        load_peft(&dir, other.arch, &hp),
        Err(TrainError::ShapeMismatch { .. })
    ));
    let missing = load_peft(&common::scratch_dir().join("nope"), m.arch, &m.hp).unwrap_err();
    assert!(matches!(missing, TrainError::MissingFile(_)), "{missing}");
}

#[test]
fn gguf_lora_has_llama_cpp_metadata() {
    let m = model(Arch::Qwen2);
    let w = filled(&m, &[LoraTarget::V, LoraTarget::Up]);
    let p = common::scratch_dir().join("formats-lora.gguf");
    export_gguf_lora(&w, m.arch, &p).unwrap();
    let g = GgufFile::open(&p).unwrap();
    assert_eq!(
        g.get_str("general.type").unwrap().as_deref(),
        Some("adapter")
    );
    assert_eq!(g.get_str("adapter.type").unwrap().as_deref(), Some("lora"));
    assert_eq!(
        g.get_str("general.architecture").unwrap().as_deref(),
        Some("qwen2")
    );
    assert_eq!(g.get_float("adapter.lora.alpha").unwrap(), Some(8.0));
    let t = g.tensors().unwrap();
    let a = t
        .iter()
        .find(|t| t.name == "blk.1.attn_v.weight.lora_a")
        .unwrap();
    let b = t
        .iter()
        .find(|t| t.name == "blk.1.ffn_up.weight.lora_b")
        .unwrap();
    assert_eq!(a.ne, vec![m.hp.n_embd, 4]);
    assert_eq!(b.ne, vec![4, m.hp.n_ff]);
    assert_eq!(t.len(), m.hp.n_layer * 4);
}

#[test]
fn checkpoint_roundtrip_is_atomic() {
    let m = model(Arch::Llama);
    let w = filled(&m, &[LoraTarget::Q, LoraTarget::Gate]);
    let cfg = AdamWConfig {
        lr: 1e-3,
        schedule: Schedule::Cosine {
            warmup: 2,
            total: 10,
            min_ratio: 0.1,
        },
        ..Default::default()
    };
    let mut opt = AdamW::new(cfg, &w).unwrap();
    let mut params = w.clone();
    let mut grads = w.clone();
    grads.scale(0.01);
    for _ in 0..3 {
        opt.step(&mut params, &grads, 1.0).unwrap();
    }
    let mut rng = Rng::new(77);
    rng.next_u64();
    let ck = Checkpoint {
        lora: params.clone(),
        optimizer: opt.clone(),
        rng: rng.clone(),
        extra: serde_json::json!({"epoch": 1}),
    };
    let path = common::scratch_dir().join("ck-test.safetensors");
    save_checkpoint(&path, &ck).unwrap();
    let back = load_checkpoint(&path, &m.hp).unwrap();
    assert_eq!(back.lora, params);
    assert_eq!(back.optimizer, opt);
    assert_eq!(back.rng, rng);
    assert_eq!(back.extra["epoch"], 1);
    // No temporary left behind; a failed save (unwritable dir) leaves the old file intact.
    let leftovers: Vec<_> = std::fs::read_dir(common::scratch_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".ck-test"))
        .collect();
    assert!(leftovers.is_empty());
    let bad = Path::new("/nonexistent-dir/ck.safetensors");
    assert!(save_checkpoint(bad, &ck).is_err());
    // Resuming continues identically to not stopping.
    let mut p1 = params.clone();
    let mut o1 = opt.clone();
    o1.step(&mut p1, &grads, 1.0).unwrap();
    let mut p2 = back.lora.clone();
    let mut o2 = back.optimizer.clone();
    o2.step(&mut p2, &grads, 1.0).unwrap();
    assert_eq!(p1, p2);
    // Corrupt file → clear error.
    std::fs::write(&path, b"garbage").unwrap();
    assert!(matches!(
        load_checkpoint(&path, &m.hp),
        Err(TrainError::BadAdapter { .. })
    ));
}

#[test]
fn peft_loads_f16_and_bf16_tensors() {
    use safetensors::tensor::{Dtype, SafeTensors, TensorView};
    let m = model(Arch::Qwen2);
    let w = filled(&m, &[LoraTarget::Up]);
    let dir = common::scratch_dir().join("peft-half");
    save_peft(&w, m.arch, &m.hp, &dir, "random").unwrap();
    let file = dir.join("adapter_model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    for dtype in [Dtype::BF16, Dtype::F16] {
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, v) in st.tensors() {
            let vals: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let half: Vec<u8> = vals
                .iter()
                .flat_map(|&x| {
                    let h = if dtype == Dtype::BF16 {
                        (x.to_bits() >> 16) as u16
                    } else {
                        crate::train::weights::ggml::f32_to_f16(x)
                    };
                    h.to_le_bytes()
                })
                .collect();
            owned.push((name, v.shape().to_vec(), half));
        }
        let views: Vec<(String, TensorView)> = owned
            .iter()
            .map(|(n, s, d)| (n.clone(), TensorView::new(dtype, s.clone(), d).unwrap()))
            .collect();
        let out = safetensors::serialize(views, &None).unwrap();
        std::fs::write(&file, out).unwrap();
        let back = load_peft(&dir, m.arch, &m.hp).unwrap();
        for (a, b) in back
            .params()
            .iter()
            .flatten()
            .zip(w.params().iter().flatten())
        {
            assert!(
                (a - b).abs() <= 1e-2 * (1.0 + b.abs()),
                "{dtype:?}: {a} vs {b}"
            );
        }
    }
}
