package fmr

/*
#include "fmr.h"
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// The C library calls these with a cgo.Handle as its user_data (callbacks.c hands their
// addresses to C). They run on the goroutine that made the call; a panic is recovered here
// (it cannot cross C frames), stops the call, and is raised again once C has returned.

// panicBox keeps a panic from a callback until the call that ran it returns.
type panicBox struct {
	value    interface{}
	panicked bool
}

func (b *panicBox) catch() {
	if r := recover(); r != nil {
		b.value, b.panicked = r, true
	}
}

// raise re-panics with a callback's panic, if there was one.
func (b *panicBox) raise() {
	if b.panicked {
		b.panicked = false
		panic(b.value)
	}
}

//export fmrGoToken
func fmrGoToken(ev *C.fmr_token_event, userData unsafe.Pointer) (keep C.bool) {
	s := cgo.Handle(uintptr(userData)).Value().(*stream)
	if s.panicked {
		return false
	}
	defer s.catch()
	return C.bool(s.fn(tokenEvent(ev)))
}

//export fmrGoReward
func fmrGoReward(in *C.fmr_reward_input, userData unsafe.Pointer, reward *C.double) (ok C.bool) {
	r := cgo.Handle(uintptr(userData)).Value().(*rewardState)
	if r.panicked {
		return false
	}
	defer r.catch()
	v, err := r.fn(RewardInput{
		Problem:          C.GoStringN(in.problem, C.int(in.problem_len)),
		Answer:           C.GoStringN(in.answer, C.int(in.answer_len)),
		Completion:       C.GoStringN(in.completion, C.int(in.completion_len)),
		CompletionTokens: int(in.completion_tokens),
	})
	if err != nil {
		r.err = err
		return false
	}
	*reward = C.double(v)
	return true
}

//export fmrGoProgress
func fmrGoProgress(json *C.char, n C.size_t, userData unsafe.Pointer) (keep C.bool) {
	p := cgo.Handle(uintptr(userData)).Value().(*progressState)
	if p.panicked {
		return false
	}
	defer p.catch()
	return C.bool(p.fn(C.GoStringN(json, C.int(n))))
}
