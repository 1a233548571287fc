//! A file mapped read-only into memory: scan caches and git packs can be
//! large, and are read from many threads or at random offsets.
//!
//! Only files nobody changes in place are mapped (guard writes its caches
//! to a new file and renames it over; git never rewrites a pack). If one
//! were truncated while mapped, reading past the new end would raise
//! SIGBUS: guard would die, failing closed.

use std::os::fd::AsRawFd;

pub struct Mapped {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: a private read-only mapping, only ever read.
unsafe impl Send for Mapped {}
// SAFETY: as above.
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Map the first `len` bytes of an open regular file (`len` > 0).
    pub fn new(file: &std::fs::File, len: usize) -> std::io::Result<Mapped> {
        if len == 0 {
            return Err(std::io::Error::other("nothing to map"));
        }
        // SAFETY: a new private read-only mapping of an open file; the
        // kernel picks the address. The descriptor may close afterwards.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| std::io::Error::other("mmap returned null"))?;
        Ok(Mapped { ptr, len })
    }
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` readable bytes, unmapped
        // only on drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`, once; no
        // slice of it outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
