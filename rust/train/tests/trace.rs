//! llama.cpp's intermediate tensors, captured by name through the context's eval callback, for
//! comparing our forward with llama.cpp's one operation at a time.

use std::collections::HashMap;
use std::ffi::{c_void, CStr};
use std::path::Path;

use llama_cpp_sys_2 as sys;

/// Tensors by name, each as f32 values in ggml's layout (innermost dimension first); a name
/// used by several nodes (e.g. `Qcur-0` after the product, the reshape and the rope) keeps each
/// in graph order.
pub type Trace = HashMap<String, Vec<Vec<f32>>>;

struct Capture {
    want: fn(&str) -> bool,
    out: Trace,
}

unsafe extern "C" fn on_tensor(t: *mut sys::ggml_tensor, ask: bool, user: *mut c_void) -> bool {
    // SAFETY: llama.cpp passes the live tensor and the user data we registered below.
    let cap = &mut *(user as *mut Capture);
    let name = CStr::from_ptr((*t).name.as_ptr())
        .to_string_lossy()
        .into_owned();
    if ask {
        return (cap.want)(&name);
    }
    if (*t).type_ == sys::GGML_TYPE_F32 && sys::ggml_is_contiguous(t) && (cap.want)(&name) {
        let n = (sys::ggml_nbytes(t) / 4) as usize;
        let mut data = vec![0f32; n];
        sys::ggml_backend_tensor_get(t, data.as_mut_ptr().cast(), 0, n * 4);
        cap.out.entry(name).or_default().push(data);
    }
    true
}

/// Runs llama.cpp on `tokens` (one sequence, one batch, F32 KV cache, flash attention off,
/// 2 threads) and returns the contiguous f32 tensors whose names `want` accepts.
pub fn trace(model_path: &Path, tokens: &[u32], want: fn(&str) -> bool) -> Trace {
    crate::engine::init_backend();
    let cpath = std::ffi::CString::new(model_path.to_str().expect("utf-8 path")).unwrap();
    let mut cap = Box::new(Capture {
        want,
        out: HashMap::new(),
    });
    let n = tokens.len().max(64) as u32;
    // SAFETY: plain llama.cpp calls on a loaded model; `cap` outlives the context, which is
    // freed before returning.
    unsafe {
        let model =
            sys::llama_model_load_from_file(cpath.as_ptr(), sys::llama_model_default_params());
        assert!(!model.is_null(), "llama.cpp model");
        let mut cp = sys::llama_context_default_params();
        cp.n_ctx = n;
        cp.n_batch = n;
        cp.n_ubatch = n;
        cp.n_seq_max = 1;
        cp.n_threads = 2;
        cp.n_threads_batch = 2;
        cp.no_perf = true;
        cp.flash_attn_type = sys::LLAMA_FLASH_ATTN_TYPE_DISABLED;
        cp.type_k = sys::GGML_TYPE_F32;
        cp.type_v = sys::GGML_TYPE_F32;
        cp.cb_eval = Some(on_tensor);
        cp.cb_eval_user_data = (&mut *cap as *mut Capture).cast();
        let ctx = sys::llama_init_from_model(model, cp);
        assert!(!ctx.is_null(), "llama.cpp context");
        let mut toks: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        let batch = sys::llama_batch_get_one(toks.as_mut_ptr(), toks.len() as i32);
        let rc = sys::llama_decode(ctx, batch);
        sys::llama_free(ctx);
        sys::llama_model_free(model);
        assert_eq!(rc, 0, "llama_decode");
    }
    cap.out
}
