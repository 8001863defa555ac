//! Run configuration of the SFT and GRPO loops: one JSON document, unknown keys rejected.
//!
//! Defaults are the paper's values (DESIGN.md, "The recipe"); `"preset": "small"` starts from
//! values scaled for a ~100M-parameter model on a 2-core CPU instead, and every key given in the
//! file overrides the preset.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};
use crate::generate::{PromptParams, SamplingParams};
use crate::reward::RewardConfig;
use crate::train::lora::{LoraConfig, LoraTarget};
use crate::train::loss::GrpoConfig;
use crate::train::optim::{AdamWConfig, Schedule};
use crate::train::Device;

/// Data set fields: which JSONL keys hold the problem, the gold answer and the worked solution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Training rows (JSONL).
    pub train: PathBuf,
    /// Held-out rows for the SFT validation loss (JSONL); optional.
    pub validation: Option<PathBuf>,
    /// Keys tried in order for the problem text.
    pub problem_keys: Vec<String>,
    /// Keys tried in order for the gold answer (a GSM8K worked solution's `#### N` is taken).
    pub answer_keys: Vec<String>,
    /// Keys tried in order for the SFT target solution.
    pub solution_keys: Vec<String>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            train: PathBuf::new(),
            validation: None,
            problem_keys: vec!["problem".into(), "question".into()],
            answer_keys: vec!["answer".into()],
            solution_keys: vec!["solution".into(), "answer".into()],
        }
    }
}

/// SFT options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftOptions {
    /// Passes over the training rows.
    pub epochs: usize,
    /// Examples per optimizer step.
    pub batch_size: usize,
    /// Examples per forward/backward call (gradients accumulate over `batch_size / micro_batch`).
    pub micro_batch: usize,
    /// Loss on completion tokens only (else on every token after the first).
    pub completion_only: bool,
    /// Concatenate examples into sequences of up to `max_seq_len` tokens.
    pub packing: bool,
    /// Longest training sequence in tokens; longer examples are truncated.
    pub max_seq_len: usize,
    /// Validation loss every this many steps (0 = only at the end).
    pub eval_every: u64,
    /// At most this many validation rows.
    pub max_validation_rows: usize,
}

impl Default for SftOptions {
    fn default() -> Self {
        SftOptions {
            epochs: 10,
            batch_size: 16,
            micro_batch: 8,
            completion_only: false,
            packing: true,
            max_seq_len: 2048,
            eval_every: 50,
            max_validation_rows: 256,
        }
    }
}

/// GRPO options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoOptions {
    /// Prompts per optimizer step.
    pub prompts_per_step: usize,
    /// Completions per prompt (G).
    pub generations: usize,
    /// Longest completion in tokens.
    pub max_completion_tokens: usize,
    /// Sampling of the rollouts (the seed is replaced per step from the run's RNG).
    pub sampling: SamplingParams,
    /// Stop strings of the rollouts.
    pub stop_strings: Vec<String>,
    /// Loss options (clip, β, loss normalisation, advantage scaling).
    pub loss: GrpoConfig,
    /// Built-in rewards and their weights.
    pub rewards: RewardConfig,
    /// Weight of a host-supplied reward (C callback or Rust closure), when one is set.
    pub custom_reward_weight: f64,
    /// Sequences per forward/backward call (0 = the whole step at once, exact for every loss
    /// normalisation).
    pub micro_batch: usize,
    /// μ: optimizer updates per batch of rollouts (TRL's `num_iterations`; the paper: 1).
    /// With μ > 1 one GRPO step makes μ optimizer steps: `max_steps` and `checkpoint_every`
    /// count optimizer steps and must be multiples of μ.
    pub num_iterations: usize,
    /// KV-cache context of the rollout engine in tokens (0 = prompt + G × max completion).
    pub n_ctx: u32,
    /// Give every completion of a group with no correct answer advantage 0 (default false =
    /// the paper). Such groups then train only through the KL term: their rewards differ only
    /// by length and format, and with `scale_rewards: group` those small differences become
    /// full-size advantages that teach short wrong answers.
    pub skip_unsolved_groups: bool,
}

impl Default for GrpoOptions {
    fn default() -> Self {
        GrpoOptions {
            prompts_per_step: 16,
            generations: 8,
            max_completion_tokens: 16_384,
            sampling: SamplingParams::default(),
            stop_strings: vec![],
            loss: GrpoConfig::default(),
            rewards: RewardConfig::default(),
            custom_reward_weight: 1.0,
            micro_batch: 0,
            num_iterations: 1,
            n_ctx: 0,
            skip_unsolved_groups: false,
        }
    }
}

/// The training chart drawn with a run's outputs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChartOptions {
    /// TrueType font for the chart's text; without one the chart has no text. The library
    /// never searches the system for a font. The first font a process registers is kept.
    pub font: Option<PathBuf>,
}

/// One run of the SFT or GRPO loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Informational: the preset this configuration started from.
    pub preset: Option<String>,
    /// Path of the GGUF model (required).
    pub model: PathBuf,
    /// Output folder: checkpoints, metrics, adapters, chart.
    pub out_dir: PathBuf,
    /// Adapter to start from (a PEFT folder, or a checkpoint `.safetensors` written by fmr).
    pub init_adapter: Option<PathBuf>,
    /// Worker threads for training and generation.
    pub threads: usize,
    /// Where the forward/backward and the optimizer run: `"cpu"` (default) or `"cuda"` (the
    /// first GPU; needs the `cuda-train` build feature and the CUDA 13 libraries at run time).
    /// Rollouts are generated by llama.cpp on its own backends either way.
    pub device: Device,
    /// Seed of the run's RNG (data order, rollout seeds, LoRA init unless `lora.seed` is set).
    pub seed: u64,
    /// Optimizer steps to run (0 = as many as the data gives, SFT only).
    pub max_steps: u64,
    /// Stop after this many minutes of wall time (checked between steps).
    pub max_minutes: Option<f64>,
    /// Write a checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: u64,
    /// Also keep each periodic checkpoint as `out_dir/checkpoints/step-N.safetensors`, to choose
    /// a step afterwards on validation data (default false: only the latest is kept).
    pub keep_checkpoints: bool,
    /// Continue from `out_dir/checkpoint.safetensors` when it exists.
    pub resume: bool,
    /// Draw `out_dir/chart.png` with the final outputs (default: no chart).
    pub chart: Option<ChartOptions>,
    pub lora: LoraConfig,
    pub optimizer: AdamWConfig,
    pub prompt: PromptParams,
    pub data: DataConfig,
    pub sft: SftOptions,
    pub grpo: GrpoOptions,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            preset: None,
            model: PathBuf::new(),
            out_dir: PathBuf::from("runs/default"),
            init_adapter: None,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            device: Device::Cpu,
            seed: 1234,
            max_steps: 0,
            max_minutes: None,
            checkpoint_every: 10,
            keep_checkpoints: false,
            resume: true,
            chart: None,
            lora: LoraConfig {
                rank: 16,
                alpha: 32.0,
                targets: LoraTarget::ALL.to_vec(),
                seed: 0,
            },
            optimizer: AdamWConfig {
                lr: 4e-6,
                schedule: Schedule::Cosine {
                    warmup: 0,
                    total: 0,
                    min_ratio: 0.0,
                },
                ..AdamWConfig::default()
            },
            prompt: PromptParams::default(),
            data: DataConfig::default(),
            sft: SftOptions::default(),
            grpo: GrpoOptions::default(),
        }
    }
}

/// The named starting points of a configuration file.
pub const PRESETS: [&str; 2] = ["paper", "small"];

impl RunConfig {
    /// The configuration a preset starts from. `paper` = [`RunConfig::default`]; `small` scales
    /// the recipe down for SmolLM2-135M on a 2-core CPU: 4 prompts × 8 completions of at most 256
    /// tokens per step, cosine reward length in tokens (L_max 256), format reward without
    /// `</think>` (SmolLM2 does not think in tags), LoRA lr 2e-4.
    pub fn preset(name: &str) -> Result<RunConfig> {
        let mut c = RunConfig::default();
        match name {
            "paper" => {}
            "small" => {
                c.threads = 2;
                c.optimizer.lr = 2e-4;
                c.optimizer.schedule = Schedule::Constant { warmup: 2 };
                c.sft.epochs = 1;
                c.sft.batch_size = 8;
                c.sft.micro_batch = 8;
                c.sft.max_seq_len = 512;
                c.sft.packing = false;
                c.sft.completion_only = true;
                c.sft.eval_every = 20;
                c.sft.max_validation_rows = 64;
                c.grpo.prompts_per_step = 4;
                c.grpo.generations = 8;
                c.grpo.max_completion_tokens = 256;
                c.grpo.rewards.length_unit = crate::reward::LengthUnit::Tokens;
                c.grpo.rewards.cosine.max_len = 256;
                c.grpo.rewards.format_requires_think = false;
            }
            other => {
                return Err(Error::new(
                    ErrorCode::InvalidConfig,
                    format!("unknown preset '{other}' (known: {})", PRESETS.join(", ")),
                ))
            }
        }
        c.preset = Some(name.to_string());
        Ok(c)
    }

    /// Parses a configuration: the preset named by `"preset"` (default `paper`), then every key
    /// of `json` merged over it (objects merge key by key), then validation.
    pub fn from_json(json: &str) -> Result<RunConfig> {
        let user: Value = serde_json::from_str(json)?;
        let Value::Object(map) = &user else {
            return Err(Error::new(
                ErrorCode::InvalidConfig,
                "a run configuration must be a JSON object",
            ));
        };
        let preset = match map.get("preset") {
            None | Some(Value::Null) => "paper",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(Error::new(
                    ErrorCode::InvalidConfig,
                    "\"preset\" must be a string",
                ))
            }
        };
        let mut base = serde_json::to_value(RunConfig::preset(preset)?)?;
        merge(&mut base, user);
        let cfg: RunConfig = serde_json::from_value(base)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a configuration file.
    pub fn from_file(path: &std::path::Path) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorCode::Io,
                format!("cannot read config '{}': {e}", path.display()),
            )
        })?;
        Self::from_json(&text).map_err(|e| {
            Error::new(
                e.code(),
                format!("config '{}': {}", path.display(), e.message()),
            )
        })
    }

    /// Checks ranges that serde cannot.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::new(ErrorCode::InvalidConfig, m.to_string()));
        if self.threads == 0 || self.threads > 1024 {
            return bad("threads must be in 1..=1024");
        }
        if self.sft.batch_size == 0 || self.sft.micro_batch == 0 {
            return bad("sft.batch_size and sft.micro_batch must be >= 1");
        }
        if self.sft.max_seq_len < 2 {
            return bad("sft.max_seq_len must be >= 2");
        }
        if self.grpo.prompts_per_step == 0 || self.grpo.generations == 0 {
            return bad("grpo.prompts_per_step and grpo.generations must be >= 1");
        }
        if self.grpo.generations > 256 {
            return bad("grpo.generations must be <= 256");
        }
        if self.grpo.max_completion_tokens == 0 {
            return bad("grpo.max_completion_tokens must be >= 1");
        }
        let mu = self.grpo.num_iterations as u64;
        if mu == 0 || mu > 64 {
            return bad("grpo.num_iterations must be in 1..=64");
        }
        if mu > 1 && (self.max_steps % mu != 0 || self.checkpoint_every % mu != 0) {
            return bad(
                "with grpo.num_iterations > 1, max_steps and checkpoint_every count optimizer \
                 steps and must be multiples of it",
            );
        }
        if !self.grpo.custom_reward_weight.is_finite() {
            return bad("grpo.custom_reward_weight must be finite");
        }
        if let Err(e) = self.grpo.loss.validate() {
            return bad(&format!("grpo.loss: {e}"));
        }
        if let Some(m) = self.max_minutes {
            if !(m.is_finite() && m > 0.0) {
                return bad("max_minutes must be > 0");
            }
        }
        self.lora
            .validate()
            .and_then(|_| self.optimizer.validate())
            .map_err(|e| Error::new(ErrorCode::InvalidConfig, e.to_string()))?;
        self.grpo
            .rewards
            .validate()
            .map_err(|e| Error::new(ErrorCode::InvalidConfig, format!("grpo.rewards: {e}")))
    }
}

/// Merges `over` into `base`: objects key by key (recursively), anything else replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_defaults_are_the_papers_values() {
        let c = RunConfig::from_json("{}").unwrap();
        assert_eq!(c.grpo.generations, 8);
        assert_eq!(c.grpo.prompts_per_step, 16);
        assert_eq!(c.grpo.max_completion_tokens, 16_384);
        assert_eq!(c.grpo.sampling.temperature, 1.0);
        assert_eq!(c.grpo.sampling.top_p, 0.9);
        assert_eq!(c.grpo.sampling.min_p, 0.05);
        assert_eq!(c.grpo.loss.beta, 0.04);
        assert_eq!(c.grpo.loss.epsilon, 0.2);
        assert_eq!(c.optimizer.lr, 4e-6);
        assert!(matches!(c.optimizer.schedule, Schedule::Cosine { .. }));
    }

    #[test]
    fn preset_then_overrides_merge_key_by_key() {
        let c = RunConfig::from_json(
            r#"{"preset":"small","grpo":{"generations":4,"sampling":{"top_p":0.95}}}"#,
        )
        .unwrap();
        assert_eq!(c.grpo.generations, 4);
        assert_eq!(c.grpo.prompts_per_step, 4);
        assert_eq!(c.grpo.sampling.top_p, 0.95);
        assert_eq!(c.grpo.sampling.min_p, 0.05);
        assert_eq!(c.optimizer.lr, 2e-4);
    }

    #[test]
    fn grpo_options_and_length_rewards_parse() {
        let c = RunConfig::from_json(
            r#"{"max_steps": 8, "checkpoint_every": 4, "grpo": {"num_iterations": 2,
                "loss": {"importance_sampling_level": "sequence",
                         "mask_truncated_completions": true, "top_entropy_quantile": 0.2},
                "rewards": {"weights": {"shorter_better": 1, "laser": 0.5, "overlong": 1},
                            "shorter_better": {"beta": 0.002},
                            "laser": {"hard_max": 0.25, "easy_min": 0.75,
                                      "expected_correct": 2},
                            "overlong": {"max_len": 1024, "cache": 256}}}}"#,
        )
        .unwrap();
        let g = &c.grpo;
        assert_eq!(g.num_iterations, 2);
        assert_eq!(
            g.loss.importance_sampling_level,
            crate::train::loss::IsLevel::Sequence
        );
        assert!(g.loss.mask_truncated_completions);
        assert_eq!(g.loss.top_entropy_quantile, 0.2);
        let r = &g.rewards;
        assert_eq!(
            (
                r.weights.shorter_better,
                r.weights.laser,
                r.weights.overlong
            ),
            (1.0, 0.5, 1.0)
        );
        assert_eq!(r.shorter_better.beta, 0.002);
        assert_eq!(
            (r.laser.hard_max, r.laser.easy_min, r.laser.expected_correct),
            (0.25, 0.75, 2.0)
        );
        assert_eq!((r.overlong.max_len, r.overlong.cache), (1024, 256));
        // Defaults: the paper's GRPO (token level, nothing masked, every token, μ = 1) and
        // no new length term.
        let d = RunConfig::from_json("{}").unwrap().grpo;
        assert_eq!(d.num_iterations, 1);
        assert_eq!(
            d.loss.importance_sampling_level,
            crate::train::loss::IsLevel::Token
        );
        assert!(!d.loss.mask_truncated_completions);
        assert_eq!(d.loss.top_entropy_quantile, 1.0);
        let w = &d.rewards.weights;
        assert_eq!((w.shorter_better, w.laser, w.overlong), (0.0, 0.0, 0.0));
        for bad in [
            r#"{"grpo":{"loss":{"importance_sampling_level":"group"}}}"#,
            r#"{"grpo":{"loss":{"top_entropy_quantile":0}}}"#,
            r#"{"grpo":{"loss":{"top_entropy_quantil":0.5}}}"#,
            r#"{"grpo":{"num_iterations":0}}"#,
            r#"{"max_steps":3,"grpo":{"num_iterations":2}}"#,
            r#"{"grpo":{"rewards":{"laser":{"hard_max":0.9,"easy_min":0.5}}}}"#,
            r#"{"grpo":{"rewards":{"overlong":{"max_len":10,"cache":20}}}}"#,
            r#"{"grpo":{"rewards":{"shorter_better":{"beta":-1}}}}"#,
            r#"{"grpo":{"rewards":{"shorter_better":{"alpha":1}}}}"#,
        ] {
            let e = RunConfig::from_json(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfig, "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_keys_bad_presets_and_ranges_are_errors() {
        for bad in [
            r#"{"grpo":{"generatons":4}}"#,
            r#"{"preset":"huge"}"#,
            r#"{"preset":3}"#,
            r#"{"threads":0}"#,
            r#"{"grpo":{"generations":0}}"#,
            r#"{"max_minutes":-1}"#,
            r#"[1,2]"#,
            r#"{"lora":{"rank":0}}"#,
        ] {
            let e = RunConfig::from_json(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfig, "{bad}: {e}");
        }
    }
}
