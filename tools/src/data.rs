//! Math data sets as the programs read them (JSONL with problem/question and answer fields).

use std::path::Path;

/// One problem with its gold answer.
#[derive(Clone, Debug)]
pub struct Problem {
    pub question: String,
    pub gold: String,
}

/// Reads a JSONL data set: `problem`/`answer` (MATH, AIME, AMC) or `question`/`answer` with a
/// GSM8K-style `#### N` final line.
pub fn load_jsonl(path: &Path, limit: Option<usize>) -> Result<Vec<Problem>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        let question = v
            .get("problem")
            .or_else(|| v.get("question"))
            .and_then(|q| q.as_str())
            .ok_or_else(|| format!("{}:{}: no problem/question field", path.display(), i + 1))?;
        let answer = match v.get("answer") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => return Err(format!("{}:{}: no answer field", path.display(), i + 1)),
        };
        let gold = match answer.rsplit_once("####") {
            Some((_, tail)) => tail.trim().replace(',', ""),
            None => answer.trim().to_string(),
        };
        out.push(Problem {
            question: question.to_string(),
            gold,
        });
    }
    Ok(out)
}

/// Finds `../shared/data/<name>` from the repository root or its parents.
pub fn shared_data(name: &str) -> Option<std::path::PathBuf> {
    let mut dir = std::env::current_dir().ok()?;
    loop {
        for cand in [
            dir.join("shared/data").join(name),
            dir.join("../shared/data").join(name),
        ] {
            if cand.is_file() {
                return Some(cand);
            }
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// One rollout request per problem (its question rendered with `params.prompt`), for
/// `Generator::rollout_many`.
pub fn group_requests(
    model: &fmr::engine::Model,
    problems: &[Problem],
    params: &fmr::generate::RolloutParams,
) -> Result<Vec<fmr::generate::GroupRequest<'static>>, String> {
    problems
        .iter()
        .map(|p| {
            Ok(fmr::generate::GroupRequest {
                prompt: params
                    .prompt
                    .tokenize(model, &p.question)
                    .map_err(|e| e.to_string())?,
                params: params.clone(),
                hooks: fmr::generate::RolloutHooks::default(),
            })
        })
        .collect()
}
