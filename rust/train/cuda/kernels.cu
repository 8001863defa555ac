// NVRTC kernels of fmr's CUDA trainer. Compiled at run time (and, for every target
// architecture, by a test with no GPU). No headers: f16/bf16 conversions are written here.
//
// Conventions: one thread per element (grid-stride loops) or one warp per row; row-major
// buffers; `long long` element counts; bf16 is stored as `unsigned short`.
// The module is compiled with --fmad=false so that weight dequantization rounds exactly as
// ggml's C code does on the host.

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;

#define WARP 32
#define FULL_MASK 0xffffffffu
#define NEG_INF __int_as_float(0xff800000)

// ggml type ids (ggml.h): the formats this file decodes.
#define T_F32 0
#define T_F16 1
#define T_Q4_0 2
#define T_Q4_1 3
#define T_Q5_0 6
#define T_Q5_1 7
#define T_Q8_0 8
#define T_Q4_K 12
#define T_Q5_K 13
#define T_Q6_K 14
#define T_BF16 30

__device__ __forceinline__ float f16_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ float bf16_to_f32(u16 h) {
    return __uint_as_float(((u32)h) << 16);
}

// Round to nearest even, NaN kept quiet.
__device__ __forceinline__ u16 f32_to_bf16(float f) {
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (u16)(u >> 16);
}

__device__ __forceinline__ u16 rd16(const u8* p) {
    return (u16)(p[0] | (p[1] << 8));
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// Scale and min of sub-block j of a Q4_K/Q5_K block (ggml's get_scale_min_k4).
__device__ __forceinline__ void scale_min_k4(int j, const u8* q, int* d, int* m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Element j of a tensor of type `ty` stored at `base` (rows of whole blocks, so the flat
// element index maps to block j / block_size). The arithmetic follows ggml's
// dequantize_row_* term by term.
__device__ float decode(int ty, const u8* base, long long j) {
    switch (ty) {
    case T_F32:
        return ((const float*)base)[j];
    case T_F16:
        return f16_to_f32(rd16(base + 2 * j));
    case T_BF16:
        return bf16_to_f32(rd16(base + 2 * j));
    case T_Q4_0: {
        const u8* b = base + (j / 32) * 18;
        int i = (int)(j % 32);
        float d = f16_to_f32(rd16(b));
        int q = i < 16 ? (b[2 + i] & 0x0F) - 8 : (b[2 + i - 16] >> 4) - 8;
        return q * d;
    }
    case T_Q4_1: {
        const u8* b = base + (j / 32) * 20;
        int i = (int)(j % 32);
        float d = f16_to_f32(rd16(b));
        float m = f16_to_f32(rd16(b + 2));
        int q = i < 16 ? (b[4 + i] & 0x0F) : (b[4 + i - 16] >> 4);
        return q * d + m;
    }
    case T_Q5_0: {
        const u8* b = base + (j / 32) * 22;
        int i = (int)(j % 32);
        float d = f16_to_f32(rd16(b));
        u32 qh = (u32)b[2] | ((u32)b[3] << 8) | ((u32)b[4] << 16) | ((u32)b[5] << 24);
        int lo = i < 16 ? (b[6 + i] & 0x0F) : (b[6 + i - 16] >> 4);
        int q = (lo | (((qh >> i) & 1u) << 4)) - 16;
        return q * d;
    }
    case T_Q5_1: {
        const u8* b = base + (j / 32) * 24;
        int i = (int)(j % 32);
        float d = f16_to_f32(rd16(b));
        float m = f16_to_f32(rd16(b + 2));
        u32 qh = (u32)b[4] | ((u32)b[5] << 8) | ((u32)b[6] << 16) | ((u32)b[7] << 24);
        int lo = i < 16 ? (b[8 + i] & 0x0F) : (b[8 + i - 16] >> 4);
        int q = lo | (((qh >> i) & 1u) << 4);
        return q * d + m;
    }
    case T_Q8_0: {
        const u8* b = base + (j / 32) * 34;
        int i = (int)(j % 32);
        float d = f16_to_f32(rd16(b));
        return ((const i8*)(b + 2))[i] * d;
    }
    case T_Q4_K: {
        const u8* b = base + (j / 256) * 144;
        int i = (int)(j % 256);
        float d = f16_to_f32(rd16(b));
        float dmin = f16_to_f32(rd16(b + 2));
        const u8* scales = b + 4;
        const u8* qs = b + 16;
        int chunk = i / 64, w = i % 64, hi = w >= 32, l = w % 32;
        int sc, mn;
        scale_min_k4(2 * chunk + hi, scales, &sc, &mn);
        float d1 = d * sc;
        float m1 = dmin * mn;
        u8 q = qs[chunk * 32 + l];
        int nib = hi ? (q >> 4) : (q & 0xF);
        return d1 * nib - m1;
    }
    case T_Q5_K: {
        const u8* b = base + (j / 256) * 176;
        int i = (int)(j % 256);
        float d = f16_to_f32(rd16(b));
        float dmin = f16_to_f32(rd16(b + 2));
        const u8* scales = b + 4;
        const u8* qh = b + 16;
        const u8* qs = b + 48;
        int chunk = i / 64, w = i % 64, hi = w >= 32, l = w % 32;
        int sc, mn;
        scale_min_k4(2 * chunk + hi, scales, &sc, &mn);
        float d1 = d * sc;
        float m1 = dmin * mn;
        u8 q = qs[chunk * 32 + l];
        int nib = hi ? (q >> 4) : (q & 0xF);
        int hbit = (qh[l] >> (2 * chunk + hi)) & 1;
        return d1 * (nib + (hbit ? 16 : 0)) - m1;
    }
    case T_Q6_K: {
        const u8* b = base + (j / 256) * 210;
        int i = (int)(j % 256);
        const u8* ql = b;
        const u8* qh = b + 128;
        const i8* sc = (const i8*)(b + 192);
        float d = f16_to_f32(rd16(b + 208));
        int n = i / 128, w = i % 128, part = w / 32, l = w % 32;
        const u8* qln = ql + n * 64;
        u8 lo = (part & 1) ? qln[l + 32] : qln[l];
        int nib = (part & 2) ? (lo >> 4) : (lo & 0xF);
        int h2 = (qh[n * 32 + l] >> (2 * part)) & 3;
        int q = (int)(i8)((nib | (h2 << 4)) - 32);
        return d * sc[n * 8 + l / 16 + 2 * part] * q;
    }
    default:
        return __int_as_float(0x7fc00000);
    }
}

extern "C" __global__ void dequant_f32(const u8* src, float* dst, long long n, int ty) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dst[i] = decode(ty, src, i);
}

extern "C" __global__ void dequant_bf16(const u8* src, u16* dst, long long n, int ty) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dst[i] = f32_to_bf16(decode(ty, src, i));
}

// out[t, :] = row tokens[t] of the embedding matrix (`row_bytes` bytes per row of d values).
extern "C" __global__ void embed(const u8* w, int ty, long long row_bytes, const u32* tokens,
                                 float* out, int n_tok, int d) {
    long long n = (long long)n_tok * d;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        long long t = i / d;
        int c = (int)(i % d);
        out[i] = decode(ty, w + (long long)tokens[t] * row_bytes, c);
    }
}

extern "C" __global__ void to_bf16(const float* x, u16* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        y[i] = f32_to_bf16(x[i]);
}

extern "C" __global__ void from_bf16(const u16* x, float* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        y[i] = bf16_to_f32(x[i]);
}

extern "C" __global__ void add_inplace(float* dst, const float* src, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dst[i] += src[i];
}

extern "C" __global__ void add_bias(float* x, const float* b, long long rows, int width) {
    long long n = rows * width;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        x[i] += b[i % width];
}

// One warp per row: y = x * inv_rms(x) * w, inv[row] = 1/rms.
extern "C" __global__ void rmsnorm_fwd(const float* x, const float* w, float* y, float* inv,
                                       int rows, int d, float eps) {
    int row = (blockIdx.x * blockDim.x + threadIdx.x) / WARP;
    int lane = threadIdx.x % WARP;
    if (row >= rows) return;
    const float* xr = x + (long long)row * d;
    float* yr = y + (long long)row * d;
    double ss = 0.0;
    for (int c = lane; c < d; c += WARP) ss += (double)(xr[c] * xr[c]);
    ss = warp_sum_d(ss);
    float mean = (float)(ss / d);
    float r = 1.0f / sqrtf(mean + eps);
    for (int c = lane; c < d; c += WARP) yr[c] = xr[c] * r * w[c];
    if (lane == 0) inv[row] = r;
}

// One warp per row: dx += r (dy w - x r mean(dy w x r)).
extern "C" __global__ void rmsnorm_bwd(const float* x, const float* w, const float* inv,
                                       const float* dy, float* dx, int rows, int d) {
    int row = (blockIdx.x * blockDim.x + threadIdx.x) / WARP;
    int lane = threadIdx.x % WARP;
    if (row >= rows) return;
    long long o = (long long)row * d;
    float r = inv[row];
    float dot = 0.f;
    for (int c = lane; c < d; c += WARP) dot += dy[o + c] * w[c] * x[o + c] * r;
    dot = warp_sum(dot);
    float mean = dot / d;
    for (int c = lane; c < d; c += WARP)
        dx[o + c] += r * (dy[o + c] * w[c] - x[o + c] * r * mean);
}

// Rotates pairs of every head in place. Normal layout: (2i, 2i+1); NeoX: (i, i + hd/2).
// cs, sn: [max_pos, hd/2] tables; one thread per (row, head, pair).
extern "C" __global__ void rope(float* x, const u32* pos, const float* cs, const float* sn,
                                int rows, int n_heads, int hd, int neox, int inverse) {
    int half = hd / 2;
    long long n = (long long)rows * n_heads * half;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)gridDim.x * blockDim.x) {
        int i = (int)(idx % half);
        long long rh = idx / half;
        int h = (int)(rh % n_heads);
        long long row = rh / n_heads;
        float* v = x + row * (long long)n_heads * hd + (long long)h * hd;
        int i0 = neox ? i : 2 * i;
        int i1 = neox ? i + half : 2 * i + 1;
        long long p = pos[row];
        float c = cs[p * half + i];
        float s = sn[p * half + i];
        if (inverse) s = -s;
        float a = v[i0], b = v[i1];
        v[i0] = a * c - b * s;
        v[i1] = a * s + b * c;
    }
}

extern "C" __global__ void swiglu_fwd(const float* g, const float* u, float* out, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float gv = g[i];
        out[i] = gv / (1.0f + expf(-gv)) * u[i];
    }
}

extern "C" __global__ void swiglu_bwd(const float* g, const float* u, const float* dout,
                                      float* dg, float* du, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float s = 1.0f / (1.0f + expf(-g[i]));
        float silu = g[i] * s;
        du[i] = dout[i] * silu;
        dg[i] = dout[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    }
}

// GeGLU (tanh approximation, as gemma): out = gelu(g) * u. For architectures that use it.
extern "C" __global__ void geglu_fwd(const float* g, const float* u, float* out, long long n) {
    const float k = 0.7978845608028654f; // sqrt(2/pi)
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float x = g[i];
        float t = tanhf(k * (x + 0.044715f * x * x * x));
        out[i] = 0.5f * x * (1.0f + t) * u[i];
    }
}

extern "C" __global__ void geglu_bwd(const float* g, const float* u, const float* dout,
                                     float* dg, float* du, long long n) {
    const float k = 0.7978845608028654f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float x = g[i];
        float t = tanhf(k * (x + 0.044715f * x * x * x));
        float gelu = 0.5f * x * (1.0f + t);
        float dgelu = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
        du[i] = dout[i] * gelu;
        dg[i] = dout[i] * u[i] * dgelu;
    }
}

// [T, n_grp * rep * hd] token-major  <->  [n_grp][T][rep][hd] group-major (rows of a group's
// query heads contiguous per token). K and V use rep = 1.
extern "C" __global__ void to_group_major(const float* x, float* y, int t, int n_grp, int rep,
                                          int hd) {
    long long n = (long long)t * n_grp * rep * hd;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        int c = (int)(i % hd);
        long long rest = i / hd;
        int r = (int)(rest % rep);
        rest /= rep;
        int g = (int)(rest % n_grp);
        long long tok = rest / n_grp;
        y[(((long long)g * t + tok) * rep + r) * hd + c] = x[i];
    }
}

extern "C" __global__ void from_group_major(const float* y, float* x, int t, int n_grp, int rep,
                                            int hd) {
    long long n = (long long)t * n_grp * rep * hd;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        int c = (int)(i % hd);
        long long rest = i / hd;
        int r = (int)(rest % rep);
        rest /= rep;
        int g = (int)(rest % n_grp);
        long long tok = rest / n_grp;
        x[i] = y[(((long long)g * t + tok) * rep + r) * hd + c];
    }
}

// Causal softmax in place over score rows of a query chunk. Rows are (group, query i, head r)
// with i in [i0, i0 + qc) relative to the sequence start: row index ((g * qc) + (i - i0)) * rep
// + r; each row has nk = i0 + qc keys; query i sees keys lo..=i with lo = max(0, i + 1 − window)
// (window 0: lo = 0); the rest are set to 0. One warp per row.
extern "C" __global__ void causal_softmax(float* s, long long rows, int nk, int rep, int qc,
                                          int i0, int window) {
    long long row = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / WARP;
    int lane = threadIdx.x % WARP;
    if (row >= rows) return;
    int i = i0 + (int)((row / rep) % qc);
    int valid = i + 1;
    int lo = window > 0 && valid > window ? valid - window : 0;
    float* p = s + row * nk;
    float m = NEG_INF;
    for (int c = lo + lane; c < valid; c += WARP) m = fmaxf(m, p[c]);
    m = warp_max(m);
    float sum = 0.f;
    for (int c = lo + lane; c < valid; c += WARP) {
        float e = expf(p[c] - m);
        p[c] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    float inv = 1.0f / sum;
    for (int c = lane; c < nk; c += WARP) p[c] = c >= lo && c < valid ? p[c] * inv : 0.0f;
}

// dS = P ∘ (dP − rowsum(P ∘ dP)) · scale over each row's visible keys (0 elsewhere), in place
// in dp (rows as in causal_softmax).
extern "C" __global__ void softmax_bwd(const float* p, float* dp, long long rows, int nk, int rep,
                                       int qc, int i0, int window, float scale) {
    long long row = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / WARP;
    int lane = threadIdx.x % WARP;
    if (row >= rows) return;
    int i = i0 + (int)((row / rep) % qc);
    int valid = i + 1;
    int lo = window > 0 && valid > window ? valid - window : 0;
    const float* pr = p + row * nk;
    float* dr = dp + row * nk;
    float dot = 0.f;
    for (int c = lo + lane; c < valid; c += WARP) dot += pr[c] * dr[c];
    dot = warp_sum(dot);
    for (int c = lane; c < nk; c += WARP)
        dr[c] = c >= lo && c < valid ? pr[c] * (dr[c] - dot) * scale : 0.0f;
}

// Gathers rows of x (`[*, d]`) listed in `rows` into y (`[n, d]`), as f32 or bf16.
extern "C" __global__ void gather_rows_f32(const float* x, const u32* rows, float* y, int n,
                                           int d) {
    long long total = (long long)n * d;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x)
        y[i] = x[(long long)rows[i / d] * d + i % d];
}

extern "C" __global__ void gather_rows_bf16(const float* x, const u32* rows, u16* y, int n,
                                            int d) {
    long long total = (long long)n * d;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x)
        y[i] = f32_to_bf16(x[(long long)rows[i / d] * d + i % d]);
}

// x[rows[i], :] += y[i, :] (rows distinct).
extern "C" __global__ void scatter_add_rows(float* x, const u32* rows, const float* y, int n,
                                            int d) {
    long long total = (long long)n * d;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x)
        x[(long long)rows[i / d] * d + i % d] += y[i];
}

// Folds a chunk of logits (`[cr, cv]`, vocabulary ids v0 ..) into running per-row statistics
// (max, sum of exp in f64, target logit, argmax). One warp per row; rows r0 .. r0 + cr of the
// statistics arrays.
extern "C" __global__ void lse_update(const float* logits, int cr, int cv, int v0, int r0,
                                      const u32* targets, float* mx, double* sum, float* tgt,
                                      float* best, u32* best_id, double* zsum) {
    int row = (blockIdx.x * blockDim.x + threadIdx.x) / WARP;
    int lane = threadIdx.x % WARP;
    if (row >= cr) return;
    const float* lg = logits + (long long)row * cv;
    float m = NEG_INF;
    float bv = NEG_INF;
    int bi = 0;
    for (int c = lane; c < cv; c += WARP) {
        float x = lg[c];
        m = fmaxf(m, x);
        if (x > bv) {
            bv = x;
            bi = c;
        }
    }
    m = warp_max(m);
    for (int o = WARP / 2; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(FULL_MASK, bv, o);
        int oi = __shfl_xor_sync(FULL_MASK, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) {
            bv = ov;
            bi = oi;
        }
    }
    double s = 0.0, z = 0.0;
    for (int c = lane; c < cv; c += WARP) {
        double e = (double)expf(lg[c] - m);
        s += e;
        z += e * (double)lg[c];
    }
    s = warp_sum_d(s);
    z = warp_sum_d(z);
    if (lane == 0) {
        int r = r0 + row;
        float M = mx[r];
        if (m > M) {
            double f = exp((double)(M - m));
            sum[r] = sum[r] * f + s;
            if (zsum) zsum[r] = zsum[r] * f + z;
            mx[r] = m;
        } else {
            double f = exp((double)(m - M));
            sum[r] += s * f;
            if (zsum) zsum[r] += z * f;
        }
        int t = (int)targets[r] - v0;
        if (t >= 0 && t < cv) tgt[r] = lg[t];
        if (bv > best[r]) {
            best[r] = bv;
            best_id[r] = (u32)(v0 + bi);
        }
    }
}

extern "C" __global__ void lse_init(float* mx, double* sum, float* best, double* zsum, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        mx[i] = NEG_INF;
        sum[i] = 0.0;
        best[i] = NEG_INF;
        if (zsum) zsum[i] = 0.0;
    }
}

// lse, log-prob of the target and, with zsum, the entropy lse − Σ p·logit of each row.
extern "C" __global__ void lse_finish(const float* mx, const double* sum, const float* tgt,
                                      const double* zsum, float* lse, float* logp, float* ent,
                                      int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        double ls = log(sum[i]);
        float s = mx[i] + (float)ls;
        lse[i] = s;
        logp[i] = tgt[i] - s;
        if (zsum) ent[i] = (float)((double)mx[i] + ls - zsum[i] / sum[i]);
    }
}

// Gradient of dlogp · logp w.r.t. a logit chunk: g (e_target − exp(logit − lse)), written as
// f32 into `out` (may alias `logits`) or, with out_bf16, as bf16.
extern "C" __global__ void head_grad(const float* logits, int cr, int cv, int v0, int r0,
                                     const u32* targets, const float* dlogp, const float* lse,
                                     float* out, u16* out_bf16) {
    long long n = (long long)cr * cv;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        int row = (int)(i / cv);
        int c = (int)(i % cv);
        int r = r0 + row;
        float g = dlogp[r];
        float v = -g * expf(logits[i] - lse[r]);
        if ((int)targets[r] - v0 == c) v += g;
        if (out_bf16) out_bf16[i] = f32_to_bf16(v);
        else out[i] = v;
    }
}

// AdamW on one tensor, the host optimizer's arithmetic: g = grad · gs;
// m = b1 m + (1 − b1) g; v = b2 v + (1 − b2) g²; p −= lr·wd·p; p −= step · m / (√v / bc2 + eps).
extern "C" __global__ void adamw(float* p, const float* grad, float* m, float* v, long long n,
                                 float gs, float b1, float b2, float lr, float wd,
                                 float step_size, float bc2_sqrt, float eps) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float gi = grad[i] * gs;
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float pi = p[i];
        pi -= lr * wd * pi;
        pi -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
        p[i] = pi;
    }
}

// out[0] += Σ x² (f64), for the global gradient norm. Block-level reduction, one atomic each.
extern "C" __global__ void sum_squares(const float* x, long long n, double* out) {
    __shared__ double part[32];
    double s = 0.0;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        s += (double)x[i] * (double)x[i];
    s = warp_sum_d(s);
    int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
    if (lane == 0) part[w] = s;
    __syncthreads();
    if (w == 0) {
        s = lane < (int)(blockDim.x / WARP) ? part[lane] : 0.0;
        s = warp_sum_d(s);
        if (lane == 0) atomicAdd(out, s);
    }
}

// Per-token GRPO loss and gradient (the host's grpo_loss_from_logprobs, token by token):
// rho = exp(logp − old); obj = min(rho A, clip(rho, lo, hi) A); kl = e^(ref−logp) − (ref−logp) − 1;
// loss = −(obj − beta kl) · norm; dlogp = −(dobj − beta dkl) · norm. `old`/`ref` may be null
// (old = logp, no KL). Per-token advantage `adv` and normalisation `norm`, mask 0/1 in `mask`.
extern "C" __global__ void grpo_token(const float* logp, const float* old, const float* ref,
                                      const float* adv, const float* norm, const u8* mask,
                                      int n, float lo, float hi, float beta, double* loss,
                                      double* kl_sum, u32* clipped, float* dlogp) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    if (!mask[i]) {
        dlogp[i] = 0.0f;
        return;
    }
    double l = logp[i];
    double o = old ? (double)old[i] : l;
    double a = adv[i];
    double rho = exp(l - o);
    double c = fmin(fmax(rho, (double)lo), (double)hi);
    double obj, dobj;
    if (rho * a <= c * a) {
        obj = rho * a;
        dobj = rho * a;
    } else {
        atomicAdd(clipped, 1u);
        obj = c * a;
        dobj = (rho >= lo && rho <= hi) ? rho * a : 0.0;
    }
    double kl = 0.0, dkl = 0.0;
    if (ref && beta > 0.0f) {
        double d = (double)ref[i] - l;
        kl = exp(d) - d - 1.0;
        dkl = 1.0 - exp(d);
    }
    atomicAdd(kl_sum, kl);
    atomicAdd(loss, -(obj - beta * kl) * norm[i]);
    dlogp[i] = (float)(-(dobj - beta * dkl) * norm[i]);
}

// Per-token SFT loss: mean NLL over n tokens; dlogp = −1/n.
extern "C" __global__ void sft_token(const float* logp, int n, double* loss, float* dlogp) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    atomicAdd(loss, -(double)logp[i] / n);
    dlogp[i] = -1.0f / n;
}

extern "C" __global__ void scale_inplace(float* x, long long n, float s) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        x[i] *= s;
}

extern "C" __global__ void fill_f32(float* x, long long n, float v) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        x[i] = v;
}

extern "C" __global__ void copy_f32(const float* src, float* dst, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dst[i] = src[i];
}
