//! Majority voting over answer keys and the consensus rules that stop a group.

use super::params::ConsensusRule;
use super::result::VoteEntry;

/// Votes per answer, remembering the order in which answers first appeared (the tie-breaker).
#[derive(Clone, Debug, Default)]
pub struct VoteTally {
    entries: Vec<VoteEntry>,
}

impl VoteTally {
    /// An empty tally.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one vote for `answer`.
    pub fn add(&mut self, answer: &str) {
        match self.entries.iter_mut().find(|e| e.answer == answer) {
            Some(e) => e.count += 1,
            None => self.entries.push(VoteEntry {
                answer: answer.to_string(),
                count: 1,
            }),
        }
    }

    /// Entries by descending count; equal counts keep first-appearance order.
    pub fn ranked(&self) -> Vec<VoteEntry> {
        let mut v = self.entries.clone();
        v.sort_by_key(|e| std::cmp::Reverse(e.count)); // stable: ties keep insertion order
        v
    }

    /// The leading answer and its count, then the runner-up's count (0 if none).
    pub fn leader(&self) -> Option<(&str, usize, usize)> {
        let mut best: Option<&VoteEntry> = None;
        let mut second = 0usize;
        for e in &self.entries {
            match best {
                None => best = Some(e),
                Some(b) if e.count > b.count => {
                    second = b.count;
                    best = Some(e);
                }
                Some(_) => second = second.max(e.count),
            }
        }
        best.map(|b| (b.answer.as_str(), b.count, second))
    }
}

/// True when `rule` says the group may stop, given the votes of finished samples and the
/// number of samples still running.
///
/// `Lossless` stops only when the leader's count exceeds the runner-up's count plus every
/// running sample: no continuation of the running samples can change or tie the winner.
pub fn consensus_reached(rule: &ConsensusRule, tally: &VoteTally, running: usize) -> bool {
    let Some((_, lead, second)) = tally.leader() else {
        return false;
    };
    match rule {
        ConsensusRule::Off => false,
        ConsensusRule::KOfN { k } => lead >= *k,
        ConsensusRule::Lossless => lead > second + running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(answers: &[&str]) -> VoteTally {
        let mut t = VoteTally::new();
        for a in answers {
            t.add(a);
        }
        t
    }

    #[test]
    fn ranking_breaks_ties_by_first_appearance() {
        let t = tally(&["7", "5", "5", "7", "9"]);
        let r = t.ranked();
        assert_eq!(r[0].answer, "7");
        assert_eq!(r[1].answer, "5");
        assert_eq!(r[2].count, 1);
    }

    #[test]
    fn k_of_n_rule() {
        let t = tally(&["3", "3", "4"]);
        assert!(!consensus_reached(&ConsensusRule::KOfN { k: 3 }, &t, 5));
        assert!(consensus_reached(&ConsensusRule::KOfN { k: 2 }, &t, 5));
        assert!(!consensus_reached(&ConsensusRule::Off, &t, 0));
    }

    #[test]
    fn lossless_rule_needs_an_unbeatable_lead() {
        // 4 votes vs 1 with 2 running: the runner-up can reach at most 3 < 4.
        let t = tally(&["a", "a", "a", "a", "b"]);
        assert!(consensus_reached(&ConsensusRule::Lossless, &t, 2));
        // with 3 running it could tie at 4: keep going.
        assert!(!consensus_reached(&ConsensusRule::Lossless, &t, 3));
        // a brand-new answer is covered too: 2 votes, 2 running could tie.
        let t = tally(&["a", "a"]);
        assert!(!consensus_reached(&ConsensusRule::Lossless, &t, 2));
        assert!(consensus_reached(&ConsensusRule::Lossless, &t, 1));
    }

    #[test]
    fn lossless_never_contradicts_the_full_vote() {
        // Exhaustive over small groups: whenever the rule fires on a prefix, the final majority
        // of every possible continuation equals the leader at that point.
        let answers = ["x", "y", "z"];
        for n in 1..=6usize {
            let total = 4usize.pow(n as u32); // each sample: x, y, z or no answer
            for code in 0..total {
                let seq: Vec<Option<&str>> = (0..n)
                    .map(|i| {
                        let d = (code / 4usize.pow(i as u32)) % 4;
                        answers.get(d).copied()
                    })
                    .collect();
                let mut full = VoteTally::new();
                seq.iter().flatten().for_each(|a| full.add(a));
                let final_winner = full.ranked().first().map(|e| e.answer.clone());
                let mut t = VoteTally::new();
                for (done, a) in seq.iter().enumerate() {
                    if let Some(a) = a {
                        t.add(a);
                    }
                    let running = n - done - 1;
                    if consensus_reached(&ConsensusRule::Lossless, &t, running) {
                        let leader = t.leader().map(|(a, _, _)| a.to_string());
                        assert_eq!(leader, final_winner, "seq {seq:?}");
                        break;
                    }
                }
            }
        }
    }
}
