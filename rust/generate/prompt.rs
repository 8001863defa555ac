//! Turning a problem into prompt tokens: system prompt + chat template.

use crate::engine::{ChatMessage, Model, Token};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The system prompt of the paper's SFT stage.
pub const SFT_SYSTEM_PROMPT: &str =
    "Please reason step by step, and put your final answer within \\boxed{}.";

/// How the problem text becomes a prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PromptFormat {
    /// The chat template stored in the model file.
    Model,
    /// One of llama.cpp's built-in templates by name (`chatml`, `llama3`, `gemma`, `deepseek3`…).
    Builtin {
        /// Template name.
        name: String,
    },
    /// A pattern where `{system}` and `{problem}` are replaced; special tokens in it are parsed.
    Pattern {
        /// e.g. `"<|begin▁of▁sentence|>{system}<|User|>{problem}<|Assistant|><think>\n"`.
        pattern: String,
    },
    /// No template: the problem text as is (the system prompt, if any, is ignored).
    Raw,
}

/// Prompt construction settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptParams {
    /// System message; `None` sends none.
    pub system: Option<String>,
    /// Template choice.
    pub format: PromptFormat,
}

impl Default for PromptParams {
    fn default() -> Self {
        Self {
            system: Some(SFT_SYSTEM_PROMPT.into()),
            format: PromptFormat::Model,
        }
    }
}

impl PromptParams {
    /// The prompt text for `problem`.
    pub fn render(&self, model: &Model, problem: &str) -> Result<String> {
        let mut messages = Vec::new();
        if let Some(s) = &self.system {
            messages.push(ChatMessage::new("system", s));
        }
        messages.push(ChatMessage::new("user", problem));
        match &self.format {
            PromptFormat::Model => model.apply_chat_template(None, &messages, true),
            PromptFormat::Builtin { name } => {
                model.apply_chat_template(Some(name), &messages, true)
            }
            PromptFormat::Pattern { pattern } => {
                if !pattern.contains("{problem}") {
                    return Err(Error::invalid("prompt pattern must contain {problem}"));
                }
                Ok(pattern
                    .replace("{system}", self.system.as_deref().unwrap_or(""))
                    .replace("{problem}", problem))
            }
            PromptFormat::Raw => Ok(problem.to_string()),
        }
    }

    /// The prompt tokens for `problem` (BOS added when the model asks for it).
    pub fn tokenize(&self, model: &Model, problem: &str) -> Result<Vec<Token>> {
        let text = self.render(model, problem)?;
        model.tokenize(&text, true, true)
    }
}
