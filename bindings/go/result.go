package fmr

/*
#include "fmr.h"
*/
import "C"

import (
	"time"
	"unsafe"
)

// FinishReason says why a sample stopped (FMR_FINISH_* in fmr.h).
type FinishReason uint32

// Finish reasons.
const (
	FinishEOS       FinishReason = 1 // end-of-generation token
	FinishStop      FinishReason = 2 // a stop string, or a closed \boxed{} with stop_at_boxed
	FinishLength    FinishReason = 3 // the per-sample max_tokens
	FinishBudget    FinishReason = 4 // the thinking budget or the group token budget
	FinishForced    FinishReason = 5 // budget forcing appended the closing text
	FinishConsensus FinishReason = 6 // the group's samples agreed
	FinishDeadline  FinishReason = 7 // the deadline passed
	FinishCancelled FinishReason = 8 // the caller cancelled
	// FinishLowConfidence: the sample's window confidence fell below the threshold.
	FinishLowConfidence FinishReason = 9
	// FinishProbe: answer probes agreed; the sample's answer is the probes' answer.
	FinishProbe FinishReason = 10
)

var finishNames = [...]string{"", "eos", "stop", "length", "budget", "forced", "consensus", "deadline", "cancelled", "low_confidence", "probe"}

func (r FinishReason) String() string {
	if int(r) < len(finishNames) && r > 0 {
		return finishNames[r]
	}
	return "unknown"
}

// Sample is one completion of a group.
type Sample struct {
	Text string
	// HasAnswer says whether the sample stated an answer.
	HasAnswer bool
	// Answer is the answer as a person should read it ("1/2", "\frac{1}{2}").
	Answer string
	// AnswerKey is the verifier's canonical form ("q:1/2"), equal for equivalent answers: for
	// comparing, not for showing.
	AnswerKey    string
	FinishReason FinishReason
	Tokens       []int32
	Logprobs     []float32 // log-probability of each token
	ForcedTokens int       // tokens appended by budget forcing
	// Confidence holds each token's confidence (−mean of the step's top-k log-probabilities);
	// empty with confidence off.
	Confidence []float32
	// HasConfidence says whether the three summaries below are set.
	HasConfidence          bool
	ConfidenceMean         float32
	ConfidenceLowestWindow float32 // lowest mean over confidence.window consecutive tokens
	ConfidenceTail         float32 // mean over the last confidence.tail tokens
	Probes                 int     // answer probes taken
	ProbeTokens            int     // tokens the probes decoded (not in Tokens)
}

// Vote is one answer of the vote.
type Vote struct {
	Answer string  // what a person should read
	Key    string  // canonical key
	Count  int     // samples that gave it
	Weight float64 // sum of their vote weights (Count when votes are not weighted)
}

// Stats summarise a group.
type Stats struct {
	PromptTokens       int
	TokensGenerated    int
	TokensFixedBudget  int // tokens a run without group-level stopping would have generated (upper bound)
	VotedCount         int
	StoppedByConsensus bool
	Cancelled          bool
	Wall               time.Duration
	Prompt             time.Duration
	ProbeTokens        int // tokens decoded by answer probes, apart from TokensGenerated
	// ConfidenceThreshold is the threshold samples were gated with (HasConfidenceThreshold).
	ConfidenceThreshold    float64
	HasConfidenceThreshold bool
}

// TokensSaved is the share of TokensFixedBudget that early stopping did not generate.
func (s Stats) TokensSaved() float64 {
	if s.TokensFixedBudget == 0 {
		return 0
	}
	return 1 - float64(s.TokensGenerated)/float64(s.TokensFixedBudget)
}

// Result is the outcome of one Solve, copied into Go values.
type Result struct {
	Samples []Sample
	Votes   []Vote // by descending count; the first is the voted answer
	Stats   Stats
}

// Voted returns the voted answer; false when no sample gave one.
func (r *Result) Voted() (Vote, bool) {
	if len(r.Votes) == 0 {
		return Vote{}, false
	}
	return r.Votes[0], true
}

func optString(p *C.char, n C.size_t) (string, bool) {
	if p == nil {
		return "", false
	}
	return C.GoStringN(p, C.int(n)), true
}

func readResult(r *C.fmr_result) (*Result, error) {
	res := &Result{}
	n := int(C.fmr_result_n_samples(r))
	res.Samples = make([]Sample, n)
	for i := 0; i < n; i++ {
		s := &res.Samples[i]
		ci := C.size_t(i)
		var text *C.char
		var length C.size_t
		if err := takeError(C.fmr_result_sample_text(r, ci, &text, &length)); err != nil {
			return nil, err
		}
		s.Text = C.GoStringN(text, C.int(length))
		if err := takeError(C.fmr_result_sample_answer_key(r, ci, &text, &length)); err != nil {
			return nil, err
		}
		s.AnswerKey, s.HasAnswer = optString(text, length)
		if err := takeError(C.fmr_result_sample_answer_display(r, ci, &text, &length)); err != nil {
			return nil, err
		}
		s.Answer, _ = optString(text, length)
		var info C.fmr_sample_info
		info.struct_size = C.uint32_t(unsafe.Sizeof(info))
		if err := takeError(C.fmr_result_sample_info(r, ci, &info)); err != nil {
			return nil, err
		}
		s.FinishReason = FinishReason(info.finish_reason)
		s.ForcedTokens = int(info.n_forced_tokens)
		s.HasConfidence = bool(info.has_confidence)
		s.ConfidenceMean = float32(info.confidence_mean)
		s.ConfidenceLowestWindow = float32(info.confidence_lowest_window)
		s.ConfidenceTail = float32(info.confidence_tail)
		s.Probes = int(info.n_probes)
		s.ProbeTokens = int(info.probe_tokens)
		var toks *C.int32_t
		var lps *C.float
		if err := takeError(C.fmr_result_sample_tokens(r, ci, &toks, &lps, &length)); err != nil {
			return nil, err
		}
		if length > 0 {
			s.Tokens = append([]int32(nil), unsafe.Slice((*int32)(unsafe.Pointer(toks)), int(length))...)
			s.Logprobs = append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(lps)), int(length))...)
		}
		var conf *C.float
		if err := takeError(C.fmr_result_sample_confidence(r, ci, &conf, &length)); err != nil {
			return nil, err
		}
		if length > 0 {
			s.Confidence = append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(conf)), int(length))...)
		}
	}
	nv := int(C.fmr_result_n_votes(r))
	res.Votes = make([]Vote, nv)
	for i := 0; i < nv; i++ {
		var v C.fmr_vote
		v.struct_size = C.uint32_t(unsafe.Sizeof(v))
		if err := takeError(C.fmr_result_vote(r, C.size_t(i), &v)); err != nil {
			return nil, err
		}
		res.Votes[i] = Vote{
			Answer: C.GoStringN(v.display, C.int(v.display_len)),
			Key:    C.GoStringN(v.key, C.int(v.key_len)),
			Count:  int(v.count),
			Weight: float64(v.weight),
		}
	}
	var st C.fmr_group_stats
	st.struct_size = C.uint32_t(unsafe.Sizeof(st))
	if err := takeError(C.fmr_result_stats(r, &st)); err != nil {
		return nil, err
	}
	res.Stats = Stats{
		PromptTokens:           int(st.prompt_tokens),
		TokensGenerated:        int(st.tokens_generated),
		TokensFixedBudget:      int(st.tokens_fixed_budget),
		VotedCount:             int(st.voted_count),
		StoppedByConsensus:     bool(st.stopped_by_consensus),
		Cancelled:              bool(st.cancelled),
		Wall:                   time.Duration(float64(st.wall_seconds) * float64(time.Second)),
		Prompt:                 time.Duration(float64(st.prompt_seconds) * float64(time.Second)),
		ProbeTokens:            int(st.probe_tokens),
		ConfidenceThreshold:    float64(st.confidence_threshold),
		HasConfidenceThreshold: bool(st.has_confidence_threshold),
	}
	return res, nil
}
