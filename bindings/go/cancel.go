package fmr

/*
#include "fmr.h"
*/
import "C"

import "context"

// watch sets flag when ctx is cancelled (and, with deadlineToo, when its deadline passes) while
// a call runs; the returned stop ends the watch and waits for it, after which the flag may be
// freed.
func watch(ctx context.Context, flag *C.fmr_cancel_flag, deadlineToo bool) (stop func()) {
	done := ctx.Done()
	if done == nil {
		return func() {}
	}
	quit := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-done:
			if deadlineToo || ctx.Err() == context.Canceled {
				C.fmr_cancel_flag_set(flag)
			}
		case <-quit:
		}
	}()
	return func() {
		close(quit)
		<-exited
	}
}

// cancelled wraps a library cancellation caused by ctx so that errors.Is matches both
// ErrCancelled and the context's error.
func cancelled(err error, ctx context.Context) error {
	if e, ok := err.(*Error); ok && e.Code == ErrCancelled && ctx.Err() != nil && e.cause == nil {
		e.cause = ctx.Err()
	}
	return err
}
