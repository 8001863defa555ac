//! PEFT-format LoRA adapters: `adapter_model.safetensors` + `adapter_config.json`.
//!
//! Tensor names: `base_model.model.model.layers.{l}.{self_attn|mlp}.{q_proj…}.lora_A.weight`
//! (`[r, in]`) and `.lora_B.weight` (`[out, r]`), F32. For the `llama` architecture the GGUF
//! converter permutes Q/K rows; B of `q_proj`/`k_proj` is stored in Hugging Face row order
//! (un-permuted on save, permuted back on load), so the files work with the HF model.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::train::atomic::write_bytes_atomic;
use crate::train::lora::{LoraConfig, LoraTarget, LoraWeights};
use crate::train::weights::ggml::f16_to_f32;
use crate::train::weights::{Arch, HyperParams};
use crate::train::{Result, TrainError};

/// File name of the weights inside an adapter directory.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// File name of the config inside an adapter directory.
pub const CONFIG_FILE: &str = "adapter_config.json";

/// The subset of PEFT's `LoraConfig` JSON we write and read (unknown keys are ignored on read,
/// since PEFT versions add keys).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeftConfig {
    pub peft_type: String,
    pub task_type: Option<String>,
    pub r: usize,
    pub lora_alpha: f32,
    pub target_modules: Vec<String>,
    #[serde(default)]
    pub lora_dropout: f32,
    #[serde(default = "default_bias")]
    pub bias: String,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub inference_mode: bool,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    pub layers_to_transform: Option<serde_json::Value>,
    #[serde(default)]
    pub rank_pattern: HashMap<String, serde_json::Value>,
    #[serde(default)]
    pub alpha_pattern: HashMap<String, serde_json::Value>,
    #[serde(default)]
    pub init_lora_weights: serde_json::Value,
    #[serde(default)]
    pub revision: Option<String>,
}

fn default_bias() -> String {
    "none".into()
}

/// PEFT tensor-name prefix of one adapted module.
pub fn peft_module_name(layer: usize, t: LoraTarget) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.{}",
        t.hf_parent(),
        t.hf_name()
    )
}

/// Row permutation between GGUF (llama) and HF order for Q/K: `gguf[h·hd + 2i + j] =
/// hf[h·hd + j·hd/2 + i]`. Returns `perm` with `gguf_row = perm[hf_row]`.
fn llama_qk_perm(rows: usize, head_dim: usize) -> Vec<usize> {
    let half = head_dim / 2;
    let mut perm = vec![0; rows];
    for (hf, p) in perm.iter_mut().enumerate() {
        let (h, rem) = (hf / head_dim, hf % head_dim);
        let (j, i) = (rem / half, rem % half);
        *p = h * head_dim + 2 * i + j;
    }
    perm
}

fn needs_perm(arch: Arch, t: LoraTarget) -> bool {
    arch == Arch::Llama && matches!(t, LoraTarget::Q | LoraTarget::K)
}

/// Writes `lora` as a PEFT adapter into directory `dir` (created if needed). Each file is
/// replaced atomically. `base_model` fills `base_model_name_or_path`.
pub fn save_peft(
    lora: &LoraWeights,
    arch: Arch,
    hp: &HyperParams,
    dir: &Path,
    base_model: &str,
) -> Result<()> {
    lora.check_model(hp)?;
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let r = lora.config.rank;
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (l, t) in lora.entries() {
        let Some((a, b)) = lora.pair(l, t) else {
            continue;
        };
        let (din, dout) = lora.dims(t);
        let b_hf: Vec<f32> = if needs_perm(arch, t) {
            let perm = llama_qk_perm(dout, hp.head_dim);
            let mut v = vec![0f32; b.len()];
            for (hf, &g) in perm.iter().enumerate() {
                v[hf * r..(hf + 1) * r].copy_from_slice(&b[g * r..(g + 1) * r]);
            }
            v
        } else {
            b.to_vec()
        };
        let base = peft_module_name(l, t);
        named.push((
            format!("{base}.lora_A.weight"),
            vec![r, din],
            a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
        named.push((
            format!("{base}.lora_B.weight"),
            vec![dout, r],
            b_hf.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    let views: Vec<(String, TensorView)> = named
        .iter()
        .map(|(n, s, d)| {
            TensorView::new(Dtype::F32, s.clone(), d)
                .map(|v| (n.clone(), v))
                .map_err(|e| TrainError::shape(n.clone(), s, format!("{e:?}")))
        })
        .collect::<Result<_>>()?;
    let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let bytes = safetensors::serialize(views, &Some(meta)).map_err(|e| TrainError::BadAdapter {
        path: dir.join(WEIGHTS_FILE),
        reason: format!("{e:?}"),
    })?;
    let mut targets: Vec<LoraTarget> = lora.config.targets.clone();
    targets.sort();
    targets.dedup();
    let cfg = PeftConfig {
        peft_type: "LORA".into(),
        task_type: Some("CAUSAL_LM".into()),
        r,
        lora_alpha: lora.config.alpha,
        target_modules: targets.iter().map(|t| t.hf_name().to_string()).collect(),
        lora_dropout: 0.0,
        bias: "none".into(),
        fan_in_fan_out: false,
        base_model_name_or_path: Some(base_model.to_string()),
        inference_mode: true,
        use_rslora: false,
        use_dora: false,
        modules_to_save: None,
        layers_to_transform: None,
        rank_pattern: HashMap::new(),
        alpha_pattern: HashMap::new(),
        init_lora_weights: serde_json::Value::Bool(true),
        revision: None,
    };
    let json = serde_json::to_vec_pretty(&cfg).map_err(|e| TrainError::config(e.to_string()))?;
    write_bytes_atomic(&dir.join(WEIGHTS_FILE), &bytes)?;
    write_bytes_atomic(&dir.join(CONFIG_FILE), &json)
}

fn to_f32(path: &Path, name: &str, v: &TensorView<'_>) -> Result<Vec<f32>> {
    let d = v.data();
    let bad = |why: &str| TrainError::BadAdapter {
        path: path.to_path_buf(),
        reason: format!("{name}: {why}"),
    };
    match v.dtype() {
        Dtype::F32 => Ok(d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        Dtype::BF16 => Ok(d
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect()),
        Dtype::F16 => Ok(d
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect()),
        other => Err(bad(&format!("unsupported dtype {other:?}"))),
    }
}

/// Reads a PEFT adapter directory for a base model with `arch`/`hp`. Only plain LoRA on the
/// seven supported projections is accepted (no DoRA, no rank/alpha patterns, no extra modules).
pub fn load_peft(dir: &Path, arch: Arch, hp: &HyperParams) -> Result<LoraWeights> {
    let cpath = dir.join(CONFIG_FILE);
    let wpath = dir.join(WEIGHTS_FILE);
    let bad = |p: &Path, why: String| TrainError::BadAdapter {
        path: p.to_path_buf(),
        reason: why,
    };
    let text = std::fs::read(&cpath).map_err(|e| TrainError::io(&cpath, e))?;
    let cfg: PeftConfig = serde_json::from_slice(&text).map_err(|e| bad(&cpath, e.to_string()))?;
    if cfg.peft_type != "LORA" {
        return Err(bad(
            &cpath,
            format!("peft_type {} is not LORA", cfg.peft_type),
        ));
    }
    if cfg.use_dora
        || cfg.use_rslora
        || !cfg.rank_pattern.is_empty()
        || !cfg.alpha_pattern.is_empty()
    {
        return Err(bad(
            &cpath,
            "DoRA, rsLoRA and rank/alpha patterns are not supported".into(),
        ));
    }
    let targets = cfg
        .target_modules
        .iter()
        .map(|m| {
            LoraTarget::parse(m)
                .ok_or_else(|| bad(&cpath, format!("unsupported target module {m}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let lcfg = LoraConfig {
        rank: cfg.r,
        alpha: cfg.lora_alpha,
        targets,
        seed: 0,
    };
    let mut lora = LoraWeights::zeros(&lcfg, hp).map_err(|e| bad(&cpath, e.to_string()))?;
    let bytes = std::fs::read(&wpath).map_err(|e| TrainError::io(&wpath, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(&wpath, format!("{e:?}")))?;
    let r = cfg.r;
    for (l, t) in lora.entries() {
        let (din, dout) = lora.dims(t);
        let base = peft_module_name(l, t);
        let get = |suffix: &str, shape: [usize; 2]| -> Result<Vec<f32>> {
            let name = format!("{base}.{suffix}.weight");
            let v = st
                .tensor(&name)
                .map_err(|_| bad(&wpath, format!("missing tensor {name}")))?;
            if v.shape() != shape {
                return Err(TrainError::shape(name, shape, v.shape()));
            }
            to_f32(&wpath, &name, &v)
        };
        let a = get("lora_A", [r, din])?;
        let b_hf = get("lora_B", [dout, r])?;
        let b = if needs_perm(arch, t) {
            let perm = llama_qk_perm(dout, hp.head_dim);
            let mut v = vec![0f32; b_hf.len()];
            for (hf, &g) in perm.iter().enumerate() {
                v[g * r..(g + 1) * r].copy_from_slice(&b_hf[hf * r..(hf + 1) * r]);
            }
            v
        } else {
            b_hf
        };
        if let Some((pa, pb)) = lora.pair_mut(l, t) {
            pa.copy_from_slice(&a);
            pb.copy_from_slice(&b);
        }
    }
    Ok(lora)
}
