//! `Collective` over MPI (the `mpi` feature): the ranks of MPI_COMM_WORLD, started by
//! `mpirun -np N` or Slurm's `srun`. MPI's default error handler (errors are fatal) stays: a
//! rank that dies makes the launcher end the whole job instead of leaving the others waiting.

use mpi::collective::{CommunicatorCollectives, Root};
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};

use super::Collective;
use crate::engine::error::{Error, Result};

pub struct Mpi {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    local_rank: usize,
    /// Finalizes MPI when dropped, so it lives as long as the communicator.
    _universe: Universe,
}

impl Mpi {
    /// Joins the job when this process was started by an MPI launcher (mpirun, srun), or
    /// returns None: a process started by hand trains alone without initializing MPI.
    pub fn from_launcher() -> Result<Option<Mpi>> {
        const LAUNCHER_VARS: [&str; 4] =
            ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"];
        if !LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
            return Ok(None);
        }
        let universe = mpi::initialize()
            .ok_or_else(|| Error::Invalid("MPI was already initialized in this process".into()))?;
        let world = universe.world();
        let rank = world.rank() as usize;
        let size = world.size() as usize;
        // The ranks that share this machine (and its GPUs), numbered from 0.
        let local_rank = world.split_shared(rank as i32).rank() as usize;
        Ok(Some(Mpi {
            world,
            rank,
            size,
            local_rank,
            _universe: universe,
        }))
    }

    /// MPI_Allreduce (sum) of the library's choosing: the comparison `mr2ct bench --allreduce`
    /// draws against the rank-ordered reduction; its order of addition is not fixed.
    pub fn all_reduce_native_f32(&self, values: &mut [f32]) {
        let send = values.to_vec();
        self.world
            .all_reduce_into(&send[..], values, mpi::collective::SystemOperation::sum());
    }

    /// This rank's index among the ranks on its machine (picks its adapter).
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }

    /// Gather to rank 0, sum there in rank order, broadcast: 2(N-1) messages of the buffer
    /// through rank 0 instead of a ring's 2(N-1)/N, but the same bits on every run, which
    /// MPI_Allreduce does not promise (benches/NOTES.md measures both).
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        let root = self.world.process_at_rank(0);
        if self.rank == 0 {
            let n = values.len();
            let mut all = vec![0f32; n * self.size];
            root.gather_into_root(&values[..], &mut all[..]);
            for part in all[n..].chunks_exact(n) {
                for (v, x) in values.iter_mut().zip(part) {
                    *v += *x;
                }
            }
        } else {
            root.gather_into(&values[..]);
        }
        root.broadcast_into(values);
        Ok(())
    }

    fn broadcast_f32(&self, values: &mut [f32], root: usize) -> Result<()> {
        if root >= self.size {
            return Err(Error::Invalid(format!(
                "broadcast from rank {root} in a job of {} ranks",
                self.size
            )));
        }
        self.world
            .process_at_rank(root as i32)
            .broadcast_into(values);
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        self.world.barrier();
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
