//! LoRA adapters in llama.cpp's GGUF format, loaded once and applied to contexts.

use super::model::{path_to_cstring, Model};
use crate::error::{Error, ErrorCode, Result};
use llama_cpp_sys_2 as sys;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;

/// A LoRA adapter bound to one model. Freed when the last `Arc` to it drops; contexts that apply
/// it hold such an `Arc`, so an adapter is never freed while in use.
pub struct LoraAdapter {
    ptr: NonNull<sys::llama_adapter_lora>,
    model: Arc<Model>,
}

// SAFETY: the adapter's tensors are read-only once loaded; llama.cpp only reads them.
unsafe impl Send for LoraAdapter {}
// SAFETY: see above.
unsafe impl Sync for LoraAdapter {}

impl Drop for LoraAdapter {
    fn drop(&mut self) {
        // SAFETY: ptr came from llama_adapter_lora_init and is freed once; no context holds it
        // (contexts keep an Arc). The model outlives this call (dropped after the body).
        unsafe { sys::llama_adapter_lora_free(self.ptr.as_ptr()) }
    }
}

impl LoraAdapter {
    /// Loads a GGUF LoRA adapter for `model`.
    pub fn load(model: Arc<Model>, path: impl AsRef<Path>) -> Result<Arc<LoraAdapter>> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(Error::new(
                ErrorCode::AdapterLoad,
                format!("adapter file '{}' does not exist", path.display()),
            ));
        }
        let c_path = path_to_cstring(path)?;
        // SAFETY: valid model pointer and NUL-terminated path.
        let ptr = unsafe { sys::llama_adapter_lora_init(model.as_ptr(), c_path.as_ptr()) };
        let ptr = NonNull::new(ptr).ok_or_else(|| {
            Error::new(
                ErrorCode::AdapterLoad,
                format!(
                    "llama.cpp could not load adapter '{}' (corrupt, or made for another model)",
                    path.display()
                ),
            )
        })?;
        Ok(Arc::new(LoraAdapter { ptr, model }))
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::llama_adapter_lora {
        self.ptr.as_ptr()
    }

    /// The model this adapter belongs to.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }
}
