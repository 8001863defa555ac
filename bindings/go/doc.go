// Package fmr is the Go binding of fmr, the Fast-Math-R1 recipe as a library: quantized GGUF
// inference through llama.cpp with length-aware early stopping, math answer verification and
// the paper's rewards, and LoRA training (SFT, GRPO). It calls the library's C ABI (fmr.h)
// through cgo and finds it with pkg-config: install it first with scripts/install.sh and point
// PKG_CONFIG_PATH at PREFIX/lib/pkgconfig.
//
// Handles (Model, Generator, Trainer) own C resources: call Close when done (it is idempotent,
// and a finalizer frees what was forgotten). A Model may be shared by goroutines; a Generator
// or Trainer runs one call at a time (concurrent calls wait their turn), except
// Trainer.StepCount, which any goroutine may call during a run.
//
// Errors from the library are *Error values carrying an ErrorCode: test them with errors.Is
// (errors.Is(err, fmr.ErrCancelled)) or read them with errors.As.
//
// Callbacks written in Go (token streaming, rewards, progress) run on the goroutine that made
// the call. A panic in one stops the call and is raised again from it, once the C library has
// returned.
package fmr
