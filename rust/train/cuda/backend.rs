//! The CUDA side of the compute seam: frozen weights uploaded once in their GGUF types and
//! expanded one block at a time (bf16, or f32 in the reference precision) for cuBLAS GEMMs
//! with f32 accumulation; activations, LoRA tensors and gradients in f32 device buffers; the
//! NVRTC kernels of `kernels.cu` for everything that is not a GEMM.

use std::sync::Mutex;

use cudarc::driver::CudaSlice;

use super::device::{Acc, Arg, DBuf, DMat, Dt, Gpu, Strides};
use super::lora::DeviceLora;
use super::Precision;
use crate::train::backend::{Backend, HeadScratch, Norm};
use crate::train::cpu::backend::layer_weight;
use crate::train::cpu::rope::RopeTable;
use crate::train::error::{Result, TrainError};
use crate::train::lora::LoraTarget;
use crate::train::model::layout::Layout;
use crate::train::weights::{FfnAct, GgufModel, HyperParams, QTensor};

/// A frozen tensor in device memory, in its GGUF storage type.
pub(crate) struct DevTensor {
    pub data: CudaSlice<u8>,
    pub ty: u32,
    pub rows: usize,
    pub cols: usize,
    pub row_bytes: usize,
}

impl DevTensor {
    fn upload(gpu: &Gpu, t: &QTensor) -> Result<DevTensor> {
        Ok(DevTensor {
            data: gpu.upload(t.raw())?,
            ty: t.ty.raw(),
            rows: t.rows,
            cols: t.cols,
            row_bytes: t.nbytes() / t.rows.max(1),
        })
    }
}

/// One block's frozen tensors on the device.
pub(crate) struct DevLayer {
    pub w: [DevTensor; 7],
    pub attn_norm: CudaSlice<f32>,
    pub ffn_norm: CudaSlice<f32>,
    pub bias: [Option<CudaSlice<f32>>; 3],
    /// Query / key head norms, post-attention and post-MLP norms (when the model has them).
    pub q_norm: Option<CudaSlice<f32>>,
    pub k_norm: Option<CudaSlice<f32>>,
    pub attn_post_norm: Option<CudaSlice<f32>>,
    pub ffn_post_norm: Option<CudaSlice<f32>>,
}

/// The whole base model on the device.
pub(crate) struct DevModel {
    pub tok_embd: DevTensor,
    /// `None` when tied to the embeddings.
    pub output: Option<DevTensor>,
    pub output_norm: CudaSlice<f32>,
    pub layers: Vec<DevLayer>,
    pub bytes: usize,
}

impl DevModel {
    pub fn upload(gpu: &Gpu, m: &GgufModel) -> Result<DevModel> {
        let mut layers = Vec::with_capacity(m.layers.len());
        let mut bytes = 0;
        for lw in &m.layers {
            let w = LoraTarget::ALL.map(|t| DevTensor::upload(gpu, layer_weight(lw, t)));
            let [a, b, c, d, e, f, g] = w;
            let w = [a?, b?, c?, d?, e?, f?, g?];
            bytes += w.iter().map(|t| t.row_bytes * t.rows).sum::<usize>();
            let up = |v: &Option<Vec<f32>>| v.as_ref().map(|v| gpu.upload(v)).transpose();
            layers.push(DevLayer {
                w,
                attn_norm: gpu.upload(&lw.attn_norm)?,
                ffn_norm: gpu.upload(&lw.ffn_norm)?,
                bias: [up(&lw.bq)?, up(&lw.bk)?, up(&lw.bv)?],
                q_norm: up(&lw.q_norm)?,
                k_norm: up(&lw.k_norm)?,
                attn_post_norm: up(&lw.attn_post_norm)?,
                ffn_post_norm: up(&lw.ffn_post_norm)?,
            });
        }
        let tok_embd = DevTensor::upload(gpu, &m.tok_embd)?;
        bytes += tok_embd.row_bytes * tok_embd.rows;
        let output = m
            .output
            .as_ref()
            .map(|t| DevTensor::upload(gpu, t))
            .transpose()?;
        bytes += output.as_ref().map_or(0, |t| t.row_bytes * t.rows);
        Ok(DevModel {
            tok_embd,
            output,
            output_norm: gpu.upload(&m.output_norm)?,
            layers,
            bytes,
        })
    }
}

/// A growable raw device buffer viewed as f32 or bf16 elements.
#[derive(Default)]
pub(crate) struct RawBuf {
    mem: Option<CudaSlice<u8>>,
}

impl RawBuf {
    /// At least `bytes` bytes; returns the address.
    fn ensure(&mut self, gpu: &Gpu, bytes: usize) -> Result<u64> {
        if self.mem.as_ref().map_or(0, |m| m.len()) < bytes {
            self.mem = None;
            self.mem = Some(gpu.zeros::<u8>(bytes)?);
        }
        Ok(self.mem.as_ref().map_or(0, |m| gpu.ptr(m)))
    }
    fn bytes(&self) -> usize {
        self.mem.as_ref().map_or(0, |m| m.len())
    }
}

/// One block's weights expanded for products: seven `[out, in]` matrices.
#[derive(Default)]
pub(crate) struct DevDense {
    w: [RawBuf; 7],
    dt: Option<Dt>,
    ptrs: [u64; 7],
}

/// Per-call data of a batch on the device.
pub(crate) struct CudaBatch {
    n: usize,
    seqs: Vec<(usize, usize)>,
    tokens: CudaSlice<u32>,
    pos: CudaSlice<u32>,
    cos: CudaSlice<f32>,
    sin: CudaSlice<f32>,
    /// Tables of the sliding-window layers when their RoPE base differs.
    swa: Option<(CudaSlice<f32>, CudaSlice<f32>)>,
    /// Scored rows (the hidden state that predicts) and their targets.
    rows: CudaSlice<u32>,
    targets: CudaSlice<u32>,
    n_scored: usize,
}

/// Group-major copies and score chunks of the attention (see `attention_fwd`).
#[derive(Default)]
pub(crate) struct CudaAttnCache {
    qg: DBuf,
    kg: DBuf,
    vg: DBuf,
    og: DBuf,
    p: DBuf,
    dp: DBuf,
    dog: DBuf,
    dqg: DBuf,
    dkg: DBuf,
    dvg: DBuf,
}

/// Scratch reused by every call (behind a mutex: the backend is shared, the stream serial).
#[derive(Default)]
pub(crate) struct Scratch {
    /// Activations in bf16 for a product.
    xb: RawBuf,
    /// Output-projection chunk.
    head_w: RawBuf,
    /// Gathered scored rows (bf16 or f32).
    head_x: RawBuf,
    /// Logit chunk (f32) and its gradient in the product type.
    head_logits: DBuf,
    head_g: RawBuf,
    /// Per-row statistics of the head.
    mx: DBuf,
    tgt: DBuf,
    best: DBuf,
    sum: Option<CudaSlice<f64>>,
    /// `Σ e^(x−max)·x` per row (entropy).
    zsum: Option<CudaSlice<f64>>,
    ent: DBuf,
    best_id: Option<CudaSlice<u32>>,
    logp: DBuf,
    dlogp: DBuf,
    dxs: DBuf,
}

/// The CUDA backend: the device, the uploaded model and the chunking settings.
pub(crate) struct CudaBackend {
    pub gpu: Gpu,
    pub model: std::sync::Arc<GgufModel>,
    pub dev: DevModel,
    pub precision: Precision,
    /// Rows of the output projection expanded at a time.
    pub vocab_chunk: usize,
    /// Scored rows projected at a time.
    pub row_chunk: usize,
    /// Bytes of attention scores (and as many of their gradients) held at a time.
    pub attn_budget: usize,
    /// Tokens whose MLP runs at a time (0 = all).
    pub mlp_chunk: usize,
    /// Keep block inputs for recomputation in bf16 (half the memory of f32).
    pub bf16_checkpoints: bool,
    pub scratch: Mutex<Scratch>,
}

fn f32s(n: usize) -> usize {
    n * 4
}

impl CudaBackend {
    fn dt(&self) -> Dt {
        match self.precision {
            Precision::Bf16 => Dt::Bf16,
            Precision::F32 => Dt::F32,
        }
    }

    /// Accumulation of attention products (f32 operands).
    fn attn_acc(&self) -> Acc {
        match self.precision {
            Precision::Bf16 => Acc::Tf32,
            Precision::F32 => Acc::F32,
        }
    }

    fn ckpt_elem(&self) -> usize {
        if self.bf16_checkpoints {
            2
        } else {
            4
        }
    }

    fn elem(&self) -> usize {
        match self.dt() {
            Dt::Bf16 => 2,
            Dt::F32 => 4,
        }
    }

    fn scratch(&self) -> std::sync::MutexGuard<'_, Scratch> {
        self.scratch.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn p(&self, b: &DBuf) -> u64 {
        self.gpu.bptr(b)
    }

    /// Expands rows `r0 .. r0 + rows` of `t` into `dst` as `dt` elements.
    fn dequant(&self, t: &DevTensor, r0: usize, rows: usize, dst: u64, dt: Dt) -> Result<()> {
        let n = rows * t.cols;
        let src = self.gpu.ptr(&t.data) + (r0 * t.row_bytes) as u64;
        let k = match dt {
            Dt::Bf16 => "dequant_bf16",
            Dt::F32 => "dequant_f32",
        };
        self.gpu.launch_n(
            k,
            n,
            &[
                Arg::P(src),
                Arg::P(dst),
                Arg::L(n as i64),
                Arg::I(t.ty as i32),
            ],
        )
    }

    /// The operand of a product with activations `x` (`[rows, cols]` f32): `x` itself in
    /// f32 precision, or a bf16 copy in scratch.
    fn act_operand(&self, s: &mut Scratch, x: &DBuf, rows: usize, cols: usize) -> Result<DMat> {
        match self.dt() {
            Dt::F32 => Ok(DMat::f32(self.p(x), rows, cols)),
            Dt::Bf16 => {
                let n = rows * cols;
                let xb = s.xb.ensure(&self.gpu, n * 2)?;
                self.gpu.launch_n(
                    "to_bf16",
                    n,
                    &[Arg::P(self.p(x)), Arg::P(xb), Arg::L(n as i64)],
                )?;
                Ok(DMat::bf16(xb, rows, cols))
            }
        }
    }

    fn head_weight(&self) -> &DevTensor {
        self.dev.output.as_ref().unwrap_or(&self.dev.tok_embd)
    }

    /// Query rows per attention chunk for a sequence of `len` tokens.
    fn query_chunk(&self, len: usize) -> usize {
        let per_row = f32s(self.model.hp.n_head * len).max(1);
        (self.attn_budget / per_row).clamp(1, len)
    }
}

fn fdim(x: &DBuf, what: &str, want: usize) -> Result<()> {
    if x.len != want {
        return Err(TrainError::shape(what, want, x.len));
    }
    Ok(())
}

impl Backend for CudaBackend {
    type Buf = DBuf;
    type Layer = DevDense;
    type Lora = DeviceLora;
    type Batch = CudaBatch;
    type AttnCache = CudaAttnCache;
    type Ckpt = RawBuf;

    fn hp(&self) -> &HyperParams {
        &self.model.hp
    }

    fn batch(&self, lay: &Layout) -> Result<CudaBatch> {
        let hp = &self.model.hp;
        let table = |base: f32| RopeTable::new(hp.head_dim, base, lay.max_len, hp.rope_neox);
        let rope = table(hp.rope_base);
        let (cos, sin) = rope.tables();
        let swa = if (0..hp.n_layer).any(|l| hp.is_swa(l)) && hp.rope_base_swa != hp.rope_base {
            let t = table(hp.rope_base_swa);
            let (c, s) = t.tables();
            Some((self.gpu.upload(c)?, self.gpu.upload(s)?))
        } else {
            None
        };
        let rows: Vec<u32> = lay.scored.iter().map(|&(r, _)| r as u32).collect();
        let targets: Vec<u32> = lay.scored.iter().map(|&(_, t)| t).collect();
        let g = &self.gpu;
        let nonempty = |v: Vec<u32>| if v.is_empty() { vec![0] } else { v };
        Ok(CudaBatch {
            n: lay.n_tokens(),
            seqs: lay.seqs.clone(),
            tokens: g.upload(&lay.tokens)?,
            pos: g.upload(&lay.pos)?,
            cos: g.upload(cos)?,
            sin: g.upload(sin)?,
            swa,
            rows: g.upload(&nonempty(rows))?,
            targets: g.upload(&nonempty(targets))?,
            n_scored: lay.scored.len(),
        })
    }

    fn resize(&self, b: &mut DBuf, n: usize) -> Result<()> {
        self.gpu.resize(b, n)
    }

    fn bytes(&self, b: &DBuf) -> usize {
        b.capacity() * 4
    }

    fn copy(&self, src: &DBuf, dst: &mut DBuf) -> Result<()> {
        fdim(dst, "copy", src.len)?;
        self.gpu.launch_n(
            "copy_f32",
            src.len,
            &[
                Arg::P(self.p(src)),
                Arg::P(self.p(dst)),
                Arg::L(src.len as i64),
            ],
        )
    }

    fn copy_rows(
        &self,
        src: &DBuf,
        src_row: usize,
        dst: &mut DBuf,
        dst_row: usize,
        rows: usize,
        width: usize,
    ) -> Result<()> {
        let n = rows * width;
        let (s0, d0) = (src_row * width, dst_row * width);
        if s0 + n > src.len || d0 + n > dst.len {
            return Err(TrainError::shape(
                "row copy",
                (s0 + n, d0 + n),
                (src.len, dst.len),
            ));
        }
        self.gpu.launch_n(
            "copy_f32",
            n,
            &[
                Arg::P(self.p(src) + f32s(s0) as u64),
                Arg::P(self.p(dst) + f32s(d0) as u64),
                Arg::L(n as i64),
            ],
        )
    }

    fn ckpt_resize(&self, c: &mut RawBuf, n: usize) -> Result<()> {
        c.ensure(&self.gpu, n * self.ckpt_elem())?;
        Ok(())
    }

    fn ckpt_bytes(&self, c: &RawBuf) -> usize {
        c.bytes()
    }

    fn ckpt_store(
        &self,
        src: &DBuf,
        c: &mut RawBuf,
        row0: usize,
        rows: usize,
        width: usize,
    ) -> Result<()> {
        let n = rows * width;
        fdim(src, "checkpoint source", n)?;
        let el = self.ckpt_elem();
        let dst = c.ensure(&self.gpu, (row0 + rows) * width * el)? + (row0 * width * el) as u64;
        let k = if self.bf16_checkpoints {
            "to_bf16"
        } else {
            "copy_f32"
        };
        self.gpu
            .launch_n(k, n, &[Arg::P(self.p(src)), Arg::P(dst), Arg::L(n as i64)])
    }

    fn ckpt_load(
        &self,
        c: &RawBuf,
        row0: usize,
        dst: &mut DBuf,
        rows: usize,
        width: usize,
    ) -> Result<()> {
        let n = rows * width;
        fdim(dst, "checkpoint destination", n)?;
        let el = self.ckpt_elem();
        if c.bytes() < (row0 + rows) * width * el {
            return Err(TrainError::shape(
                "checkpoint rows",
                row0 + rows,
                c.bytes() / (width * el),
            ));
        }
        let src = c.mem.as_ref().map_or(0, |m| self.gpu.ptr(m)) + (row0 * width * el) as u64;
        let k = if self.bf16_checkpoints {
            "from_bf16"
        } else {
            "copy_f32"
        };
        self.gpu
            .launch_n(k, n, &[Arg::P(src), Arg::P(self.p(dst)), Arg::L(n as i64)])
    }

    fn mlp_chunk(&self) -> usize {
        self.mlp_chunk
    }

    fn fill_zero(&self, b: &mut DBuf) -> Result<()> {
        self.gpu.launch_n(
            "fill_f32",
            b.len,
            &[Arg::P(self.p(b)), Arg::L(b.len as i64), Arg::F(0.0)],
        )
    }

    fn add(&self, dst: &mut DBuf, src: &DBuf) -> Result<()> {
        fdim(dst, "add", src.len)?;
        self.gpu.launch_n(
            "add_inplace",
            src.len,
            &[
                Arg::P(self.p(dst)),
                Arg::P(self.p(src)),
                Arg::L(src.len as i64),
            ],
        )
    }

    fn to_host(&self, b: &DBuf) -> Result<Vec<f32>> {
        match &b.mem {
            Some(m) => self.gpu.download(m, b.len),
            None => Ok(Vec::new()),
        }
    }

    fn embed(&self, batch: &CudaBatch, out: &mut DBuf) -> Result<()> {
        let d = self.model.hp.n_embd;
        fdim(out, "embeddings", batch.n * d)?;
        let t = &self.dev.tok_embd;
        self.gpu.launch_n(
            "embed",
            batch.n * d,
            &[
                Arg::P(self.gpu.ptr(&t.data)),
                Arg::I(t.ty as i32),
                Arg::L(t.row_bytes as i64),
                Arg::P(self.gpu.ptr(&batch.tokens)),
                Arg::P(self.p(out)),
                Arg::I(batch.n as i32),
                Arg::I(d as i32),
            ],
        )?;
        let scale = self.model.hp.embd_scale;
        if scale == 1.0 {
            return Ok(());
        }
        self.gpu.launch_n(
            "scale_inplace",
            out.len,
            &[Arg::P(self.p(out)), Arg::L(out.len as i64), Arg::F(scale)],
        )
    }

    fn load_layer(&self, l: usize, dst: &mut DevDense) -> Result<()> {
        let dt = self.dt();
        let el = self.elem();
        for (i, t) in self.dev.layers[l].w.iter().enumerate() {
            let ptr = dst.w[i].ensure(&self.gpu, t.rows * t.cols * el)?;
            self.dequant(t, 0, t.rows, ptr, dt)?;
            dst.ptrs[i] = ptr;
        }
        dst.dt = Some(dt);
        Ok(())
    }

    fn layer_bytes(&self, layer: &DevDense) -> usize {
        layer.w.iter().map(RawBuf::bytes).sum()
    }

    fn rmsnorm_fwd(&self, w: Norm, x: &DBuf, y: &mut DBuf, inv: &mut DBuf) -> Result<()> {
        let wt = self.norm(w)?;
        let d = wt.len();
        let rows = x.len / d;
        fdim(y, "rmsnorm output", x.len)?;
        fdim(inv, "rmsnorm inverse", rows)?;
        let wp = self.gpu.ptr(wt);
        self.gpu.launch_rows(
            "rmsnorm_fwd",
            rows,
            &[
                Arg::P(self.p(x)),
                Arg::P(wp),
                Arg::P(self.p(y)),
                Arg::P(self.p(inv)),
                Arg::I(rows as i32),
                Arg::I(d as i32),
                Arg::F(self.model.hp.rms_eps),
            ],
        )
    }

    fn rmsnorm_bwd(&self, w: Norm, x: &DBuf, inv: &DBuf, dy: &DBuf, dx: &mut DBuf) -> Result<()> {
        let wt = self.norm(w)?;
        let d = wt.len();
        let rows = x.len / d;
        fdim(dx, "rmsnorm gradient", x.len)?;
        let wp = self.gpu.ptr(wt);
        self.gpu.launch_rows(
            "rmsnorm_bwd",
            rows,
            &[
                Arg::P(self.p(x)),
                Arg::P(wp),
                Arg::P(self.p(inv)),
                Arg::P(self.p(dy)),
                Arg::P(self.p(dx)),
                Arg::I(rows as i32),
                Arg::I(d as i32),
            ],
        )
    }

    fn add_bias(&self, l: usize, t: LoraTarget, x: &mut DBuf) -> Result<()> {
        let i = match t {
            LoraTarget::Q => 0,
            LoraTarget::K => 1,
            LoraTarget::V => 2,
            _ => return Ok(()),
        };
        let Some(b) = &self.dev.layers[l].bias[i] else {
            return Ok(());
        };
        let width = b.len();
        self.gpu.launch_n(
            "add_bias",
            x.len,
            &[
                Arg::P(self.p(x)),
                Arg::P(self.gpu.ptr(b)),
                Arg::L((x.len / width) as i64),
                Arg::I(width as i32),
            ],
        )
    }

    fn linear(
        &self,
        layer: &DevDense,
        l: usize,
        t: LoraTarget,
        lora: Option<&DeviceLora>,
        x: &DBuf,
        y: &mut DBuf,
        u: &mut DBuf,
    ) -> Result<()> {
        let (din, dout) = t.dims(&self.model.hp);
        let n = x.len / din;
        fdim(y, "linear output", n * dout)?;
        let dt = layer
            .dt
            .ok_or_else(|| TrainError::Device("layer not loaded".into()))?;
        {
            let mut s = self.scratch();
            let xa = self.act_operand(&mut s, x, n, din)?;
            let w = DMat::new(layer.ptrs[t.index()], dout, din, dt);
            self.gpu.gemm(
                1.0,
                xa,
                w.t(),
                0.0,
                DMat::f32(self.p(y), n, dout),
                Acc::F32,
                None,
            )?;
        }
        if let Some(lo) = lora {
            if let Some((a, b)) = lo.pair(&self.gpu, l, t) {
                let r = lo.config.rank;
                self.gpu.resize(u, n * r)?;
                let g = &self.gpu;
                g.gemm(
                    1.0,
                    DMat::f32(self.p(x), n, din),
                    DMat::f32(a, r, din).t(),
                    0.0,
                    DMat::f32(self.p(u), n, r),
                    Acc::F32,
                    None,
                )?;
                g.gemm(
                    lo.scaling(),
                    DMat::f32(self.p(u), n, r),
                    DMat::f32(b, dout, r).t(),
                    1.0,
                    DMat::f32(self.p(y), n, dout),
                    Acc::F32,
                    None,
                )?;
            }
        }
        Ok(())
    }

    fn linear_bwd(
        &self,
        layer: &DevDense,
        l: usize,
        t: LoraTarget,
        lora: Option<&DeviceLora>,
        x: &DBuf,
        u: &DBuf,
        dy: &DBuf,
        dx: &mut DBuf,
        accumulate: bool,
        du: &mut DBuf,
        grads: &mut DeviceLora,
    ) -> Result<()> {
        let (din, dout) = t.dims(&self.model.hp);
        let n = x.len / din;
        fdim(dx, "linear input gradient", n * din)?;
        let dt = layer
            .dt
            .ok_or_else(|| TrainError::Device("layer not loaded".into()))?;
        let g = &self.gpu;
        {
            let mut s = self.scratch();
            let dya = self.act_operand(&mut s, dy, n, dout)?;
            let w = DMat::new(layer.ptrs[t.index()], dout, din, dt);
            let beta = if accumulate { 1.0 } else { 0.0 };
            g.gemm(
                1.0,
                dya,
                w,
                beta,
                DMat::f32(self.p(dx), n, din),
                Acc::F32,
                None,
            )?;
        }
        let (Some(lo), Some((ga, gb))) = (lora, grads.pair(g, l, t)) else {
            return Ok(());
        };
        let Some((a, b)) = lo.pair(g, l, t) else {
            return Ok(());
        };
        let r = lo.config.rank;
        let s = lo.scaling();
        let f = DMat::f32;
        // dB += s dyᵀ u
        g.gemm(
            s,
            f(self.p(dy), n, dout).t(),
            f(self.p(u), n, r),
            1.0,
            f(gb, dout, r),
            Acc::F32,
            None,
        )?;
        // du = s dy B ; dA += duᵀ x ; dx += du A
        g.resize(du, n * r)?;
        g.gemm(
            s,
            f(self.p(dy), n, dout),
            f(b, dout, r),
            0.0,
            f(self.p(du), n, r),
            Acc::F32,
            None,
        )?;
        g.gemm(
            1.0,
            f(self.p(du), n, r).t(),
            f(self.p(x), n, din),
            1.0,
            f(ga, r, din),
            Acc::F32,
            None,
        )?;
        g.gemm(
            1.0,
            f(self.p(du), n, r),
            f(a, r, din),
            1.0,
            f(self.p(dx), n, din),
            Acc::F32,
            None,
        )
    }

    fn rope(
        &self,
        batch: &CudaBatch,
        l: usize,
        x: &mut DBuf,
        n_heads: usize,
        inverse: bool,
    ) -> Result<()> {
        let hp = &self.model.hp;
        let rows = batch.n;
        fdim(x, "rope input", rows * n_heads * hp.head_dim)?;
        let (cos, sin) = match &batch.swa {
            Some((c, s)) if hp.is_swa(l) => (c, s),
            _ => (&batch.cos, &batch.sin),
        };
        self.gpu.launch_n(
            "rope",
            rows * n_heads * hp.head_dim / 2,
            &[
                Arg::P(self.p(x)),
                Arg::P(self.gpu.ptr(&batch.pos)),
                Arg::P(self.gpu.ptr(cos)),
                Arg::P(self.gpu.ptr(sin)),
                Arg::I(rows as i32),
                Arg::I(n_heads as i32),
                Arg::I(hp.head_dim as i32),
                Arg::I(hp.rope_neox as i32),
                Arg::I(inverse as i32),
            ],
        )
    }

    fn attention_fwd(
        &self,
        batch: &CudaBatch,
        l: usize,
        q: &DBuf,
        k: &DBuf,
        v: &DBuf,
        out: &mut DBuf,
        c: &mut CudaAttnCache,
    ) -> Result<()> {
        let hp = &self.model.hp;
        let (t, hd, ng) = (batch.n, hp.head_dim, hp.n_head_kv);
        let rep = hp.n_head / ng;
        let g = &self.gpu;
        g.resize(&mut c.qg, t * hp.q_dim())?;
        g.resize(&mut c.kg, t * hp.kv_dim())?;
        g.resize(&mut c.vg, t * hp.kv_dim())?;
        g.resize(&mut c.og, t * hp.q_dim())?;
        self.group_major(q, &c.qg, t, ng, rep)?;
        self.group_major(k, &c.kg, t, ng, 1)?;
        self.group_major(v, &c.vg, t, ng, 1)?;
        let (scale, window) = (hp.attn_scale, hp.window(l));
        for &(off, len) in &batch.seqs {
            let qc = self.query_chunk(len);
            g.resize(&mut c.p, hp.n_head * qc * len)?;
            for i0 in (0..len).step_by(qc) {
                let i1 = (i0 + qc).min(len);
                self.scores(c, t, off, i0, i1, scale, window)?;
                // O[i0..i1] = P V[0..i1], per group.
                let cq = (i1 - i0) * rep;
                let og = self.p(&c.og) + f32s(((off + i0) * rep) * hd) as u64;
                g.gemm(
                    1.0,
                    DMat::f32(self.p(&c.p), cq, i1),
                    DMat::f32(self.p(&c.vg) + f32s(off * hd) as u64, i1, hd),
                    0.0,
                    DMat::f32(og, cq, hd),
                    self.attn_acc(),
                    Some(Strides {
                        count: ng,
                        a: cq * i1,
                        b: t * hd,
                        c: t * rep * hd,
                    }),
                )?;
            }
        }
        fdim(out, "attention output", t * hp.q_dim())?;
        self.group_major_back(&c.og, out, t, ng, rep)
    }

    fn attention_bwd(
        &self,
        batch: &CudaBatch,
        l: usize,
        _q: &DBuf,
        _k: &DBuf,
        _v: &DBuf,
        dout: &DBuf,
        c: &mut CudaAttnCache,
        dq: &mut DBuf,
        dk: &mut DBuf,
        dv: &mut DBuf,
    ) -> Result<()> {
        let hp = &self.model.hp;
        let (t, hd, ng) = (batch.n, hp.head_dim, hp.n_head_kv);
        let rep = hp.n_head / ng;
        let g = &self.gpu;
        g.resize(&mut c.dog, t * hp.q_dim())?;
        g.resize(&mut c.dqg, t * hp.q_dim())?;
        g.resize(&mut c.dkg, t * hp.kv_dim())?;
        g.resize(&mut c.dvg, t * hp.kv_dim())?;
        self.group_major(dout, &c.dog, t, ng, rep)?;
        self.fill_zero(&mut c.dkg)?;
        self.fill_zero(&mut c.dvg)?;
        let (scale, window) = (hp.attn_scale, hp.window(l));
        let acc = self.attn_acc();
        let f = DMat::f32;
        for &(off, len) in &batch.seqs {
            let qc = self.query_chunk(len);
            g.resize(&mut c.p, hp.n_head * qc * len)?;
            g.resize(&mut c.dp, hp.n_head * qc * len)?;
            for i0 in (0..len).step_by(qc) {
                let i1 = (i0 + qc).min(len);
                let cq = (i1 - i0) * rep;
                self.scores(c, t, off, i0, i1, scale, window)?;
                let rows_off = f32s((off + i0) * rep * hd) as u64;
                let dog = self.p(&c.dog) + rows_off;
                let qg = self.p(&c.qg) + rows_off;
                let dqg = self.p(&c.dqg) + rows_off;
                let kv_off = f32s(off * hd) as u64;
                let (kg, vg) = (self.p(&c.kg) + kv_off, self.p(&c.vg) + kv_off);
                let (dkg, dvg) = (self.p(&c.dkg) + kv_off, self.p(&c.dvg) + kv_off);
                let (pp, dpp) = (self.p(&c.p), self.p(&c.dp));
                let st = |a: usize, b: usize, c: usize| Some(Strides { count: ng, a, b, c });
                // dV[0..i1] += Pᵀ dO
                g.gemm(
                    1.0,
                    f(pp, cq, i1).t(),
                    f(dog, cq, hd),
                    1.0,
                    f(dvg, i1, hd),
                    acc,
                    st(cq * i1, t * rep * hd, t * hd),
                )?;
                // dP = dO V[0..i1]ᵀ
                g.gemm(
                    1.0,
                    f(dog, cq, hd),
                    f(vg, i1, hd).t(),
                    0.0,
                    f(dpp, cq, i1),
                    acc,
                    st(t * rep * hd, t * hd, cq * i1),
                )?;
                g.launch_rows(
                    "softmax_bwd",
                    ng * cq,
                    &[
                        Arg::P(pp),
                        Arg::P(dpp),
                        Arg::L((ng * cq) as i64),
                        Arg::I(i1 as i32),
                        Arg::I(rep as i32),
                        Arg::I((i1 - i0) as i32),
                        Arg::I(i0 as i32),
                        Arg::I(window as i32),
                        Arg::F(scale),
                    ],
                )?;
                // dQ[i0..i1] = dS K[0..i1] ; dK[0..i1] += dSᵀ Q[i0..i1]
                g.gemm(
                    1.0,
                    f(dpp, cq, i1),
                    f(kg, i1, hd),
                    0.0,
                    f(dqg, cq, hd),
                    acc,
                    st(cq * i1, t * hd, t * rep * hd),
                )?;
                g.gemm(
                    1.0,
                    f(dpp, cq, i1).t(),
                    f(qg, cq, hd),
                    1.0,
                    f(dkg, i1, hd),
                    acc,
                    st(cq * i1, t * rep * hd, t * hd),
                )?;
            }
        }
        fdim(dq, "dq", t * hp.q_dim())?;
        self.group_major_back(&c.dqg, dq, t, ng, rep)?;
        self.group_major_back(&c.dkg, dk, t, ng, 1)?;
        self.group_major_back(&c.dvg, dv, t, ng, 1)
    }

    fn attn_cache_bytes(&self, c: &CudaAttnCache) -> usize {
        [
            &c.qg, &c.kg, &c.vg, &c.og, &c.p, &c.dp, &c.dog, &c.dqg, &c.dkg, &c.dvg,
        ]
        .iter()
        .map(|b| b.capacity() * 4)
        .sum()
    }

    fn glu_fwd(&self, act: FfnAct, g: &DBuf, u: &DBuf, out: &mut DBuf) -> Result<()> {
        fdim(out, "gated activation output", g.len)?;
        self.gpu.launch_n(
            glu_kernel(act, false),
            g.len,
            &[
                Arg::P(self.p(g)),
                Arg::P(self.p(u)),
                Arg::P(self.p(out)),
                Arg::L(g.len as i64),
            ],
        )
    }

    fn glu_bwd(
        &self,
        act: FfnAct,
        g: &DBuf,
        u: &DBuf,
        dout: &DBuf,
        dg: &mut DBuf,
        du: &mut DBuf,
    ) -> Result<()> {
        fdim(dg, "gated activation gradient", g.len)?;
        fdim(du, "gated activation gradient", g.len)?;
        self.gpu.launch_n(
            glu_kernel(act, true),
            g.len,
            &[
                Arg::P(self.p(g)),
                Arg::P(self.p(u)),
                Arg::P(self.p(dout)),
                Arg::P(self.p(dg)),
                Arg::P(self.p(du)),
                Arg::L(g.len as i64),
            ],
        )
    }

    fn head_fwd(
        &self,
        batch: &CudaBatch,
        xf: &DBuf,
        logp: &mut [f32],
        lse: &mut DBuf,
        argmax: Option<&mut [u32]>,
        entropy: Option<&mut [f32]>,
    ) -> Result<HeadScratch> {
        let hp = &self.model.hp;
        let (d, v, r) = (hp.n_embd, hp.n_vocab, batch.n_scored);
        if logp.len() != r || lse.len != r || entropy.as_ref().is_some_and(|e| e.len() != r) {
            return Err(TrainError::shape("head outputs", r, (logp.len(), lse.len)));
        }
        if r == 0 {
            return Ok(HeadScratch::default());
        }
        let g = &self.gpu;
        let mut s = self.scratch();
        let s = &mut *s;
        let xs = self.gather_scored(s, batch, xf)?;
        for b in [&mut s.mx, &mut s.tgt, &mut s.best, &mut s.logp, &mut s.ent] {
            g.resize(b, r)?;
        }
        if s.sum.as_ref().map_or(0, |m| m.len()) < r {
            s.sum = Some(g.zeros::<f64>(r)?);
            s.zsum = Some(g.zeros::<f64>(r)?);
            s.best_id = Some(g.zeros::<u32>(r)?);
        }
        let (sum, zsum_all, best_id) = match (&s.sum, &s.zsum, &s.best_id) {
            (Some(a), Some(z), Some(b)) => (g.ptr(a), g.ptr(z), g.ptr(b)),
            _ => return Err(TrainError::Device("head statistics".into())),
        };
        // The entropy's running sum only when asked for (a null pointer skips it).
        let zsum = if entropy.is_some() { zsum_all } else { 0 };
        g.launch_n(
            "lse_init",
            r,
            &[
                Arg::P(self.p(&s.mx)),
                Arg::P(sum),
                Arg::P(self.p(&s.best)),
                Arg::P(zsum),
                Arg::I(r as i32),
            ],
        )?;
        let (rc, vc) = (self.row_chunk.clamp(1, r), self.vocab_chunk.clamp(1, v));
        let w = self.head_weight();
        let el = self.elem();
        let wp = s.head_w.ensure(g, vc * d * el)?;
        g.resize(&mut s.head_logits, rc * vc)?;
        for v0 in (0..v).step_by(vc) {
            let cv = vc.min(v - v0);
            self.dequant(w, v0, cv, wp, self.dt())?;
            for r0 in (0..r).step_by(rc) {
                let cr = rc.min(r - r0);
                let lg = self.p(&s.head_logits);
                g.gemm(
                    1.0,
                    xs.rows_from(r0, cr, d, el),
                    DMat::new(wp, cv, d, self.dt()).t(),
                    0.0,
                    DMat::f32(lg, cr, cv),
                    Acc::F32,
                    None,
                )?;
                g.launch_rows(
                    "lse_update",
                    cr,
                    &[
                        Arg::P(lg),
                        Arg::I(cr as i32),
                        Arg::I(cv as i32),
                        Arg::I(v0 as i32),
                        Arg::I(r0 as i32),
                        Arg::P(g.ptr(&batch.targets)),
                        Arg::P(self.p(&s.mx)),
                        Arg::P(sum),
                        Arg::P(self.p(&s.tgt)),
                        Arg::P(self.p(&s.best)),
                        Arg::P(best_id),
                        Arg::P(zsum),
                    ],
                )?;
            }
        }
        g.launch_n(
            "lse_finish",
            r,
            &[
                Arg::P(self.p(&s.mx)),
                Arg::P(sum),
                Arg::P(self.p(&s.tgt)),
                Arg::P(zsum),
                Arg::P(self.p(lse)),
                Arg::P(self.p(&s.logp)),
                Arg::P(self.p(&s.ent)),
                Arg::I(r as i32),
            ],
        )?;
        let host = self.to_host(&s.logp)?;
        logp.copy_from_slice(&host);
        if let Some(e) = entropy {
            e.copy_from_slice(&self.to_host(&s.ent)?);
        }
        if let (Some(a), Some(ids)) = (argmax, &s.best_id) {
            a.copy_from_slice(&g.download(ids, r)?);
        }
        Ok(HeadScratch {
            weight: s.head_w.bytes(),
            logits: s.head_logits.capacity() * 4 + s.head_x.bytes(),
        })
    }

    fn head_bwd(
        &self,
        batch: &CudaBatch,
        xf: &DBuf,
        lse: &DBuf,
        dlogp: &[f32],
        dxf: &mut DBuf,
    ) -> Result<()> {
        let hp = &self.model.hp;
        let (d, v, r) = (hp.n_embd, hp.n_vocab, batch.n_scored);
        if dlogp.len() != r || lse.len != r {
            return Err(TrainError::shape(
                "head gradient",
                r,
                (dlogp.len(), lse.len),
            ));
        }
        if r == 0 {
            return Ok(());
        }
        let g = &self.gpu;
        let mut s = self.scratch();
        let s = &mut *s;
        let xs = self.gather_scored(s, batch, xf)?;
        g.resize(&mut s.dlogp, r)?;
        if let Some(m) = &mut s.dlogp.mem {
            g.write(dlogp, m)?;
        }
        g.resize(&mut s.dxs, r * d)?;
        self.fill_zero(&mut s.dxs)?;
        let (rc, vc) = (self.row_chunk.clamp(1, r), self.vocab_chunk.clamp(1, v));
        let w = self.head_weight();
        let el = self.elem();
        let dt = self.dt();
        let wp = s.head_w.ensure(g, vc * d * el)?;
        g.resize(&mut s.head_logits, rc * vc)?;
        let gp = s.head_g.ensure(g, rc * vc * el)?;
        for v0 in (0..v).step_by(vc) {
            let cv = vc.min(v - v0);
            self.dequant(w, v0, cv, wp, dt)?;
            for r0 in (0..r).step_by(rc) {
                let cr = rc.min(r - r0);
                let lg = self.p(&s.head_logits);
                g.gemm(
                    1.0,
                    xs.rows_from(r0, cr, d, el),
                    DMat::new(wp, cv, d, dt).t(),
                    0.0,
                    DMat::f32(lg, cr, cv),
                    Acc::F32,
                    None,
                )?;
                // ∂logp/∂logits = e_target − softmax, times dlogp; in the product type.
                let (out_f32, out_bf16, gmat) = match dt {
                    Dt::F32 => (lg, 0, DMat::f32(lg, cr, cv)),
                    Dt::Bf16 => (0, gp, DMat::bf16(gp, cr, cv)),
                };
                g.launch_n(
                    "head_grad",
                    cr * cv,
                    &[
                        Arg::P(lg),
                        Arg::I(cr as i32),
                        Arg::I(cv as i32),
                        Arg::I(v0 as i32),
                        Arg::I(r0 as i32),
                        Arg::P(g.ptr(&batch.targets)),
                        Arg::P(self.p(&s.dlogp)),
                        Arg::P(self.p(lse)),
                        Arg::P(out_f32),
                        Arg::P(out_bf16),
                    ],
                )?;
                g.gemm(
                    1.0,
                    gmat,
                    DMat::new(wp, cv, d, dt),
                    1.0,
                    DMat::f32(self.p(&s.dxs) + f32s(r0 * d) as u64, cr, d),
                    Acc::F32,
                    None,
                )?;
            }
        }
        fdim(dxf, "head input gradient", batch.n * d)?;
        g.launch_n(
            "scatter_add_rows",
            r * d,
            &[
                Arg::P(self.p(dxf)),
                Arg::P(g.ptr(&batch.rows)),
                Arg::P(self.p(&s.dxs)),
                Arg::I(r as i32),
                Arg::I(d as i32),
            ],
        )
    }
}

/// Gathered scored rows in the product type.
struct Gathered {
    ptr: u64,
    dt: Dt,
}

impl Gathered {
    /// Rows `r0 .. r0 + n` as a `[n, d]` matrix (`el` bytes per element).
    fn rows_from(&self, r0: usize, n: usize, d: usize, el: usize) -> DMat {
        DMat::new(self.ptr + (r0 * d * el) as u64, n, d, self.dt)
    }
}

impl CudaBackend {
    /// Expands all of `t` into `dst` as f32 (diagnostics).
    pub(crate) fn dequant_f32_into(&self, t: &DevTensor, dst: &DBuf) -> Result<()> {
        fdim(dst, "dequantized tensor", t.rows * t.cols)?;
        self.dequant(t, 0, t.rows, self.p(dst), Dt::F32)
    }

    fn norm(&self, w: Norm) -> Result<&CudaSlice<f32>> {
        let d = &self.dev;
        let v = match w {
            Norm::Attn(l) => Some(&d.layers[l].attn_norm),
            Norm::Ffn(l) => Some(&d.layers[l].ffn_norm),
            Norm::Output => Some(&d.output_norm),
            Norm::QHead(l) => d.layers[l].q_norm.as_ref(),
            Norm::KHead(l) => d.layers[l].k_norm.as_ref(),
            Norm::AttnPost(l) => d.layers[l].attn_post_norm.as_ref(),
            Norm::FfnPost(l) => d.layers[l].ffn_post_norm.as_ref(),
        };
        v.ok_or_else(|| TrainError::config(format!("the model has no {} weights", w.name())))
    }

    fn gather_scored(&self, s: &mut Scratch, batch: &CudaBatch, xf: &DBuf) -> Result<Gathered> {
        let d = self.model.hp.n_embd;
        let r = batch.n_scored;
        let dt = self.dt();
        let ptr = s.head_x.ensure(&self.gpu, r * d * self.elem())?;
        let k = match dt {
            Dt::Bf16 => "gather_rows_bf16",
            Dt::F32 => "gather_rows_f32",
        };
        self.gpu.launch_n(
            k,
            r * d,
            &[
                Arg::P(self.p(xf)),
                Arg::P(self.gpu.ptr(&batch.rows)),
                Arg::P(ptr),
                Arg::I(r as i32),
                Arg::I(d as i32),
            ],
        )?;
        Ok(Gathered { ptr, dt })
    }

    /// Token-major `[t, ng·rep·hd]` → group-major `[ng][t][rep][hd]`.
    fn group_major(&self, x: &DBuf, y: &DBuf, t: usize, ng: usize, rep: usize) -> Result<()> {
        let hd = self.model.hp.head_dim;
        fdim(x, "group-major input", t * ng * rep * hd)?;
        self.gpu.launch_n(
            "to_group_major",
            t * ng * rep * hd,
            &[
                Arg::P(self.p(x)),
                Arg::P(self.p(y)),
                Arg::I(t as i32),
                Arg::I(ng as i32),
                Arg::I(rep as i32),
                Arg::I(hd as i32),
            ],
        )
    }

    /// Group-major back to token-major.
    fn group_major_back(
        &self,
        y: &DBuf,
        x: &mut DBuf,
        t: usize,
        ng: usize,
        rep: usize,
    ) -> Result<()> {
        let hd = self.model.hp.head_dim;
        fdim(x, "token-major output", t * ng * rep * hd)?;
        self.gpu.launch_n(
            "from_group_major",
            t * ng * rep * hd,
            &[
                Arg::P(self.p(y)),
                Arg::P(self.p(x)),
                Arg::I(t as i32),
                Arg::I(ng as i32),
                Arg::I(rep as i32),
                Arg::I(hd as i32),
            ],
        )
    }

    /// Causal probabilities of query rows `[i0, i1)` of the sequence at `off` over keys
    /// `[0, i1)` (0 outside each row's window; `window` 0 = none), every group at once, into
    /// `c.p` (`[ng][(i1 − i0)·rep][i1]`).
    #[allow(clippy::too_many_arguments)]
    fn scores(
        &self,
        c: &CudaAttnCache,
        t: usize,
        off: usize,
        i0: usize,
        i1: usize,
        scale: f32,
        window: usize,
    ) -> Result<()> {
        let hp = &self.model.hp;
        let (hd, ng) = (hp.head_dim, hp.n_head_kv);
        let rep = hp.n_head / ng;
        let cq = (i1 - i0) * rep;
        let g = &self.gpu;
        let qg = self.p(&c.qg) + f32s((off + i0) * rep * hd) as u64;
        let kg = self.p(&c.kg) + f32s(off * hd) as u64;
        g.gemm(
            scale,
            DMat::f32(qg, cq, hd),
            DMat::f32(kg, i1, hd).t(),
            0.0,
            DMat::f32(self.p(&c.p), cq, i1),
            self.attn_acc(),
            Some(Strides {
                count: ng,
                a: t * rep * hd,
                b: t * hd,
                c: cq * i1,
            }),
        )?;
        g.launch_rows(
            "causal_softmax",
            ng * cq,
            &[
                Arg::P(self.p(&c.p)),
                Arg::L((ng * cq) as i64),
                Arg::I(i1 as i32),
                Arg::I(rep as i32),
                Arg::I((i1 - i0) as i32),
                Arg::I(i0 as i32),
                Arg::I(window as i32),
            ],
        )
    }
}

/// The kernel of a gated activation (forward, or backward when `bwd`).
fn glu_kernel(act: FfnAct, bwd: bool) -> &'static str {
    match (act, bwd) {
        (FfnAct::Silu, false) => "swiglu_fwd",
        (FfnAct::Silu, true) => "swiglu_bwd",
        (FfnAct::GeluTanh, false) => "geglu_fwd",
        (FfnAct::GeluTanh, true) => "geglu_bwd",
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn ok<T: Send + Sync>() {}
    ok::<CudaBackend>();
}
