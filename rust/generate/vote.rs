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

    /// Adds one vote of weight 1 for `answer`.
    pub fn add(&mut self, answer: &str) {
        self.add_weighted(answer, 1.0);
    }

    /// Adds one vote of weight `weight` (>= 0) for `answer`.
    pub fn add_weighted(&mut self, answer: &str, weight: f64) {
        match self.entries.iter_mut().find(|e| e.answer == answer) {
            Some(e) => {
                e.count += 1;
                e.weight += weight;
            }
            None => self.entries.push(VoteEntry {
                answer: answer.to_string(),
                count: 1,
                weight,
            }),
        }
    }

    /// Entries by descending weight (the count when every vote weighs 1); equal weights keep
    /// first-appearance order.
    pub fn ranked(&self) -> Vec<VoteEntry> {
        let mut v = self.entries.clone();
        v.sort_by(|a, b| b.weight.total_cmp(&a.weight)); // stable: ties keep insertion order
        v
    }

    /// Votes cast.
    pub fn votes(&self) -> usize {
        self.entries.iter().map(|e| e.count).sum()
    }

    /// The answer with the most weight and its share of the total weight (`None` when no vote
    /// or no weight was cast).
    pub fn weighted_leader(&self) -> Option<(&str, f64)> {
        let total: f64 = self.entries.iter().map(|e| e.weight).sum();
        let mut best: Option<&VoteEntry> = None;
        for e in &self.entries {
            if best.is_none_or(|b| e.weight > b.weight) {
                best = Some(e);
            }
        }
        let b = best?;
        (total > 0.0).then(|| (b.answer.as_str(), b.weight / total))
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
        ConsensusRule::Weighted { tau, min_votes } => {
            tally.votes() >= *min_votes
                && tally
                    .weighted_leader()
                    .is_some_and(|(_, share)| share >= *tau)
        }
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
    fn weighted_rule_uses_the_share_of_the_weight() {
        let mut t = VoteTally::new();
        t.add_weighted("a", 9.0);
        t.add_weighted("b", 1.0);
        let rule = ConsensusRule::Weighted {
            tau: 0.9,
            min_votes: 2,
        };
        assert!(consensus_reached(&rule, &t, 5));
        let strict = ConsensusRule::Weighted {
            tau: 0.95,
            min_votes: 2,
        };
        assert!(!consensus_reached(&strict, &t, 5));
        let more = ConsensusRule::Weighted {
            tau: 0.5,
            min_votes: 3,
        };
        assert!(!consensus_reached(&more, &t, 5));
        // weights rank the answers: one heavy vote beats two light ones
        t.add_weighted("b", 1.0);
        assert_eq!(t.ranked()[0].answer, "a");
        assert_eq!(t.ranked()[1].count, 2);
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
