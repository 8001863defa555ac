// The addresses of the Go callbacks (callbacks.go) as the C library's callback types, and a
// cgo.Handle as a user_data pointer. Kept in C so that Go never converts an integer to a pointer.
#include "_cgo_export.h"

fmr_token_callback fmr_go_token_callback(void) { return (fmr_token_callback)fmrGoToken; }

fmr_reward_callback fmr_go_reward_callback(void) { return (fmr_reward_callback)fmrGoReward; }

fmr_progress_callback fmr_go_progress_callback(void) { return (fmr_progress_callback)fmrGoProgress; }

void *fmr_go_handle(uintptr_t handle) { return (void *)handle; }
