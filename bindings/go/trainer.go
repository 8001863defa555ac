package fmr

/*
#include <stdlib.h>
#include "fmr.h"
fmr_reward_callback fmr_go_reward_callback(void);
fmr_progress_callback fmr_go_progress_callback(void);
void *fmr_go_handle(uintptr_t handle);
*/
import "C"

import (
	"context"
	"runtime"
	"runtime/cgo"
	"sync"
	"unsafe"
)

// Stage is the trainer's stage.
type Stage uint32

// Stages.
const (
	StageSFT  Stage = 1 // supervised fine-tuning on (problem, solution) rows
	StageGRPO Stage = 2 // GRPO with the paper's rewards
)

// AdapterFormat is a file format of SaveAdapter.
type AdapterFormat uint32

// Adapter formats.
const (
	AdapterPEFT       AdapterFormat = 1 // folder: adapter_model.safetensors + adapter_config.json
	AdapterGGUF       AdapterFormat = 2 // one GGUF LoRA file that llama.cpp loads
	AdapterCheckpoint AdapterFormat = 3 // an fmr checkpoint (adapter, optimizer, RNG, data position)
)

// RunEnd says why Run returned without error.
type RunEnd uint32

// Run ends.
const (
	RunFinished  RunEnd = 1 // all planned steps done
	RunTimeLimit RunEnd = 2 // max_minutes reached
	RunStopped   RunEnd = 3 // the progress function returned false
)

// RewardInput is what a reward function sees for one completion.
type RewardInput struct {
	Problem          string
	Answer           string // the gold answer
	Completion       string
	CompletionTokens int
}

// RewardFunc is a host reward written in Go, added to the built-in rewards with a weight. An
// error fails the step: nothing changes, and Step or Run return an error that matches both
// ErrCallbackFailed and the function's error.
type RewardFunc func(RewardInput) (float64, error)

type rewardState struct {
	panicBox
	fn  RewardFunc
	err error
}

type progressState struct {
	panicBox
	fn func(metricsJSON string) bool
}

// Trainer runs the recipe's SFT or GRPO loop. One call at a time (concurrent calls wait), except
// StepCount, which any goroutine may call while Step or Run runs.
type Trainer struct {
	life   sync.RWMutex // held for reading by every call, for writing by Close
	mu     sync.Mutex   // held by the calls that use the trainer exclusively
	ptr    *C.fmr_trainer
	reward *rewardState
	handle cgo.Handle // of reward, while the C trainer holds it
}

// NewTrainer creates a trainer from a run configuration (JSON; see the README's recipe
// section): it loads the model and the data, and resumes from out_dir's checkpoint when asked.
func NewTrainer(config string, stage Stage) (*Trainer, error) {
	ccfg := C.CString(config)
	defer C.free(unsafe.Pointer(ccfg))
	var out *C.fmr_trainer
	if err := takeError(C.fmr_trainer_new(ccfg, C.size_t(len(config)), C.fmr_stage(stage), &out)); err != nil {
		return nil, err
	}
	t := &Trainer{ptr: out}
	runtime.SetFinalizer(t, (*Trainer).Close)
	return t, nil
}

// Close releases the trainer, waiting for a running call. Idempotent.
func (t *Trainer) Close() error {
	t.life.Lock()
	defer t.life.Unlock()
	if t.ptr != nil {
		C.fmr_trainer_free(t.ptr)
		t.ptr = nil
		if t.reward != nil {
			t.handle.Delete()
			t.reward = nil
		}
		runtime.SetFinalizer(t, nil)
	}
	return nil
}

// enter locks the trainer for an exclusive call; the returned function unlocks it.
func (t *Trainer) enter() (func(), error) {
	t.life.RLock()
	if t.ptr == nil {
		t.life.RUnlock()
		return nil, closedError("trainer")
	}
	t.mu.Lock()
	return func() {
		t.mu.Unlock()
		t.life.RUnlock()
	}, nil
}

// SetReward adds fn to the built-in rewards with weight (GRPO); a nil fn removes it. When the
// library rejects the call, the trainer keeps the reward it had.
func (t *Trainer) SetReward(fn RewardFunc, weight float64) error {
	leave, err := t.enter()
	if err != nil {
		return err
	}
	defer leave()
	if fn == nil {
		if err := takeError(C.fmr_trainer_set_reward_callback(t.ptr, nil, nil, C.double(weight))); err != nil {
			return err
		}
	} else {
		next := &rewardState{fn: fn}
		h := cgo.NewHandle(next)
		err := takeError(C.fmr_trainer_set_reward_callback(t.ptr, C.fmr_go_reward_callback(),
			C.fmr_go_handle(C.uintptr_t(h)), C.double(weight)))
		if err != nil {
			h.Delete()
			return err
		}
		if t.reward != nil {
			t.handle.Delete()
		}
		t.reward, t.handle = next, h
		runtime.KeepAlive(t)
		return nil
	}
	if t.reward != nil {
		t.handle.Delete()
		t.reward = nil
	}
	runtime.KeepAlive(t)
	return nil
}

// afterCall turns what the reward function left behind into the call's error: its panic is
// raised again; its error becomes the cause of ErrCallbackFailed.
func (t *Trainer) afterCall(err error) error {
	if t.reward == nil {
		return err
	}
	t.reward.raise()
	cause := t.reward.err
	t.reward.err = nil
	if e, ok := err.(*Error); ok && e.Code == ErrCallbackFailed && cause != nil {
		e.cause = cause
	}
	return err
}

// Step runs one optimizer step on batch, a JSON array of {"problem", "answer"} (GRPO) or
// {"problem", "solution"} (SFT) rows; "" takes the next rows of the run's data. It returns the
// step's metrics as JSON (for GRPO with every completion under "rollouts"). A failed step
// changes nothing; cancelling ctx (or its deadline) cancels the step (ErrCancelled, matching
// the context's error too).
func (t *Trainer) Step(ctx context.Context, batch string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	leave, err := t.enter()
	if err != nil {
		return "", err
	}
	defer leave()
	flag := C.fmr_cancel_flag_new()
	defer C.fmr_cancel_flag_free(flag)
	cbatch := C.CString(batch)
	defer C.free(unsafe.Pointer(cbatch))
	var metrics *C.char
	var n C.size_t
	stop := watch(ctx, flag, true)
	cerr := C.fmr_trainer_step(t.ptr, cbatch, C.size_t(len(batch)), flag, &metrics, &n)
	stop()
	runtime.KeepAlive(t)
	if err := t.afterCall(takeError(cerr)); err != nil {
		return "", cancelled(err, ctx)
	}
	out := C.GoStringN(metrics, C.int(n))
	C.fmr_string_free(metrics)
	return out, nil
}

// Run runs steps until the plan (max_steps, SFT epochs) or max_minutes is reached, progress
// returns false, or ctx is done (ErrCancelled, after checkpointing the last finished step).
// progress, which may be nil, sees each finished step's metrics as JSON on this goroutine.
// Checkpoints and final adapters are written to the configuration's out_dir.
func (t *Trainer) Run(ctx context.Context, progress func(metricsJSON string) bool) (RunEnd, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	leave, err := t.enter()
	if err != nil {
		return 0, err
	}
	defer leave()
	flag := C.fmr_cancel_flag_new()
	defer C.fmr_cancel_flag_free(flag)
	var p *progressState
	cb := C.fmr_progress_callback(nil)
	var ud unsafe.Pointer
	if progress != nil {
		p = &progressState{fn: progress}
		h := cgo.NewHandle(p)
		defer h.Delete()
		cb = C.fmr_go_progress_callback()
		ud = C.fmr_go_handle(C.uintptr_t(h))
	}
	var end C.fmr_run_end
	stop := watch(ctx, flag, true)
	cerr := C.fmr_trainer_run(t.ptr, cb, ud, flag, &end)
	stop()
	runtime.KeepAlive(t)
	if p != nil && p.panicked {
		C.fmr_error_free(cerr)
		p.raise()
	}
	if err := t.afterCall(takeError(cerr)); err != nil {
		return 0, cancelled(err, ctx)
	}
	return RunEnd(end), nil
}

// StepCount returns the optimizer steps taken (resumed ones included). Safe to call from any
// goroutine at any time, also while Step or Run runs (and from a progress function).
func (t *Trainer) StepCount() uint64 {
	t.life.RLock()
	defer t.life.RUnlock()
	n := uint64(C.fmr_trainer_step_count(t.ptr))
	runtime.KeepAlive(t)
	return n
}

// SaveAdapter writes the adapter being trained to path: a folder for AdapterPEFT, a file
// otherwise.
func (t *Trainer) SaveAdapter(path string, format AdapterFormat) error {
	leave, err := t.enter()
	if err != nil {
		return err
	}
	defer leave()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	err = takeError(C.fmr_trainer_save_adapter(t.ptr, cpath, C.size_t(len(path)), C.fmr_adapter_format(format)))
	runtime.KeepAlive(t)
	return err
}

// LoadAdapter replaces the adapter being trained with one from a PEFT folder or an fmr
// checkpoint of the same shape; the optimizer state is kept.
func (t *Trainer) LoadAdapter(path string) error {
	leave, err := t.enter()
	if err != nil {
		return err
	}
	defer leave()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	err = takeError(C.fmr_trainer_load_adapter(t.ptr, cpath, C.size_t(len(path))))
	runtime.KeepAlive(t)
	return err
}
