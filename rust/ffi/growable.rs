//! Structs that grow: every struct that crosses the boundary starts with `uint32_t struct_size`,
//! the size of the struct in the header the host was compiled against.
//!
//! The rules (also stated at the top of include/fmr.h):
//! - fields are only ever appended, and a new field never sits in the tail padding of the
//!   previous version (explicit padding goes before it when it would);
//! - input structs: the library reads the fields `struct_size` covers; fields added after the
//!   host's header take their defaults. A larger `struct_size` (a newer header) is accepted when
//!   the bytes the library does not know are zero (fields left at their defaults), and rejected
//!   with `FMR_ERR_UNSUPPORTED` otherwise;
//! - output structs (caller-allocated): the caller sets `struct_size`; the library writes the
//!   fields it covers, zeroes any bytes beyond the fields it knows, and never writes past
//!   `struct_size` nor changes it;
//! - arrays: every element carries the same `struct_size`, which is also the array's stride.

use crate::error::{Error, ErrorCode, Result};

/// Largest `struct_size` accepted: a larger value is an uninitialised field, not a header.
const MAX_STRUCT_SIZE: usize = 4096;

/// A `#[repr(C)]` struct whose first field is `struct_size: u32`.
///
/// # Safety
/// Implementors are `#[repr(C)]`, start with a `u32` size field and hold only plain data
/// (integers, floats, bools, raw pointers), so that any byte prefix copied from a valid value
/// of the same layout yields a valid value.
pub(crate) unsafe trait Growable: Copy {
    /// Its name in the header.
    const NAME: &'static str;
    /// Size of its first version: the smallest `struct_size` accepted.
    const MIN_SIZE: usize;
    /// What a host does to fill `struct_size` (named in errors).
    const INIT: &'static str;
}

/// Reads `struct_size` at the start of the host's struct.
///
/// # Safety
/// `p` points to at least 4 readable bytes.
unsafe fn host_size<T: Growable>(p: *const T) -> Result<usize> {
    // SAFETY: every Growable starts with a u32 per the trait contract; p is readable.
    let size = unsafe { p.cast::<u32>().read_unaligned() } as usize;
    if size < T::MIN_SIZE || size > MAX_STRUCT_SIZE {
        return Err(Error::invalid(format!(
            "{}.struct_size is {size}, expected at least {} (this library's is {}): {}",
            T::NAME,
            T::MIN_SIZE,
            std::mem::size_of::<T>(),
            T::INIT
        )));
    }
    Ok(size)
}

/// Reads a host's input struct of its own `struct_size` over `defaults`.
///
/// # Safety
/// `p` is non-NULL and valid for reads of `struct_size` bytes (the host's contract).
pub(crate) unsafe fn read_in<T: Growable>(p: *const T, defaults: T) -> Result<T> {
    // SAFETY: forwarded contract.
    let size = unsafe { host_size(p) }?;
    // SAFETY: the host's struct is `size` bytes.
    unsafe { read_sized(p.cast(), size, defaults) }
}

/// As [`read_in`], with the size already known (array elements).
///
/// # Safety
/// `src` is valid for reads of `size` bytes; `size >= T::MIN_SIZE`.
unsafe fn read_sized<T: Growable>(src: *const u8, size: usize, defaults: T) -> Result<T> {
    let own = std::mem::size_of::<T>();
    if size > own {
        // SAFETY: the host's struct is `size` bytes.
        let extra = unsafe { std::slice::from_raw_parts(src.add(own), size - own) };
        if extra.iter().any(|&b| b != 0) {
            return Err(Error::new(
                ErrorCode::Unsupported,
                format!(
                    "{} has fields this library ({}) does not know (struct_size {size}, this \
                     library's {own}): link the library whose header you compiled against",
                    T::NAME,
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
    }
    let mut value = defaults;
    // SAFETY: copies the host's known prefix over a valid T; by the trait contract any prefix
    // of a valid value of the same layout keeps `value` valid.
    unsafe {
        std::ptr::copy_nonoverlapping(
            src,
            std::ptr::addr_of_mut!(value).cast::<u8>(),
            size.min(own),
        )
    };
    Ok(value)
}

/// Checks a caller's output struct; returns its size. Call before any output is written.
///
/// # Safety
/// `p` is non-NULL and points to the caller's struct with `struct_size` set.
pub(crate) unsafe fn out_size<T: Growable>(p: *mut T) -> Result<usize> {
    // SAFETY: forwarded contract.
    unsafe { host_size(p.cast_const()) }
}

/// Writes `value` into a caller's output struct of `size` bytes (from [`out_size`]): the
/// fields the size covers, zeros past the fields this library knows; `struct_size` is kept.
///
/// # Safety
/// `p` is valid for writes of `size` bytes.
pub(crate) unsafe fn write_out<T: Growable>(p: *mut T, size: usize, value: T) {
    let own = std::mem::size_of::<T>();
    let dst = p.cast::<u8>();
    let skip = std::mem::size_of::<u32>();
    // SAFETY: `value` is a T; dst is valid for `size` bytes; struct_size (the first 4 bytes)
    // is left as the caller set it.
    unsafe {
        let src = std::ptr::addr_of!(value).cast::<u8>();
        std::ptr::copy_nonoverlapping(src.add(skip), dst.add(skip), size.min(own) - skip);
        if size > own {
            std::ptr::write_bytes(dst.add(own), 0, size - own);
        }
    }
}

/// The stride of a host array of `n` elements: the first element's `struct_size`, which every
/// element must repeat.
///
/// # Safety
/// `p` points to `n >= 1` elements of the host's layout, each with `struct_size` set.
pub(crate) unsafe fn array_stride<T: Growable>(p: *const T, n: usize, name: &str) -> Result<usize> {
    // SAFETY: the first element exists.
    let stride = unsafe { host_size(p) }
        .map_err(|e| Error::new(e.code(), format!("{name}[0]: {}", e.message())))?;
    for i in 1..n {
        // SAFETY: element i starts at i * stride within the host's array.
        let s = unsafe {
            p.cast::<u8>()
                .add(i * stride)
                .cast::<u32>()
                .read_unaligned()
        } as usize;
        if s != stride {
            return Err(Error::invalid(format!(
                "{name}[{i}].struct_size is {s}, but {name}[0].struct_size is {stride}: set it \
                 in every element"
            )));
        }
    }
    Ok(stride)
}

/// Element `i` of a host input array of the given stride, over `defaults`.
///
/// # Safety
/// `p` points to a host array of at least `i + 1` elements of `stride` bytes.
pub(crate) unsafe fn read_at<T: Growable>(
    p: *const T,
    stride: usize,
    i: usize,
    defaults: T,
) -> Result<T> {
    // SAFETY: forwarded contract.
    unsafe { read_sized(p.cast::<u8>().add(i * stride), stride, defaults) }
}

/// Writes element `i` of a host output array of the given stride.
///
/// # Safety
/// `p` points to a host array of at least `i + 1` elements of `stride` bytes.
pub(crate) unsafe fn write_at<T: Growable>(p: *mut T, stride: usize, i: usize, value: T) {
    // SAFETY: forwarded contract.
    unsafe { write_out(p.cast::<u8>().add(i * stride).cast::<T>(), stride, value) }
}

/// Fills a host's input struct of `size` bytes with `defaults` (the `fmr_x_init` functions):
/// the fields the size covers, zeros beyond the fields this library knows, `struct_size` set
/// to `size`. Does nothing when `p` is NULL or `size` is below the first version's.
///
/// # Safety
/// `p` is NULL or valid for writes of `size` bytes.
pub(crate) unsafe fn init_in<T: Growable>(p: *mut T, size: usize, defaults: T) {
    if p.is_null() || size < T::MIN_SIZE || size > MAX_STRUCT_SIZE {
        return;
    }
    // SAFETY: p is valid for `size` bytes.
    unsafe {
        write_out(p, size, defaults);
        p.cast::<u32>().write_unaligned(size as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct V2 {
        struct_size: u32,
        a: i32,
        b: u64,
    }
    // SAFETY: repr(C), u32 first, plain data.
    unsafe impl Growable for V2 {
        const NAME: &'static str = "v2";
        const MIN_SIZE: usize = 8;
        const INIT: &'static str = "set it to sizeof";
    }
    const DEFAULTS: V2 = V2 {
        struct_size: 16,
        a: 1,
        b: 2,
    };

    #[test]
    fn older_hosts_get_defaults_and_newer_ones_must_leave_unknown_fields_zero() {
        // A version-1 host: {struct_size, a}.
        let v1: [u32; 2] = [8, 7];
        // SAFETY: 8 readable bytes.
        let r = unsafe { read_in(v1.as_ptr().cast::<V2>(), DEFAULTS) }.unwrap();
        assert_eq!((r.a, r.b), (7, 2));
        // A version-3 host whose new field is zero, then set.
        let mut v3: [u64; 3] = [0; 3];
        v3[0] = 24 | (9u64 << 32);
        v3[1] = 5;
        // SAFETY: 24 readable bytes.
        let r = unsafe { read_in(v3.as_ptr().cast::<V2>(), DEFAULTS) }.unwrap();
        assert_eq!((r.a, r.b), (9, 5));
        v3[2] = 1;
        // SAFETY: as above.
        let e = unsafe { read_in(v3.as_ptr().cast::<V2>(), DEFAULTS) }.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Unsupported);
        // Too small, and garbage.
        for bad in [4u32, 0, 100_000] {
            let v: [u32; 4] = [bad, 0, 0, 0];
            // SAFETY: 16 readable bytes; the size check comes first.
            let e = unsafe { read_in(v.as_ptr().cast::<V2>(), DEFAULTS) }.unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn outputs_stay_inside_the_callers_struct_and_zero_what_the_library_does_not_know() {
        // An older caller: 8 bytes, followed by canary bytes that must survive.
        let mut buf: [u32; 4] = [8, 0, 0xdead, 0xbeef];
        let p = buf.as_mut_ptr().cast::<V2>();
        // SAFETY: 8 writable bytes declared.
        unsafe {
            let n = out_size(p).unwrap();
            write_out(p, n, DEFAULTS);
        }
        assert_eq!(buf, [8, 1, 0xdead, 0xbeef]);
        // A newer caller: 24 bytes, the last 8 zeroed.
        let mut buf: [u64; 3] = [24, 0, u64::MAX];
        let p = buf.as_mut_ptr().cast::<V2>();
        // SAFETY: 24 writable bytes declared.
        unsafe {
            let n = out_size(p).unwrap();
            write_out(p, n, DEFAULTS);
        }
        assert_eq!(buf, [24 | (1u64 << 32), 2, 0]);
    }

    #[test]
    fn arrays_step_by_the_hosts_size() {
        let host: [u32; 4] = [8, 3, 8, 4];
        let p = host.as_ptr().cast::<V2>();
        // SAFETY: two 8-byte elements.
        unsafe {
            let stride = array_stride(p, 2, "xs").unwrap();
            assert_eq!(stride, 8);
            assert_eq!(read_at(p, stride, 1, DEFAULTS).unwrap().a, 4);
        }
        let mixed: [u32; 4] = [8, 3, 16, 4];
        // SAFETY: as above.
        let e = unsafe { array_stride(mixed.as_ptr().cast::<V2>(), 2, "xs") }.unwrap_err();
        assert!(e.message().contains("xs[1]"), "{}", e.message());
    }
}
