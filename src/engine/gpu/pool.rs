//! Buffer pool: device buffers are reused by size class, so after the first training step
//! every allocation is served from the free lists and device memory stays flat.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Byte counters of the pool, for memory reports and the flat-memory test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes held by live tensors (size-class bytes).
    pub bytes_in_use: u64,
    /// Bytes of every buffer the pool created (in use + free).
    pub bytes_allocated: u64,
    /// Highest `bytes_in_use` seen.
    pub peak_in_use: u64,
    /// Buffers created since the start (a steady-state step creates none).
    pub buffers_created: u64,
}

#[derive(Default)]
pub(crate) struct PoolState {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    pub(crate) stats: PoolStats,
}

/// Size classes: eight per power of two, so a buffer wastes at most 12.5 % of its bytes
/// while sizes that differ a little (batch remainders, odd shapes) still share buffers.
pub(crate) fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let floor_pow2 = 1u64 << (63 - bytes.leading_zeros());
    let step = (floor_pow2 / 8).max(4);
    bytes.div_ceil(step) * step
}

impl PoolState {
    pub(crate) fn take(&mut self, class: u64) -> Option<wgpu::Buffer> {
        let buf = self.free.get_mut(&class)?.pop()?;
        self.stats.bytes_in_use += class;
        self.stats.peak_in_use = self.stats.peak_in_use.max(self.stats.bytes_in_use);
        Some(buf)
    }
    pub(crate) fn created(&mut self, class: u64) {
        self.stats.bytes_allocated += class;
        self.stats.buffers_created += 1;
        self.stats.bytes_in_use += class;
        self.stats.peak_in_use = self.stats.peak_in_use.max(self.stats.bytes_in_use);
    }
    fn give_back(&mut self, class: u64, buf: wgpu::Buffer) {
        self.stats.bytes_in_use -= class;
        self.free.entry(class).or_default().push(buf);
    }
    /// Destroys every free buffer (e.g. after a phase that needed much more memory).
    pub(crate) fn trim(&mut self) {
        for (class, bufs) in self.free.drain() {
            self.stats.bytes_allocated -= class * bufs.len() as u64;
            for b in bufs {
                b.destroy();
            }
        }
    }
}

/// A device buffer on loan from the pool; dropping it returns it to its free list.
/// Commands already recorded against it stay valid: later users are ordered after them
/// in the same queue.
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    class: u64,
    /// Bytes the owner asked for (the buffer may be larger).
    pub len: u64,
    pool: Rc<RefCell<PoolState>>,
}

impl PooledBuffer {
    pub(crate) fn new(
        buffer: wgpu::Buffer,
        class: u64,
        len: u64,
        pool: Rc<RefCell<PoolState>>,
    ) -> Self {
        PooledBuffer {
            buffer: Some(buffer),
            class,
            len,
            pool,
        }
    }
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer
            .as_ref()
            .expect("pooled buffer used after release")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.pool.borrow_mut().give_back(self.class, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;
    #[test]
    fn size_classes_bound_the_waste() {
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(1000), 1024);
        assert_eq!(size_class(1025), 1152);
        for bytes in [300u64, 4097, 123_457, 10_000_001] {
            let c = size_class(bytes);
            assert!(
                c >= bytes && (c as f64) <= bytes as f64 * 1.125 + 4.0,
                "{bytes} -> {c}"
            );
        }
    }
}
