//! Multithreaded single-precision GEMM: `matrixmultiply::sgemm` on tiles split over rayon workers.

/// A read-only row-major matrix view: element (i, j) at `data[i * ld + j]`, optionally transposed.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    /// Rows of the stored matrix.
    pub rows: usize,
    /// Columns of the stored matrix.
    pub cols: usize,
    /// Leading dimension (row stride) of the storage, `>= cols`.
    pub ld: usize,
    /// Use the transpose of the stored matrix.
    pub t: bool,
}

impl<'a> Mat<'a> {
    /// A contiguous `rows × cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            ld: cols,
            t: false,
        }
    }
    /// A sub-matrix view with row stride `ld`.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, ld: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            ld,
            t: false,
        }
    }
    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Mat { t: !self.t, ..self }
    }
    fn logical(&self) -> (usize, usize) {
        if self.t {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }
    /// (row stride, column stride) of the logical matrix.
    fn strides(&self) -> (isize, isize) {
        if self.t {
            (1, self.ld as isize)
        } else {
            (self.ld as isize, 1)
        }
    }
    fn check(&self) {
        assert!(self.cols <= self.ld || self.rows <= 1, "Mat: ld < cols");
        if self.rows > 0 && self.cols > 0 {
            assert!(
                (self.rows - 1) * self.ld + self.cols <= self.data.len(),
                "Mat: slice too short"
            );
        }
    }
}

/// A mutable row-major output matrix view (never transposed).
#[derive(Debug)]
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub ld: usize,
}

impl<'a> MatMut<'a> {
    /// A contiguous `rows × cols` matrix.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            ld: cols,
        }
    }
    /// A sub-matrix with row stride `ld`.
    pub fn strided(data: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            ld,
        }
    }
}

#[derive(Clone, Copy)]
struct SendPtr<T>(*const T);
// SAFETY: used only to pass disjoint tiles of buffers that outlive the rayon scope.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: see above; the pointee is only read through this pointer.
unsafe impl<T> Sync for SendPtr<T> {}
#[derive(Clone, Copy)]
struct SendMutPtr<T>(*mut T);
// SAFETY: each worker writes a disjoint tile of C.
unsafe impl<T> Send for SendMutPtr<T> {}
// SAFETY: see above.
unsafe impl<T> Sync for SendMutPtr<T> {}

/// `C = alpha · A · B + beta · C` with `A: m×k`, `B: k×n`, `C: m×n` (logical shapes).
///
/// Runs on the current rayon pool, splitting C into row (or column) tiles, one per worker.
/// Panics on shape mismatches (these are internal invariants, never user input).
/// With `beta == 0`, C's prior contents are ignored (NaNs included).
pub fn gemm(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
    let (m, k) = a.logical();
    let (k2, n) = b.logical();
    assert_eq!(k, k2, "gemm: inner dimensions differ");
    assert_eq!((c.rows, c.cols), (m, n), "gemm: output shape");
    a.check();
    b.check();
    if m > 0 && n > 0 {
        assert!(
            (m - 1) * c.ld + n <= c.data.len(),
            "gemm: output slice too short"
        );
    }
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for v in &mut c.data[i * c.ld..i * c.ld + n] {
                *v = if beta == 0.0 { 0.0 } else { *v * beta };
            }
        }
        return;
    }
    let (rsa, csa) = a.strides();
    let (rsb, csb) = b.strides();
    let threads = rayon::current_num_threads().max(1);
    let work = m * n * k;
    let pa = SendPtr(a.data.as_ptr());
    let pb = SendPtr(b.data.as_ptr());
    let pc = SendMutPtr(c.data.as_mut_ptr());
    let ldc = c.ld as isize;
    let run = move |i0: usize, i1: usize, j0: usize, j1: usize| {
        let (pa, pb, pc) = (pa, pb, pc);
        // SAFETY: the tile [i0, i1) × [j0, j1) lies within the logical shapes checked above, so
        // every element read from A/B and written to C is inside its slice; tiles handed to
        // different workers are disjoint in C; A and B are only read.
        unsafe {
            matrixmultiply::sgemm(
                i1 - i0,
                k,
                j1 - j0,
                alpha,
                pa.0.offset(i0 as isize * rsa),
                rsa,
                csa,
                pb.0.offset(j0 as isize * csb),
                rsb,
                csb,
                beta,
                pc.0.offset(i0 as isize * ldc + j0 as isize),
                ldc,
                1,
            )
        }
    };
    if threads == 1 || work < 1 << 18 {
        run(0, m, 0, n);
        return;
    }
    if m >= n || m >= 64 * threads {
        let chunk = m.div_ceil(threads);
        rayon::scope(|s| {
            for t in 0..threads {
                let (i0, i1) = (t * chunk, ((t + 1) * chunk).min(m));
                if i0 < i1 {
                    s.spawn(move |_| run(i0, i1, 0, n));
                }
            }
        });
    } else {
        let chunk = n.div_ceil(threads).next_multiple_of(16);
        rayon::scope(|s| {
            for t in 0..threads {
                let (j0, j1) = (t * chunk, ((t + 1) * chunk).min(n));
                if j0 < j1 {
                    s.spawn(move |_| run(0, m, j0, j1));
                }
            }
        });
    }
}

/// Single-threaded variant for callers that already parallelise at a coarser grain.
pub fn gemm_st(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: MatMut<'_>) {
    let (m, k) = a.logical();
    let (k2, n) = b.logical();
    assert_eq!(k, k2, "gemm_st: inner dimensions differ");
    assert_eq!((c.rows, c.cols), (m, n), "gemm_st: output shape");
    a.check();
    b.check();
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * c.ld + n <= c.data.len(),
        "gemm_st: output slice too short"
    );
    let (rsa, csa) = a.strides();
    let (rsb, csb) = b.strides();
    // SAFETY: shapes and slice extents checked above; C is exclusively borrowed.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            rsa,
            csa,
            b.data.as_ptr(),
            rsb,
            csb,
            beta,
            c.data.as_mut_ptr(),
            c.ld as isize,
            1,
        )
    }
}
