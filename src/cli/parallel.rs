//! How `mr2ct train` joins a data-parallel job: the ranks (MPI with the `mpi` feature when
//! started by mpirun or srun, else one process), each rank's adapter, rank-labelled fatal
//! errors, and the fault injection the multi-rank tests use.

use std::rc::Rc;
use std::sync::OnceLock;

use mr2ct::dist::{Collective, Single};
use mr2ct::{Error, Result};

/// The ranks of this run and this process's place among those on its machine.
pub struct Ranks {
    pub collective: Rc<dyn Collective>,
    pub local_rank: usize,
}

/// The size of the job, from the environment variables by which MPI launchers (OpenMPI's
/// mpirun, Slurm's srun with PMI) tell a process.
#[cfg(not(feature = "mpi"))]
fn launched_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

#[cfg(feature = "mpi")]
pub fn join() -> Result<Ranks> {
    Ok(match mr2ct::dist::mpi::Mpi::from_launcher()? {
        Some(m) => Ranks {
            local_rank: m.local_rank(),
            collective: Rc::new(m),
        },
        None => Ranks {
            collective: Rc::new(Single),
            local_rank: 0,
        },
    })
}

/// Without the feature, N processes started by a launcher would each train alone into the
/// same run directory: refuse.
#[cfg(not(feature = "mpi"))]
pub fn join() -> Result<Ranks> {
    match launched_size() {
        Some(n) if n > 1 => Err(Error::Invalid(format!(
            "started as one of {n} MPI processes, but this mr2ct was built without MPI; build it with `cargo build --release --features mpi`"
        ))),
        _ => Ok(Ranks {
            collective: Rc::new(Single),
            local_rank: 0,
        }),
    }
}

/// The adapter of this rank: `--adapter` / MR2CT_ADAPTER when given (every rank opens it),
/// else the local rank's turn among the adapters of the preferred type (discrete GPUs first),
/// so N ranks on a machine with N GPUs use one each.
pub fn adapter_for(adapter: Option<&str>, ranks: &Ranks) -> Option<String> {
    if adapter.is_some() || ranks.collective.size() == 1 {
        return adapter.map(str::to_owned);
    }
    let adapters = mr2ct::engine::gpu::list_adapters();
    let best = adapters.first()?.device_type.clone();
    let same: Vec<usize> = adapters
        .iter()
        .filter(|a| a.device_type == best)
        .map(|a| a.index)
        .collect();
    Some(same[ranks.local_rank % same.len()].to_string())
}

/// The cost of the gradient exchange of a multi-rank run, per step (stderr, rank 0).
pub fn report_exchange(trainer: &mr2ct::cyclegan::train::Trainer, ranks: &Ranks, seconds: f64) {
    let n = ranks.collective.size();
    let e = &trainer.gan.exchange;
    if n == 1 || e.steps.get() == 0 {
        return;
    }
    let steps = e.steps.get() as f64;
    eprintln!(
        "data parallel over {n} ranks: {:.2} MB of gradients all-reduced per step; per step {:.1} ms device readback and upload, {:.1} ms all-reduce, {:.3} s in all",
        e.values.get() as f64 * 4.0 / steps / 1e6,
        e.transfer_seconds.get() / steps * 1e3,
        e.reduce_seconds.get() / steps * 1e3,
        seconds / steps
    );
}

/// Ends the whole job from this rank with a one-line error that names it (MPI then stops the
/// other ranks). A single process returns the error to main as usual.
pub fn fail_all(ranks: &Ranks, e: Error) -> Error {
    let c = &ranks.collective;
    if c.size() > 1 {
        eprintln!("mr2ct: error: {}{e}", c.label());
        c.abort(1);
    }
    e
}

/// `MR2CT_FAULT=RANK:STEP:KIND` (tests only): rank RANK, after global step STEP, either
/// aborts the process (`crash`, as a segfault or a kill would end it) or fails as a lost
/// device would (`device-lost`, an error on that rank).
struct Fault {
    rank: usize,
    step: usize,
    crash: bool,
}

static FAULT: OnceLock<Fault> = OnceLock::new();

/// What runs after every step (`RunOptions::after_step`).
type StepHook = fn(usize) -> Result<()>;

/// The `after_step` hook of the run, when MR2CT_FAULT asks for a fault on this rank.
pub fn fault_hook(ranks: &Ranks) -> Result<Option<StepHook>> {
    let Ok(spec) = std::env::var("MR2CT_FAULT") else {
        return Ok(None);
    };
    let bad = || {
        Error::Invalid(format!(
            "MR2CT_FAULT={spec:?}: expected RANK:STEP:crash|device-lost"
        ))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let [rank, step, kind] = parts[..] else {
        return Err(bad());
    };
    let fault = Fault {
        rank: rank.parse().map_err(|_| bad())?,
        step: step.parse().map_err(|_| bad())?,
        crash: match kind {
            "crash" => true,
            "device-lost" => false,
            _ => return Err(bad()),
        },
    };
    if fault.rank != ranks.collective.rank() {
        return Ok(None);
    }
    let _ = FAULT.set(fault);
    Ok(Some(|steps| match FAULT.get() {
        Some(f) if steps == f.step => {
            if f.crash {
                std::process::abort();
            }
            Err(Error::Gpu(format!(
                "device lost after step {steps} (injected by MR2CT_FAULT)"
            )))
        }
        _ => Ok(()),
    }))
}

/// `mr2ct bench --allreduce`: the median time over `iters` runs (after two untimed) of the
/// rank-ordered all-reduce and of MPI_Allreduce, for buffers of `sizes_mb` MB; rank 0 prints.
#[cfg(feature = "mpi")]
pub fn bench_allreduce(sizes_mb: &[f64], iters: usize) -> Result<()> {
    let Some(m) = mr2ct::dist::mpi::Mpi::from_launcher()? else {
        return Err(Error::Invalid(
            "bench --allreduce times ranks: start it with mpirun -np N (or srun)".into(),
        ));
    };
    let median = |mut t: Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    if m.is_root() {
        println!(
            "all-reduce over {} ranks ({iters} runs each, median)",
            m.size()
        );
        println!("| MB | rank-ordered (gather, sum, broadcast) | MPI_Allreduce |");
        println!("|---:|---:|---:|");
    }
    for &mb in sizes_mb {
        let n = ((mb * 1e6 / 4.0) as usize).max(1);
        let mut v: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for i in 0..iters.max(1) + 2 {
            m.barrier()?;
            let t = std::time::Instant::now();
            m.all_reduce_sum_f32(&mut v)?;
            let a = t.elapsed().as_secs_f64();
            m.barrier()?;
            let t = std::time::Instant::now();
            m.all_reduce_native_f32(&mut v);
            let b = t.elapsed().as_secs_f64();
            // Keep the values small (the sums grow by the rank count each run).
            v.iter_mut().for_each(|x| *x = x.rem_euclid(7.0));
            if i >= 2 {
                ours.push(a);
                theirs.push(b);
            }
        }
        if m.is_root() {
            println!(
                "| {mb} | {:.2} ms | {:.2} ms |",
                median(ours) * 1e3,
                median(theirs) * 1e3
            );
        }
    }
    Ok(())
}

#[cfg(not(feature = "mpi"))]
pub fn bench_allreduce(_sizes_mb: &[f64], _iters: usize) -> Result<()> {
    Err(Error::Invalid(
        "bench --allreduce needs MPI: build with `cargo build --release --features mpi`".into(),
    ))
}
