package fmr

/*
#include <stdlib.h>
#include "fmr.h"
fmr_token_callback fmr_go_token_callback(void);
void *fmr_go_handle(uintptr_t handle);
*/
import "C"

import (
	"context"
	"runtime"
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"
)

// FlashAttention chooses llama.cpp's flash attention.
type FlashAttention int

// Flash attention settings.
const (
	FlashAuto FlashAttention = iota // llama.cpp decides (the default)
	FlashOn
	FlashOff
)

// GeneratorParams size a generator's llama.cpp context; zero fields keep the defaults.
type GeneratorParams struct {
	// ContextSize is the KV cache size in tokens for all samples together (default 4096).
	ContextSize uint32
	// BatchSize is the largest batch of tokens per decode call (default 2048).
	BatchSize uint32
	// MaxSamples is the most samples per group (default 16).
	MaxSamples uint32
	// Threads is the number of decoding threads (default: all cores).
	Threads int32
	// FlashAttention (default FlashAuto).
	FlashAttention FlashAttention
	// UnifiedKV keeps one KV buffer for all samples instead of a stream per sample.
	UnifiedKV bool
}

// Generator samples groups of completions on one model. One call at a time: concurrent Solve
// calls on one Generator wait for each other (use one Generator per goroutine to run in
// parallel; they may share a Model).
type Generator struct {
	mu  sync.Mutex
	ptr *C.fmr_generator
}

// NewGenerator creates a generator on model; params may be nil for the defaults.
func NewGenerator(model *Model, params *GeneratorParams) (*Generator, error) {
	var p C.fmr_generator_params
	C.fmr_generator_params_init(&p, C.size_t(unsafe.Sizeof(p)))
	if params != nil {
		if params.ContextSize > 0 {
			p.n_ctx = C.uint32_t(params.ContextSize)
		}
		if params.BatchSize > 0 {
			p.n_batch = C.uint32_t(params.BatchSize)
		}
		if params.MaxSamples > 0 {
			p.n_seq_max = C.uint32_t(params.MaxSamples)
		}
		p.n_threads = C.int32_t(params.Threads)
		switch params.FlashAttention {
		case FlashOn:
			p.flash_attn = 1
		case FlashOff:
			p.flash_attn = 0
		}
		p.kv_unified = C.bool(params.UnifiedKV)
	}
	model.mu.RLock()
	defer model.mu.RUnlock()
	if model.ptr == nil {
		return nil, closedError("model")
	}
	var out *C.fmr_generator
	err := takeError(C.fmr_generator_new(model.ptr, &p, &out))
	runtime.KeepAlive(model)
	if err != nil {
		return nil, err
	}
	g := &Generator{ptr: out}
	runtime.SetFinalizer(g, (*Generator).Close)
	return g, nil
}

// Close releases the generator, waiting for a running Solve. Idempotent.
func (g *Generator) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ptr != nil {
		C.fmr_generator_free(g.ptr)
		g.ptr = nil
		runtime.SetFinalizer(g, nil)
	}
	return nil
}

// TokenEvent is one generated token, as streamed to SolveStream's callback.
type TokenEvent struct {
	Sample     int     // sample index within the group
	Token      int32   // token id
	Logprob    float32 // log-probability (nats); 0 for forced tokens
	NGenerated int     // tokens this sample has generated, this one included
	Piece      string  // the token's bytes (possibly part of a UTF-8 sequence)
	Forced     bool    // appended by budget forcing, not sampled
	Confidence float32 // −mean of the step's top-k log-probabilities (0 for forced tokens)
	// TopTokens and TopLogprobs are the step's most likely tokens, most likely first (copied).
	TopTokens   []int32
	TopLogprobs []float32
}

type stream struct {
	panicBox
	fn func(TokenEvent) bool
}

func tokenEvent(ev *C.fmr_token_event) TokenEvent {
	t := TokenEvent{
		Sample:     int(ev.sample),
		Token:      int32(ev.token),
		Logprob:    float32(ev.logprob),
		NGenerated: int(ev.n_generated),
		Piece:      C.GoStringN(ev.piece, C.int(ev.piece_len)),
	}
	if uintptr(ev.struct_size) >= unsafe.Offsetof(ev.forced)+unsafe.Sizeof(ev.forced) {
		t.Forced = bool(ev.forced)
	}
	if uintptr(ev.struct_size) >= unsafe.Offsetof(ev.top_logprobs)+unsafe.Sizeof(ev.top_logprobs) {
		t.Confidence = float32(ev.confidence)
		if k := int(ev.top_k); k > 0 {
			t.TopTokens = append([]int32(nil), unsafe.Slice((*int32)(unsafe.Pointer(ev.top_tokens)), k)...)
			t.TopLogprobs = append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(ev.top_logprobs)), k)...)
		}
	}
	return t
}

// Solve samples a group of completions of problem and votes on their answers. params holds the
// rollout parameters as JSON ("" for the defaults; see fmr_generator_solve in fmr.h), e.g.
// {"n_samples": 8, "max_tokens": 256, "consensus": {"rule": "k_of_n", "k": 4}}.
//
// Cancelling ctx stops the running samples: Solve then returns the partial result together
// with an error matching both ErrCancelled and context.Canceled. A ctx deadline is the
// rollout's deadline: at that time the samples stop (FinishDeadline) and the group votes on
// what it has; Solve returns that result without error. A ctx already done returns its error.
func (g *Generator) Solve(ctx context.Context, problem, params string) (*Result, error) {
	return g.SolveStream(ctx, problem, params, nil)
}

// SolveStream is Solve with onToken called for every generated token of every sample (on this
// goroutine); returning false cancels the rollout, which then returns its partial result
// without error. A panic in onToken stops the rollout and is raised again from SolveStream.
func (g *Generator) SolveStream(ctx context.Context, problem, params string, onToken func(TokenEvent) bool) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ptr == nil {
		return nil, closedError("generator")
	}
	var hooks C.fmr_rollout_hooks
	C.fmr_rollout_hooks_init(&hooks, C.size_t(unsafe.Sizeof(hooks)))
	flag := C.fmr_cancel_flag_new()
	defer C.fmr_cancel_flag_free(flag)
	hooks.cancel = flag
	if deadline, ok := ctx.Deadline(); ok {
		ms := time.Until(deadline).Milliseconds()
		if ms < 1 {
			ms = 1
		}
		hooks.deadline_ms = C.uint64_t(ms)
	}
	var s *stream
	if onToken != nil {
		s = &stream{fn: onToken}
		h := cgo.NewHandle(s)
		defer h.Delete()
		hooks.on_token = C.fmr_go_token_callback()
		hooks.user_data = C.fmr_go_handle(C.uintptr_t(h))
	}
	cproblem := C.CString(problem)
	defer C.free(unsafe.Pointer(cproblem))
	cparams := C.CString(params)
	defer C.free(unsafe.Pointer(cparams))

	stop := watch(ctx, flag, false)
	var out *C.fmr_result
	cerr := C.fmr_generator_solve(g.ptr, cproblem, C.size_t(len(problem)), cparams, C.size_t(len(params)), &hooks, &out)
	stop()
	runtime.KeepAlive(g)
	if s != nil && s.panicked {
		C.fmr_result_free(out)
		C.fmr_error_free(cerr)
		s.raise()
	}
	if err := takeError(cerr); err != nil {
		return nil, err
	}
	res, err := readResult(out)
	C.fmr_result_free(out)
	if err != nil {
		return nil, err
	}
	if res.Stats.Cancelled && ctx.Err() == context.Canceled {
		return res, &Error{Code: ErrCancelled, Message: "solve cancelled", cause: ctx.Err()}
	}
	return res, nil
}
