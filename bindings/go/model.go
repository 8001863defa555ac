package fmr

/*
#cgo pkg-config: fmr
#include <stdlib.h>
#include "fmr.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"unsafe"
)

// Version returns the library's version ("MAJOR.MINOR.PATCH").
func Version() string { return C.GoString(C.fmr_version()) }

// HeaderVersion returns the version of the fmr.h this binding was compiled against; it equals
// Version unless the program runs with another library than it was built with.
func HeaderVersion() string { return C.FMR_VERSION }

// ModelParams are options of LoadModel; the zero value is the default (CPU only, mmap on).
type ModelParams struct {
	// GPULayers is the number of layers to offload to a GPU: 0 = none, -1 = all.
	GPULayers int32
	// NoMmap reads the file into memory instead of memory-mapping it.
	NoMmap bool
}

// Model is a loaded GGUF model. Its methods may be called from several goroutines at once.
type Model struct {
	mu  sync.RWMutex // held for reading by calls, for writing by Close
	ptr *C.fmr_model
}

// LoadModel loads a GGUF model; params may be nil for the defaults.
func LoadModel(path string, params *ModelParams) (*Model, error) {
	var p C.fmr_model_params
	C.fmr_model_params_init(&p, C.size_t(unsafe.Sizeof(p)))
	if params != nil {
		p.n_gpu_layers = C.int32_t(params.GPULayers)
		p.use_mmap = C.bool(!params.NoMmap)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var out *C.fmr_model
	if err := takeError(C.fmr_model_load(cpath, C.size_t(len(path)), &p, &out)); err != nil {
		return nil, err
	}
	m := &Model{ptr: out}
	runtime.SetFinalizer(m, (*Model).Close)
	return m, nil
}

// Close releases the model. Generators made from it keep working (they hold the model on
// their own). Idempotent.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ptr != nil {
		C.fmr_model_free(m.ptr)
		m.ptr = nil
		runtime.SetFinalizer(m, nil)
	}
	return nil
}

// Tokenize returns the token ids of text; addSpecial adds BOS when the model asks for it.
func (m *Model) Tokenize(text string, addSpecial bool) ([]int32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.ptr == nil {
		return nil, closedError("model")
	}
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	var needed C.size_t
	if err := takeError(C.fmr_model_tokenize(m.ptr, ctext, C.size_t(len(text)), C.bool(addSpecial), nil, 0, &needed)); err != nil {
		return nil, err
	}
	if needed == 0 {
		return []int32{}, nil
	}
	buf := (*C.int32_t)(C.malloc(C.size_t(needed) * C.size_t(unsafe.Sizeof(C.int32_t(0)))))
	defer C.free(unsafe.Pointer(buf))
	var got C.size_t
	if err := takeError(C.fmr_model_tokenize(m.ptr, ctext, C.size_t(len(text)), C.bool(addSpecial), buf, needed, &got)); err != nil {
		return nil, err
	}
	ids := unsafe.Slice((*int32)(unsafe.Pointer(buf)), int(got))
	out := make([]int32, len(ids))
	copy(out, ids)
	runtime.KeepAlive(m)
	return out, nil
}

// VocabSize returns the number of tokens in the model's vocabulary (0 once closed).
func (m *Model) VocabSize() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := int(C.fmr_model_n_vocab(m.ptr))
	runtime.KeepAlive(m)
	return n
}
