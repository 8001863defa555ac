package fmr

/*
#include <stdlib.h>
#include "fmr.h"
*/
import "C"

import "unsafe"

// VerdictReason says why the verifier decided as it did (FMR_VERDICT_* in fmr.h).
type VerdictReason uint32

// Verdict reasons.
const (
	VerdictExactString       VerdictReason = 1   // normalized strings are identical
	VerdictNumericExact      VerdictReason = 2   // exactly equal as rational numbers
	VerdictNumericClose      VerdictReason = 3   // equal within the relative tolerance
	VerdictSymbolic          VerdictReason = 4   // expressions agree at sample points
	VerdictStructural        VerdictReason = 5   // tuples, intervals, sets equal element by element
	VerdictEquation          VerdictReason = 6   // equations equal
	VerdictChoice            VerdictReason = 7   // multiple-choice letters match
	VerdictText              VerdictReason = 8   // text equal ignoring case and spacing
	VerdictNotEquivalent     VerdictReason = 100 // not equivalent
	VerdictPredictionMissing VerdictReason = 101 // no answer in the prediction
	VerdictGoldUnparseable   VerdictReason = 102 // the gold answer cannot be parsed
	VerdictInputTooLong      VerdictReason = 103 // an input exceeds the length cap
)

var verdictNames = map[VerdictReason]string{
	VerdictExactString: "exact string", VerdictNumericExact: "numeric exact",
	VerdictNumericClose: "numeric close", VerdictSymbolic: "symbolic",
	VerdictStructural: "structural", VerdictEquation: "equation", VerdictChoice: "choice",
	VerdictText: "text", VerdictNotEquivalent: "not equivalent",
	VerdictPredictionMissing: "prediction missing", VerdictGoldUnparseable: "gold unparseable",
	VerdictInputTooLong: "input too long",
}

func (r VerdictReason) String() string {
	if n, ok := verdictNames[r]; ok {
		return n
	}
	return "unknown"
}

// Verdict is the verifier's decision.
type Verdict struct {
	Equivalent bool
	Reason     VerdictReason
	Detail     string // an explanation for people
}

// Verify compares a predicted answer with a gold answer. With isCompletion the prediction is a
// whole model output whose answer is extracted first. options holds verifier options as JSON
// ("" for the defaults; see fmr_verify in fmr.h). Safe for concurrent use.
func Verify(gold, predicted string, isCompletion bool, options string) (Verdict, error) {
	cgold, cpred, copts := C.CString(gold), C.CString(predicted), C.CString(options)
	defer C.free(unsafe.Pointer(cgold))
	defer C.free(unsafe.Pointer(cpred))
	defer C.free(unsafe.Pointer(copts))
	var v C.fmr_verdict
	v.struct_size = C.uint32_t(unsafe.Sizeof(v))
	var detail *C.char
	var n C.size_t
	err := takeError(C.fmr_verify(cgold, C.size_t(len(gold)), cpred, C.size_t(len(predicted)), C.bool(isCompletion),
		copts, C.size_t(len(options)), &v, &detail, &n))
	if err != nil {
		return Verdict{}, err
	}
	out := Verdict{Equivalent: bool(v.equivalent), Reason: VerdictReason(v.reason), Detail: C.GoStringN(detail, C.int(n))}
	C.fmr_string_free(detail)
	return out, nil
}

// Completion is one completion to score.
type Completion struct {
	Text   string
	Tokens int // its length in tokens (used when the length unit is tokens)
}

// RewardScores are the reward components of one completion.
type RewardScores struct {
	Total, Format, Cosine, Length, Accuracy float64
	Correct                                 bool
	GoldUnparseableUsed                     bool // counted correct only because the gold could not be parsed
	Reason                                  VerdictReason
	// Length terms beyond the paper, unweighted: ShorterBetter, the Laser-D style bonus and
	// DAPO's soft overlong punishment (weights and options in config; see fmr_reward_scores).
	ShorterBetter, Laser, Overlong float64
}

// ScoreGroup scores completions of one problem with the paper's rewards (format, cosine,
// length; accuracy). config holds reward options as JSON ("" for the paper's values; see
// fmr_score_group in fmr.h). Safe for concurrent use.
func ScoreGroup(gold string, completions []Completion, config string) ([]RewardScores, error) {
	n := len(completions)
	cgold, ccfg := C.CString(gold), C.CString(config)
	defer C.free(unsafe.Pointer(cgold))
	defer C.free(unsafe.Pointer(ccfg))
	var in *C.fmr_completion
	var out *C.fmr_reward_scores
	if n > 0 {
		in = (*C.fmr_completion)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.fmr_completion{}))))
		defer C.free(unsafe.Pointer(in))
		out = (*C.fmr_reward_scores)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.fmr_reward_scores{}))))
		defer C.free(unsafe.Pointer(out))
	}
	ins := unsafe.Slice(in, n)
	outs := unsafe.Slice(out, n)
	for i, c := range completions {
		text := C.CString(c.Text)
		defer C.free(unsafe.Pointer(text))
		ins[i].struct_size = C.uint32_t(unsafe.Sizeof(ins[i]))
		ins[i].text = text
		ins[i].text_len = C.size_t(len(c.Text))
		ins[i].n_tokens = C.size_t(c.Tokens)
		outs[i].struct_size = C.uint32_t(unsafe.Sizeof(outs[i]))
	}
	if err := takeError(C.fmr_score_group(cgold, C.size_t(len(gold)), in, C.size_t(n), ccfg, C.size_t(len(config)), out)); err != nil {
		return nil, err
	}
	scores := make([]RewardScores, n)
	for i, s := range outs {
		scores[i] = RewardScores{
			Total: float64(s.total), Format: float64(s.format), Cosine: float64(s.cosine),
			Length: float64(s.length), Accuracy: float64(s.accuracy), Correct: bool(s.correct),
			GoldUnparseableUsed: bool(s.gold_unparseable_used), Reason: VerdictReason(s.reason),
			ShorterBetter: float64(s.shorter_better), Laser: float64(s.laser), Overlong: float64(s.overlong),
		}
	}
	return scores, nil
}
