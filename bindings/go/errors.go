package fmr

/*
#include "fmr.h"
*/
import "C"

import "fmt"

// ErrorCode is the library's error category (FMR_ERR_* in fmr.h). Codes are errors themselves,
// so that errors.Is(err, fmr.ErrCancelled) tests an error's code.
type ErrorCode uint32

// Error codes; the values are those of fmr.h, never reused.
const (
	ErrInvalidArgument ErrorCode = 1  // a parameter was out of range or missing
	ErrInvalidUTF8     ErrorCode = 2  // text that must be UTF-8 was not
	ErrIO              ErrorCode = 3  // a file could not be read or written
	ErrModelLoad       ErrorCode = 4  // a model file is missing, corrupt or unsupported
	ErrContextTooSmall ErrorCode = 5  // the context cannot hold the prompt and the generation
	ErrDecode          ErrorCode = 6  // llama.cpp failed to evaluate a batch
	ErrCancelled       ErrorCode = 7  // the operation was cancelled
	ErrInvalidConfig   ErrorCode = 8  // JSON parameters were malformed or had unknown keys
	ErrOutOfRange      ErrorCode = 9  // an index was out of range
	ErrPanic           ErrorCode = 10 // a panic inside the library (a bug in fmr)
	ErrInternal        ErrorCode = 11 // an internal invariant failed (a bug in fmr)
	ErrAdapterLoad     ErrorCode = 12 // an adapter is missing, corrupt or made for another model
	ErrUnsupported     ErrorCode = 13 // not available in this build or on this machine
	ErrNonFinite       ErrorCode = 14 // NaN or infinite numbers in logits, loss or weights
	ErrCallbackFailed  ErrorCode = 15 // a host callback (a reward written in Go) failed
	ErrBusy            ErrorCode = 16 // the handle is in use by another call
	ErrOutOfMemory     ErrorCode = 17 // not enough device or host memory for a model or context
	// ErrClosed is the binding's own: the handle was closed.
	ErrClosed ErrorCode = 1000
)

var codeNames = map[ErrorCode]string{
	ErrInvalidArgument: "invalid argument",
	ErrInvalidUTF8:     "invalid UTF-8",
	ErrIO:              "I/O error",
	ErrModelLoad:       "model load failed",
	ErrContextTooSmall: "context too small",
	ErrDecode:          "decode failed",
	ErrCancelled:       "cancelled",
	ErrInvalidConfig:   "invalid configuration",
	ErrOutOfRange:      "out of range",
	ErrPanic:           "internal panic",
	ErrInternal:        "internal error",
	ErrAdapterLoad:     "adapter load failed",
	ErrUnsupported:     "unsupported",
	ErrNonFinite:       "non-finite numbers",
	ErrCallbackFailed:  "callback failed",
	ErrBusy:            "handle busy",
	ErrOutOfMemory:     "out of memory",
	ErrClosed:          "handle closed",
}

// Error describes the code.
func (c ErrorCode) Error() string {
	if n, ok := codeNames[c]; ok {
		return "fmr: " + n
	}
	return fmt.Sprintf("fmr: error code %d", uint32(c))
}

// Error is an error from the library: its code and message, and, when a Go callback or a
// context caused it, that cause (see Unwrap).
type Error struct {
	Code    ErrorCode
	Message string
	cause   error
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.Error()
	}
	return fmt.Sprintf("fmr: %s (code %d)", e.Message, uint32(e.Code))
}

// Is reports whether target is this error's code.
func (e *Error) Is(target error) bool {
	c, ok := target.(ErrorCode)
	return ok && c == e.Code
}

// Unwrap returns the Go error behind this one: the error a reward function returned, or the
// context's error for a cancelled call; nil otherwise.
func (e *Error) Unwrap() error { return e.cause }

// takeError converts and frees a C error; nil for NULL.
func takeError(err *C.fmr_error) error {
	if err == nil {
		return nil
	}
	var n C.size_t
	msg := C.fmr_error_message(err, &n)
	e := &Error{Code: ErrorCode(C.fmr_error_code(err)), Message: C.GoStringN(msg, C.int(n))}
	C.fmr_error_free(err)
	return e
}

func closedError(what string) error {
	return &Error{Code: ErrClosed, Message: what + " is closed"}
}
