//! Training checkpoints: adapter, AdamW state, step and RNG in one safetensors file, written
//! atomically (temporary file + fsync + rename) so an interrupted write never leaves a broken one.
//!
//! Layout: tensors `lora.{i}`, `adam_m.{i}`, `adam_v.{i}` (F32, 1-D, canonical
//! [`LoraWeights::params`] order) and the metadata key `fmr.checkpoint` holding JSON
//! [`CheckpointMeta`].

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::train::atomic::write_bytes_atomic;
use crate::train::error::{Result, TrainError};
use crate::train::lora::{LoraConfig, LoraWeights};
use crate::train::optim::{AdamW, AdamWConfig};
use crate::train::rng::Rng;
use crate::train::weights::HyperParams;

const META_KEY: &str = "fmr.checkpoint";
const VERSION: u32 = 1;

/// JSON metadata stored inside the checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointMeta {
    pub version: u32,
    pub lora: LoraConfig,
    pub optimizer: AdamWConfig,
    /// Optimizer steps taken.
    pub step: u64,
    /// [`Rng::state`] of the training loop's generator.
    pub rng_state: [u64; 4],
    /// Free-form data of the caller (data-loader position, recipe config, …).
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// Everything needed to resume training.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub lora: LoraWeights,
    pub optimizer: AdamW,
    pub rng: Rng,
    pub extra: serde_json::Value,
}

/// Writes `ck` to `path` atomically.
pub fn save_checkpoint(path: &Path, ck: &Checkpoint) -> Result<()> {
    ck.lora.check_same_shape(&ck.optimizer.m)?;
    ck.lora.check_same_shape(&ck.optimizer.v)?;
    let meta = CheckpointMeta {
        version: VERSION,
        lora: ck.lora.config.clone(),
        optimizer: ck.optimizer.config.clone(),
        step: ck.optimizer.step,
        rng_state: ck.rng.state(),
        extra: ck.extra.clone(),
    };
    let json = serde_json::to_string(&meta).map_err(|e| TrainError::config(e.to_string()))?;
    let mut named: Vec<(String, Vec<u8>, usize)> = Vec::new();
    for (prefix, w) in [
        ("lora", &ck.lora),
        ("adam_m", &ck.optimizer.m),
        ("adam_v", &ck.optimizer.v),
    ] {
        for (i, p) in w.params().iter().enumerate() {
            named.push((
                format!("{prefix}.{i}"),
                p.iter().flat_map(|v| v.to_le_bytes()).collect(),
                p.len(),
            ));
        }
    }
    let views: Vec<(String, TensorView)> = named
        .iter()
        .map(|(n, d, len)| {
            TensorView::new(Dtype::F32, vec![*len], d)
                .map(|v| (n.clone(), v))
                .map_err(|e| TrainError::shape(n.clone(), len, format!("{e:?}")))
        })
        .collect::<Result<_>>()?;
    let meta_map: HashMap<String, String> = [(META_KEY.to_string(), json)].into();
    let bytes =
        safetensors::serialize(views, &Some(meta_map)).map_err(|e| TrainError::BadAdapter {
            path: path.to_path_buf(),
            reason: format!("{e:?}"),
        })?;
    write_bytes_atomic(path, &bytes)
}

/// Reads a checkpoint written by [`save_checkpoint`] for a model with hyper-parameters `hp`.
pub fn load_checkpoint(path: &Path, hp: &HyperParams) -> Result<Checkpoint> {
    let bad = |why: String| TrainError::BadAdapter {
        path: path.to_path_buf(),
        reason: why,
    };
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("{e:?}")))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| bad(format!("missing {META_KEY} metadata")))?;
    let meta: CheckpointMeta = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    if meta.version != VERSION {
        return Err(bad(format!(
            "unsupported checkpoint version {}",
            meta.version
        )));
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("{e:?}")))?;
    let mut lora = LoraWeights::zeros(&meta.lora, hp)?;
    let mut optimizer = AdamW::new(meta.optimizer.clone(), &lora)?;
    optimizer.step = meta.step;
    for (prefix, w) in [
        ("lora", &mut lora),
        ("adam_m", &mut optimizer.m),
        ("adam_v", &mut optimizer.v),
    ] {
        for (i, p) in w.params_mut().iter_mut().enumerate() {
            let name = format!("{prefix}.{i}");
            let v = st
                .tensor(&name)
                .map_err(|_| bad(format!("missing tensor {name}")))?;
            if v.dtype() != Dtype::F32 || v.shape() != [p.len()] {
                return Err(TrainError::shape(name, [p.len()], v.shape()));
            }
            for (dst, c) in p.iter_mut().zip(v.data().chunks_exact(4)) {
                *dst = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
    }
    Ok(Checkpoint {
        lora,
        optimizer,
        rng: Rng::from_state(meta.rng_state),
        extra: meta.extra,
    })
}
