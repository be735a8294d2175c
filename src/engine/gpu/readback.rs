//! Reading device buffers back to the host, one code path for every target: `read_async`
//! records the copy into a staging buffer, submits, asks wgpu to map it and awaits the map.
//! On native targets it first waits on the device (`poll`), so the map callback has already
//! run when the future is first polled and `read` completes it with `pollster`; in a browser
//! (WebGPU) nothing may block, the browser's event loop completes the map and the caller
//! awaits the future.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::device::Gpu;
use crate::engine::error::{Error, Result};

/// The result of one wgpu callback, handed to the future that awaits it.
struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

/// The receiving half: resolves when the callback has delivered its value.
pub(crate) struct Pending<T>(Arc<Mutex<Slot<T>>>);

/// A pending value and the function that delivers it (to be moved into a wgpu callback).
pub(crate) fn pending<T>() -> (Pending<T>, impl FnOnce(T)) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    let sender = slot.clone();
    let deliver = move |v: T| {
        if let Ok(mut s) = sender.lock() {
            s.value = Some(v);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    };
    (Pending(slot), deliver)
}

impl<T> Future for Pending<T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let Ok(mut s) = self.0.lock() else {
            return Poll::Ready(None);
        };
        match s.value.take() {
            Some(v) => Poll::Ready(Some(v)),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Gpu {
    /// Reads `size` bytes of `buffer` back to the host: submits pending work and awaits the
    /// mapped copy (module docs).
    pub async fn read_async(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let size = size.div_ceil(4) * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("mr2ct readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.copy(buffer, 0, &staging, 0, size);
        self.flush()?;
        let (mapped, deliver) = pending();
        staging.slice(..).map_async(wgpu::MapMode::Read, deliver);
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        mapped
            .await
            .ok_or_else(|| Error::Gpu("readback callback never ran".into()))?
            .map_err(|e| Error::Gpu(format!("mapping a readback buffer: {e}")))?;
        let bytes = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Gpu(format!("reading a mapped buffer: {e}")))?
            .to_vec();
        staging.unmap();
        self.check_errors()?;
        Ok(bytes)
    }

    /// [`Gpu::read_async`], waited for ([`block_on`]).
    pub fn read(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        block_on(self.read_async(buffer, size))
    }

    /// Submits everything recorded and awaits the device's completion of all submitted work
    /// (what [`Gpu::synchronize`] waits for, in the form a web page can await).
    pub async fn synchronize_async(&self) -> Result<()> {
        self.flush()?;
        let (done, deliver) = pending();
        self.queue.on_submitted_work_done(move || deliver(()));
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        done.await
            .ok_or_else(|| Error::Gpu("work-done callback never ran".into()))?;
        self.check_errors()
    }
}

/// Runs one of the engine's futures to completion: on native targets by waiting (the future
/// has polled the device itself, so this never parks for long); a browser cannot block, so
/// there this is an error and the page awaits the `*_async` form instead.
pub fn block_on<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    if cfg!(target_arch = "wasm32") {
        return Err(Error::Gpu(
            "a blocking wait cannot run in a browser; this path needs its *_async form".into(),
        ));
    }
    pollster::block_on(f)
}
