//! The trainer of one run: base model (for the engine and for training), the LoRA being
//! trained, optimizer, RNG, data order, metrics, checkpoints and the engine's live adapter.
//!
//! The SFT step lives in `sft.rs`, the GRPO step in `grpo.rs`, the run loop in `run.rs`, the
//! final outputs in `outputs.rs`; this module depends on none of them.
//!
//! Thread-safety: `Send`, not `Sync`; one step at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::compute::Compute;
use super::config::RunConfig;
use super::data::{load_problems, DataCursor, DataOrder, Problem};
use super::files::{CHECKPOINT_FILE, STEP_CHECKPOINT_DIR};
use super::metrics::{io_err, MetricsLog};
use super::rollout_log::truncate_rollouts;
use crate::adapter::gguf_lora::export_gguf_lora;
use crate::adapter::peft::{load_peft, save_peft};
use crate::engine::{ContextParams, LoraAdapter, Model, ModelParams};
use crate::error::{Error, ErrorCode, Result};
use crate::generate::Generator;
use crate::train::atomic::temp_path;
use crate::train::checkpoint::{load_checkpoint, save_checkpoint, Checkpoint};
use crate::train::lora::LoraWeights;
use crate::train::model::Transformer;
use crate::train::optim::{AdamW, Schedule};
use crate::train::rng::Rng;
use crate::train::weights::GgufModel;

/// Which loop a trainer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Sft,
    Grpo,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Sft => "sft",
            Stage::Grpo => "grpo",
        }
    }
}

/// What a host-supplied reward sees for one completion.
#[derive(Clone, Debug)]
pub struct RewardRequest<'a> {
    pub problem: &'a str,
    /// Gold answer of the problem.
    pub answer: &'a str,
    pub completion: &'a str,
    pub completion_tokens: usize,
}

/// A host-supplied reward, added to the built-in ones with `grpo.custom_reward_weight`.
/// An error aborts the step (nothing is updated).
pub type CustomReward = Box<dyn FnMut(&RewardRequest<'_>) -> Result<f64> + Send>;

/// Fields of the configuration that may change between a run and its resumption.
fn resumable_view(cfg: &RunConfig) -> serde_json::Value {
    let mut c = cfg.clone();
    c.max_steps = 0;
    c.max_minutes = None;
    c.keep_checkpoints = false;
    c.resume = true;
    c.threads = 1;
    c.device = crate::train::Device::Cpu;
    c.chart = None;
    serde_json::to_value(c).unwrap_or_default()
}

pub struct Trainer {
    pub(super) cfg: RunConfig,
    pub(super) stage: Stage,
    pub(super) engine_model: Arc<Model>,
    pub(super) tf: Transformer,
    /// Where losses, gradients and the optimizer run (see `compute.rs`).
    pub(super) compute: Compute,
    pub(super) lora: LoraWeights,
    /// Frozen adapter the run started from (GRPO's reference model when set).
    pub(super) init_lora: Option<LoraWeights>,
    pub(super) grads: LoraWeights,
    pub(super) opt: AdamW,
    pub(super) rng: Rng,
    pub(super) data: Vec<Problem>,
    pub(super) validation: Vec<Problem>,
    pub(super) order: DataOrder,
    pub(super) metrics: MetricsLog,
    pub(super) generator: Option<Generator>,
    /// The adapter the engine applies now, and whether `lora` changed since it was exported.
    pub(super) live_adapter: Option<Arc<LoraAdapter>>,
    pub(super) adapter_stale: bool,
    pub(super) custom_reward: Option<CustomReward>,
    pub(super) custom_weight: Option<f64>,
    /// Seconds of earlier segments of this run (from the checkpoint) and when this one started.
    pub(super) elapsed_before: f64,
    pub(super) started: Instant,
    /// Planned optimizer steps (0 = unbounded).
    pub(super) planned_steps: u64,
    /// Test hook: the step stage that fails on purpose (see [`Trainer::fault`]).
    #[cfg(test)]
    pub(super) fail_at: Option<StepStage>,
}

/// The stages of a step, in order, as the failure tests name them. A step that fails at any
/// of them changes nothing (see [`Trainer::atomic_step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StepStage {
    /// GRPO: completions generated with the current adapter. SFT: the batch tokenized.
    Inputs,
    /// GRPO: rewards and advantages computed.
    Scoring,
    /// Losses and gradients computed (GRPO: reference log-probs included).
    Loss,
    /// The optimizer has updated the adapter and its own state.
    Update,
    /// SFT: the validation loss computed.
    Validation,
    /// The metrics row written.
    Metrics,
    /// GRPO: the step's rollouts written.
    Rollouts,
}

/// Everything a step changes, kept to put back when the step fails.
struct StepSnapshot {
    lora: LoraWeights,
    opt: AdamW,
    rng: Rng,
    order: DataOrder,
    metrics_rows: usize,
}

fn cfg_err(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::InvalidConfig, e.to_string())
}

impl Trainer {
    /// Loads the model (twice: llama.cpp for tokenizing and rollouts, the trainer's compact
    /// copy for forward/backward), the data, and the checkpoint of `out_dir` when `resume` is
    /// set and one exists; otherwise starts from `init_adapter` or a fresh LoRA.
    pub fn new(cfg: RunConfig, stage: Stage) -> Result<Trainer> {
        cfg.validate()?;
        let mut cfg = cfg;
        if cfg.model.as_os_str().is_empty() {
            return Err(cfg_err("model must name a GGUF file"));
        }
        let model_path = cfg.model.clone();
        crate::engine::init_backend();
        let engine_model = Arc::new(Model::load(&model_path, &ModelParams::default())?);
        let gguf = Arc::new(GgufModel::open(&model_path)?);
        let hp = gguf.hp.clone();
        let tf = Transformer::new(gguf, cfg.threads)?;
        if cfg.data.train.as_os_str().is_empty() {
            return Err(cfg_err("data.train must name a JSONL file"));
        }
        let data = load_problems(&cfg.data.train, &cfg.data)?;
        let validation = match &cfg.data.validation {
            Some(p) => load_problems(p, &cfg.data)?,
            None => Vec::new(),
        };
        std::fs::create_dir_all(&cfg.out_dir).map_err(|e| {
            Error::new(
                ErrorCode::Io,
                format!("cannot create '{}': {e}", cfg.out_dir.display()),
            )
        })?;
        let init_lora = match &cfg.init_adapter {
            Some(p) => Some(load_adapter_file(p, &tf)?),
            None => None,
        };
        if let Some(l) = &init_lora {
            cfg.lora = l.config.clone();
        }
        let planned_steps = planned_steps(&cfg, stage, data.len())?;
        if let Schedule::Cosine { total, warmup, .. } | Schedule::Linear { total, warmup } =
            &mut cfg.optimizer.schedule
        {
            if *total == 0 {
                if planned_steps == 0 {
                    return Err(cfg_err(
                        "a cosine or linear schedule needs max_steps (or SFT epochs) to size it",
                    ));
                }
                *total = planned_steps.max(*warmup);
            }
        }
        let ck_path = cfg.out_dir.join(CHECKPOINT_FILE);
        let (lora, opt, rng, cursor, elapsed_before) = if cfg.resume && ck_path.is_file() {
            let ck = load_checkpoint(&ck_path, &hp)?;
            let extra = &ck.extra;
            if extra.get("stage").and_then(|s| s.as_str()) != Some(stage.as_str()) {
                return Err(cfg_err(format!(
                    "'{}' belongs to another stage; use a new out_dir",
                    ck_path.display()
                )));
            }
            if extra.get("config") != Some(&resumable_view(&cfg)) {
                return Err(cfg_err(format!(
                    "'{}' was written with a different configuration; resume needs the same one \
                     (only max_steps, max_minutes and threads may change), or use a new out_dir",
                    ck_path.display()
                )));
            }
            let cursor: DataCursor = serde_json::from_value(extra["cursor"].clone())
                .map_err(|e| cfg_err(format!("checkpoint cursor: {e}")))?;
            let elapsed = extra["elapsed_s"].as_f64().unwrap_or(0.0);
            (ck.lora, ck.optimizer, ck.rng, cursor, elapsed)
        } else {
            let lora = match &init_lora {
                Some(l) => l.clone(),
                None => {
                    let mut lc = cfg.lora.clone();
                    if lc.seed == 0 {
                        lc.seed = cfg.seed;
                    }
                    LoraWeights::new(&lc, tf.model())?
                }
            };
            let opt = AdamW::new(cfg.optimizer.clone(), &lora)?;
            (lora, opt, Rng::new(cfg.seed), DataCursor::default(), 0.0)
        };
        let metrics = MetricsLog::open(&cfg.out_dir, opt.step)?;
        let order = DataOrder::new(data.len(), cfg.seed, cursor)?;
        let grads = lora.zeros_like();
        let compute = Compute::open(cfg.device, tf.model_arc(), &lora, &opt, init_lora.as_ref())?;
        Ok(Trainer {
            cfg,
            stage,
            engine_model,
            tf,
            compute,
            lora,
            init_lora,
            grads,
            opt,
            rng,
            data,
            validation,
            order,
            metrics,
            generator: None,
            live_adapter: None,
            adapter_stale: true,
            custom_reward: None,
            custom_weight: None,
            elapsed_before,
            started: Instant::now(),
            planned_steps,
            #[cfg(test)]
            fail_at: None,
        })
    }

    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Optimizer steps taken (resumed steps included).
    pub fn step_count(&self) -> u64 {
        self.opt.step
    }

    /// Steps the run plans (0 = unbounded).
    pub fn planned_steps(&self) -> u64 {
        self.planned_steps
    }

    /// The adapter being trained.
    pub fn lora(&self) -> &LoraWeights {
        &self.lora
    }

    /// The frozen adapter the run started from, if any (GRPO's reference model).
    pub fn init_lora(&self) -> Option<&LoraWeights> {
        self.init_lora.as_ref()
    }

    /// The trainer's forward/backward model.
    pub fn transformer(&self) -> &Transformer {
        &self.tf
    }

    /// The llama.cpp model (tokenizer, rollouts).
    pub fn engine_model(&self) -> &Arc<Model> {
        &self.engine_model
    }

    pub fn metrics(&self) -> &MetricsLog {
        &self.metrics
    }

    pub fn data(&self) -> &[Problem] {
        &self.data
    }

    /// Where the data walk is.
    pub fn data_cursor(&self) -> DataCursor {
        self.order.cursor()
    }

    /// Sets (or clears) the host-supplied reward; `weight` overrides
    /// `grpo.custom_reward_weight` when given.
    pub fn set_custom_reward(&mut self, reward: Option<CustomReward>, weight: Option<f64>) {
        self.custom_reward = reward;
        self.custom_weight = weight;
    }

    /// Weight of the host-supplied reward.
    pub fn custom_reward_weight(&self) -> f64 {
        self.custom_weight
            .unwrap_or(self.cfg.grpo.custom_reward_weight)
    }

    /// Seconds of training so far, earlier segments of a resumed run included.
    pub fn elapsed_s(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    /// Writes `out_dir/checkpoint.safetensors` atomically (adapter, optimizer, RNG, data cursor,
    /// elapsed time, configuration).
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        let path = self.cfg.out_dir.join(CHECKPOINT_FILE);
        self.save_checkpoint_to(&path)?;
        Ok(path)
    }

    /// Writes `out_dir/checkpoints/step-N.safetensors` (N = steps done) atomically, next to
    /// the latest checkpoint; a later run never reads these.
    pub fn save_step_checkpoint(&self) -> Result<PathBuf> {
        let dir = self.cfg.out_dir.join(STEP_CHECKPOINT_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let path = dir.join(format!("step-{}.safetensors", self.opt.step));
        self.save_checkpoint_to(&path)?;
        Ok(path)
    }

    /// Writes a checkpoint to `path` atomically.
    pub fn save_checkpoint_to(&self, path: &Path) -> Result<()> {
        let ck = Checkpoint {
            lora: self.lora.clone(),
            optimizer: self.opt.clone(),
            rng: self.rng.clone(),
            extra: json!({
                "stage": self.stage.as_str(),
                "cursor": self.order.cursor(),
                "elapsed_s": self.elapsed_s(),
                "config": resumable_view(&self.cfg),
            }),
        };
        save_checkpoint(path, &ck)?;
        Ok(())
    }

    /// Saves the adapter in PEFT's format (`dir/adapter_model.safetensors` +
    /// `adapter_config.json`).
    pub fn save_peft(&self, dir: &Path) -> Result<()> {
        let m = self.tf.model();
        let base = self.engine_model.meta("general.name").unwrap_or_default();
        save_peft(&self.lora, m.arch, &m.hp, dir, &base)?;
        Ok(())
    }

    /// Exports the adapter as a GGUF LoRA that llama.cpp loads.
    pub fn save_gguf(&self, path: &Path) -> Result<()> {
        export_gguf_lora(&self.lora, self.tf.model().arch, path)?;
        Ok(())
    }

    /// Replaces the trained adapter with one read from a PEFT folder or an fmr checkpoint
    /// (shapes must match the run's LoRA configuration). The optimizer state is kept.
    pub fn load_adapter(&mut self, path: &Path) -> Result<()> {
        let l = load_adapter_file(path, &self.tf)?;
        self.lora.check_same_shape(&l).map_err(|e| {
            Error::new(
                ErrorCode::AdapterLoad,
                format!("adapter '{}' does not fit this run: {e}", path.display()),
            )
        })?;
        self.lora = l;
        self.adapter_stale = true;
        self.device_state_stale();
        Ok(())
    }

    /// Runs one step so that it either completes or changes nothing: on an error (a failed
    /// rollout, reward, loss, update, or a metrics or rollouts write), the LoRA weights, the
    /// optimizer state, the RNG, the data order, `metrics.jsonl`/`.csv` and `rollouts.jsonl`
    /// are put back as they were before the step, and the error is returned.
    pub(super) fn atomic_step<T>(
        &mut self,
        step: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        let snapshot = StepSnapshot {
            lora: self.lora.clone(),
            opt: self.opt.clone(),
            rng: self.rng.clone(),
            order: self.order.clone(),
            metrics_rows: self.metrics.rows().len(),
        };
        let result = step(self);
        let Err(e) = result else {
            return result;
        };
        let steps_before = snapshot.opt.step;
        self.lora = snapshot.lora;
        self.opt = snapshot.opt;
        self.rng = snapshot.rng;
        self.order = snapshot.order;
        // The engine may hold the updated adapter: export the restored one before the next use.
        self.adapter_stale = true;
        // The device copies may hold the updated adapter and moments: upload before next use.
        self.device_state_stale();
        let restored = self
            .metrics
            .truncate(snapshot.metrics_rows)
            .and_then(|()| truncate_rollouts(&self.cfg.out_dir, steps_before));
        match restored {
            Ok(()) => Err(e),
            Err(r) => Err(Error::new(
                e.code(),
                format!("{e}; restoring the output files after the failed step also failed: {r}"),
            )),
        }
    }

    /// The failure-test hook: an error when the test asked this stage to fail; nothing in
    /// builds other than the crate's own tests.
    #[inline]
    pub(super) fn fault(&self, _stage: StepStage) -> Result<()> {
        #[cfg(test)]
        if self.fail_at == Some(_stage) {
            return Err(Error::new(
                ErrorCode::Io,
                format!("injected failure after stage {_stage:?}"),
            ));
        }
        Ok(())
    }

    /// The rollout engine, created on first use with a context sized for a whole step: one
    /// KV sequence per completion (prompts × G, at most 256), each with room for a prompt of
    /// up to 1,024 tokens and the completion (or `grpo.n_ctx` cells in all).
    pub(super) fn generator(&mut self) -> Result<&mut Generator> {
        if self.generator.is_none() {
            let g = &self.cfg.grpo;
            let n_seq = (g.prompts_per_step * g.generations).clamp(1, 256);
            let n_seq = n_seq - n_seq % g.generations.min(n_seq);
            let n_ctx = if g.n_ctx > 0 {
                g.n_ctx
            } else {
                let per_seq = 1024 + g.max_completion_tokens;
                u32::try_from(per_seq * n_seq).unwrap_or(u32::MAX)
            };
            let params = ContextParams {
                n_ctx,
                n_batch: 512,
                n_seq_max: n_seq as u32,
                n_threads: self.cfg.threads as i32,
                ..ContextParams::default()
            };
            self.generator = Some(Generator::new(self.engine_model.clone(), &params)?);
        }
        Ok(self.generator.as_mut().expect("generator created above"))
    }

    /// Makes the engine apply the current adapter: exports it to a temporary GGUF, loads it,
    /// switches the context to it and drops the previous one (freed once no context holds
    /// it). The base model is never reloaded.
    pub fn sync_engine_adapter(&mut self) -> Result<()> {
        if !self.adapter_stale && self.generator.is_some() {
            return Ok(());
        }
        let tmp = temp_path(&self.cfg.out_dir.join("live-adapter.gguf"));
        self.save_gguf(&tmp)?;
        let loaded = LoraAdapter::load(self.engine_model.clone(), &tmp);
        std::fs::remove_file(&tmp).ok();
        let adapter = loaded?;
        self.generator()?
            .context_mut()
            .set_adapters(&[(adapter.clone(), 1.0)])?;
        self.live_adapter = Some(adapter);
        self.adapter_stale = false;
        Ok(())
    }

    /// The rollout engine with the current adapter applied (for hosts that want to generate
    /// with the policy being trained, e.g. for evaluation between steps).
    pub fn engine(&mut self) -> Result<&mut Generator> {
        self.sync_engine_adapter()?;
        self.generator()
    }

    /// The adapter the engine applies now (for tests of the swap).
    pub fn live_adapter(&self) -> Option<&Arc<LoraAdapter>> {
        self.live_adapter.as_ref()
    }
}

/// Steps a run plans: `max_steps`, or for SFT the steps of all epochs when that is 0.
fn planned_steps(cfg: &RunConfig, stage: Stage, n_rows: usize) -> Result<u64> {
    if cfg.max_steps > 0 {
        return Ok(cfg.max_steps);
    }
    match stage {
        Stage::Sft => {
            let per_epoch = n_rows.div_ceil(cfg.sft.batch_size) as u64;
            Ok(per_epoch * cfg.sft.epochs as u64)
        }
        Stage::Grpo => Ok(0),
    }
}

/// Reads an adapter from a PEFT folder or an fmr checkpoint file.
fn load_adapter_file(path: &Path, tf: &Transformer) -> Result<LoraWeights> {
    let m = tf.model();
    let lora = if path.is_dir() {
        load_peft(path, m.arch, &m.hp)?
    } else if path.is_file() {
        load_checkpoint(path, &m.hp)?.lora
    } else {
        return Err(Error::new(
            ErrorCode::AdapterLoad,
            format!("adapter '{}' does not exist", path.display()),
        ));
    };
    Ok(lora)
}

/// Loads an adapter for the engine from a GGUF LoRA file, a PEFT folder or an fmr checkpoint
/// (the last two are converted to GGUF through a temporary file next to the checkpoint, or in
/// the system temp folder for a PEFT folder). `model_path` is the base model's GGUF.
pub fn load_engine_adapter(
    engine_model: Arc<Model>,
    model_path: &Path,
    adapter: &Path,
) -> Result<Arc<LoraAdapter>> {
    let is_gguf = adapter.is_file()
        && std::fs::read(adapter)
            .map(|b| b.starts_with(b"GGUF"))
            .unwrap_or(false);
    if is_gguf {
        return LoraAdapter::load(engine_model, adapter);
    }
    let tf = Transformer::new(Arc::new(GgufModel::open(model_path)?), 1)?;
    let lora = load_adapter_file(adapter, &tf)?;
    let tmp = temp_path(&std::env::temp_dir().join("fmr-eval-adapter.gguf"));
    export_gguf_lora(&lora, tf.model().arch, &tmp)?;
    let r = LoraAdapter::load(engine_model, &tmp);
    std::fs::remove_file(&tmp).ok();
    r
}
