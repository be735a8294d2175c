//! Data-parallel training across processes ("ranks"): the few collective operations the
//! training loop needs, behind one trait, so the loop does not know what carries them. `Single`
//! (one process, every operation a no-op) is always built; `Mpi` (OpenMPI through the `mpi`
//! crate) only with the `mpi` cargo feature.
//!
//! Every rank holds the same model and applies the same optimizer step to the same summed
//! gradients, so the reduction must give every rank the same bits, and give them again on the
//! next run: `all_reduce_sum_f32` sums in rank order (rank 0's values, plus rank 1's, ...),
//! which fixes the rounding for a given number of ranks.

#[cfg(feature = "mpi")]
pub mod mpi;

use std::rc::Rc;

use crate::engine::error::Result;
use crate::engine::nn::StatsReducer;

/// The collective operations of data-parallel training. Every rank must call the same
/// operations in the same order with buffers of the same length.
pub trait Collective {
    /// This process's rank, 0..size.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Replaces `values` on every rank with their sum over ranks, added in rank order.
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()>;
    /// Replaces `values` on every rank with rank `root`'s.
    fn broadcast_f32(&self, values: &mut [f32], root: usize) -> Result<()>;
    /// Waits until every rank has reached it.
    fn barrier(&self) -> Result<()>;
    /// Ends every rank of the job with `code` (after this rank printed why).
    fn abort(&self, code: i32) -> !;

    /// Whether this rank writes the run's files (logs, plots, samples, checkpoints).
    fn is_root(&self) -> bool {
        self.rank() == 0
    }
    /// Where rank-dependent messages say which process they come from ("rank 1 of 2: ...");
    /// empty for a single process.
    fn label(&self) -> String {
        if self.size() > 1 {
            format!("rank {} of {}: ", self.rank(), self.size())
        } else {
            String::new()
        }
    }
}

/// One process: nothing to exchange.
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum_f32(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn broadcast_f32(&self, _values: &mut [f32], _root: usize) -> Result<()> {
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The mean over ranks, in place: the rank-ordered sum divided by the number of ranks (every
/// rank's loss is a mean over its micro-batch; with equal micro-batches the mean of the ranks'
/// means is the mean over the global batch).
pub fn all_reduce_mean_f32(c: &dyn Collective, values: &mut [f32]) -> Result<()> {
    if c.size() == 1 {
        return Ok(());
    }
    c.all_reduce_sum_f32(values)?;
    let inv = 1.0 / c.size() as f32;
    values.iter_mut().for_each(|v| *v *= inv);
    Ok(())
}

/// BatchNorm's batch statistics over the global batch (`--sync-bn`): the engine's norm layers
/// ask a `StatsReducer` to sum their per-channel terms; this one sums them over ranks.
pub struct SyncBatchStats(pub Rc<dyn Collective>);

impl StatsReducer for SyncBatchStats {
    fn ranks(&self) -> usize {
        self.0.size()
    }
    fn sum(&self, values: &mut [f32]) -> Result<()> {
        self.0.all_reduce_sum_f32(values)
    }
}
