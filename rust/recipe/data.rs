//! Training rows from JSONL files and the seeded order in which a run visits them.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::DataConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::train::rng::Rng;

/// One row: a problem, its gold answer and (for SFT) a target solution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub problem: String,
    /// Gold answer (empty when the row has none).
    #[serde(default)]
    pub answer: String,
    /// Worked solution for SFT (empty when the row has none).
    #[serde(default)]
    pub solution: String,
}

/// The gold answer inside a GSM8K-style worked solution (`… #### 72`), or the text itself.
pub fn gold_answer(text: &str) -> String {
    match text.rfind("####") {
        Some(i) => text[i + 4..].trim().replace(',', ""),
        None => text.trim().to_string(),
    }
}

fn first_string(row: &serde_json::Map<String, Value>, keys: &[String]) -> Option<String> {
    keys.iter()
        .find_map(|k| row.get(k).and_then(Value::as_str).map(str::to_string))
}

/// Reads every row of a JSONL file. Blank lines are skipped; a line that is not a JSON object,
/// or lacks a problem, is an error naming the file and line.
pub fn load_problems(path: &Path, cfg: &DataConfig) -> Result<Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ErrorCode::Io,
            format!("cannot read data '{}': {e}", path.display()),
        )
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: Value = serde_json::from_str(line)
            .map_err(|e| Error::new(ErrorCode::InvalidConfig, format!("{}: {e}", at())))?;
        let Value::Object(row) = v else {
            return Err(Error::new(
                ErrorCode::InvalidConfig,
                format!("{}: not a JSON object", at()),
            ));
        };
        let problem = first_string(&row, &cfg.problem_keys).ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidConfig,
                format!("{}: no problem field (tried {:?})", at(), cfg.problem_keys),
            )
        })?;
        let answer = first_string(&row, &cfg.answer_keys)
            .map(|a| gold_answer(&a))
            .unwrap_or_default();
        let solution = first_string(&row, &cfg.solution_keys).unwrap_or_default();
        out.push(Problem {
            problem,
            answer,
            solution,
        });
    }
    if out.is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidConfig,
            format!("data '{}' has no rows", path.display()),
        ));
    }
    Ok(out)
}

/// Where a run is in its data: epoch and position within that epoch's permutation. Saved in
/// checkpoints so a resumed run visits the same rows in the same order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCursor {
    pub epoch: u64,
    pub index: usize,
}

/// A seeded, epoch-wise shuffled walk over `n` rows. The permutation of epoch `e` depends only
/// on `(seed, e)`, so the order is reproducible from a cursor alone.
#[derive(Clone, Debug)]
pub struct DataOrder {
    n: usize,
    seed: u64,
    cursor: DataCursor,
    perm: Vec<usize>,
}

impl DataOrder {
    pub fn new(n: usize, seed: u64, cursor: DataCursor) -> Result<DataOrder> {
        if n == 0 {
            return Err(Error::invalid("no data rows to iterate"));
        }
        let mut d = DataOrder {
            n,
            seed,
            cursor,
            perm: Vec::new(),
        };
        d.perm = d.permutation(cursor.epoch);
        Ok(d)
    }

    fn permutation(&self, epoch: u64) -> Vec<usize> {
        let mut rng = Rng::new(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut p: Vec<usize> = (0..self.n).collect();
        for i in (1..p.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            p.swap(i, j);
        }
        p
    }

    pub fn cursor(&self) -> DataCursor {
        self.cursor
    }

    /// The next `k` row indices, moving into new epochs as needed.
    pub fn take(&mut self, k: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(k);
        while out.len() < k {
            if self.cursor.index >= self.n {
                self.cursor = DataCursor {
                    epoch: self.cursor.epoch + 1,
                    index: 0,
                };
                self.perm = self.permutation(self.cursor.epoch);
            }
            out.push(self.perm[self.cursor.index]);
            self.cursor.index += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_a_permutation_per_epoch_and_resumes_from_a_cursor() {
        let mut a = DataOrder::new(10, 7, DataCursor::default()).unwrap();
        let first: Vec<usize> = a.take(10);
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        let mid = a.take(3);
        let cur = a.cursor();
        let rest = a.take(12);
        let mut b = DataOrder::new(10, 7, cur).unwrap();
        assert_eq!(b.take(12), rest);
        assert_ne!(first[..3], mid[..]);
    }

    #[test]
    fn gsm8k_gold_is_the_number_after_hashes() {
        assert_eq!(gold_answer("48/2 = 24\n#### 1,072"), "1072");
        assert_eq!(gold_answer("\\frac{1}{2}"), "\\frac{1}{2}");
    }

    #[test]
    fn bad_rows_name_the_line() {
        let dir = std::env::temp_dir().join(format!("fmr-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("d.jsonl");
        std::fs::write(&p, "{\"question\":\"q\",\"answer\":\"#### 3\"}\n\n[1]\n").unwrap();
        let e = load_problems(&p, &DataConfig::default()).unwrap_err();
        assert!(e.message().contains("d.jsonl:3"), "{e}");
        std::fs::write(&p, "{\"question\":\"q\",\"answer\":\"x\\n#### 3\"}\n").unwrap();
        let rows = load_problems(&p, &DataConfig::default()).unwrap();
        assert_eq!(rows[0].answer, "3");
        assert!(load_problems(&dir.join("missing.jsonl"), &DataConfig::default()).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
