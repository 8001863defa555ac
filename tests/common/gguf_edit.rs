//! A byte-level map of a GGUF file (version 2/3: header, key/values, tensor infos, data) for
//! writing corrupt copies of a real model in tests. It reads only what it needs to locate
//! fields; it is not a GGUF reader.

use std::collections::HashMap;

/// Where things are in a GGUF file.
pub struct GgufMap {
    pub bytes: Vec<u8>,
    /// Offset of the header's tensor count (u64) and key/value count (u64).
    pub n_tensors_at: usize,
    pub n_kv_at: usize,
    /// Each key: offset of its type tag (u32), then of its value.
    pub kv: HashMap<String, (usize, usize)>,
    /// The key/value section ends (and the tensor infos start) here.
    pub kv_end: usize,
    /// Each tensor: offset of its type (u32) and data offset (u64) fields in its info, its
    /// type, dims, and where its data starts in the file.
    pub tensors: HashMap<String, TensorAt>,
    pub infos_end: usize,
    pub data_start: usize,
}

#[derive(Clone, Debug)]
pub struct TensorAt {
    pub type_at: usize,
    pub offset_at: usize,
    pub dims_at: usize,
    pub ty: u32,
    pub dims: Vec<u64>,
    pub data_at: usize,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Bytes of one scalar value of GGUF type `ty`.
fn scalar_size(ty: u32) -> usize {
    match ty {
        0 | 1 | 7 => 1, // u8, i8, bool
        2 | 3 => 2,     // u16, i16
        4..=6 => 4,     // u32, i32, f32
        10..=12 => 8,   // u64, i64, f64
        other => panic!("not a scalar GGUF type: {other}"),
    }
}

/// Offset just past a value of type `ty` that starts at `at`.
fn skip_value(b: &[u8], at: usize, ty: u32) -> usize {
    match ty {
        8 => at + 8 + u64_at(b, at) as usize, // string
        9 => {
            let elem = u32_at(b, at);
            let n = u64_at(b, at + 4) as usize;
            let mut p = at + 12;
            for _ in 0..n {
                p = skip_value(b, p, elem);
            }
            p
        }
        t => at + scalar_size(t),
    }
}

fn string_at(b: &[u8], at: usize) -> (String, usize) {
    let n = u64_at(b, at) as usize;
    let s = String::from_utf8_lossy(&b[at + 8..at + 8 + n]).into_owned();
    (s, at + 8 + n)
}

impl GgufMap {
    pub fn read(path: &std::path::Path) -> GgufMap {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..4], b"GGUF");
        let n_tensors = u64_at(&bytes, 8) as usize;
        let n_kv = u64_at(&bytes, 16) as usize;
        let mut p = 24;
        let mut kv = HashMap::new();
        let mut alignment = 32usize;
        for _ in 0..n_kv {
            let (key, after) = string_at(&bytes, p);
            let ty = u32_at(&bytes, after);
            if key == "general.alignment" {
                alignment = u32_at(&bytes, after + 4) as usize;
            }
            kv.insert(key, (after, after + 4));
            p = skip_value(&bytes, after + 4, ty);
        }
        let kv_end = p;
        let mut infos = Vec::new();
        for _ in 0..n_tensors {
            let (name, after) = string_at(&bytes, p);
            let n_dims = u32_at(&bytes, after) as usize;
            let dims_at = after + 4;
            let dims: Vec<u64> = (0..n_dims)
                .map(|i| u64_at(&bytes, dims_at + 8 * i))
                .collect();
            let type_at = dims_at + 8 * n_dims;
            let offset_at = type_at + 4;
            infos.push((name, type_at, offset_at, dims_at, dims));
            p = offset_at + 8;
        }
        let infos_end = p;
        let data_start = p.div_ceil(alignment) * alignment;
        let tensors = infos
            .into_iter()
            .map(|(name, type_at, offset_at, dims_at, dims)| {
                let t = TensorAt {
                    type_at,
                    offset_at,
                    dims_at,
                    ty: u32_at(&bytes, type_at),
                    dims,
                    data_at: data_start + u64_at(&bytes, offset_at) as usize,
                };
                (name, t)
            })
            .collect();
        GgufMap {
            bytes,
            n_tensors_at: 8,
            n_kv_at: 16,
            kv,
            kv_end,
            tensors,
            infos_end,
            data_start,
        }
    }

    /// A copy of the file's bytes with `edit` applied.
    pub fn edited(&self, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut b = self.bytes.clone();
        edit(&mut b);
        b
    }

    /// Offset of the value of `key`.
    pub fn value_at(&self, key: &str) -> usize {
        self.kv.get(key).unwrap_or_else(|| panic!("no key {key}")).1
    }

    pub fn tensor(&self, name: &str) -> &TensorAt {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }
}

pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// ggml block layouts of the types whose scales a test overwrites: (block bytes, elements per
/// block, byte offsets of the f16 scales within a block).
pub fn f16_scales(ty: u32) -> (usize, usize, &'static [usize]) {
    match ty {
        2 => (18, 32, &[0]),       // Q4_0: d
        3 => (20, 32, &[0, 2]),    // Q4_1: d, m
        8 => (34, 32, &[0]),       // Q8_0: d
        12 => (144, 256, &[0, 2]), // Q4_K: d, dmin
        14 => (210, 256, &[208]),  // Q6_K: d (last)
        other => panic!("no scale layout for ggml type {other}"),
    }
}

/// Writes `value` (f16 bits) into every scale of tensor `t`, or into every element when it is
/// F32 (`f32_value`).
pub fn poison_tensor(b: &mut [u8], t: &TensorAt, f16_value: u16, f32_value: f32) {
    let n: u64 = t.dims.iter().product();
    if t.ty == 0 {
        for i in 0..n as usize {
            let at = t.data_at + 4 * i;
            b[at..at + 4].copy_from_slice(&f32_value.to_le_bytes());
        }
        return;
    }
    let (block_bytes, per_block, scales) = f16_scales(t.ty);
    for blk in 0..(n as usize / per_block) {
        for &s in scales {
            let at = t.data_at + blk * block_bytes + s;
            b[at..at + 2].copy_from_slice(&f16_value.to_le_bytes());
        }
    }
}
