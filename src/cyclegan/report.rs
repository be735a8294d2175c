//! What a training run writes for people after every epoch: losses.csv (columns by name),
//! the loss curves and the sample grids.

use std::path::Path;

use super::losses::{EpochLosses, CSV_COLUMNS};
use super::train::Trainer;
use super::Critics;
use crate::engine::error::{Error, Result};
use crate::engine::nn::Pass;
use crate::engine::tensor::Tensor;
use crate::io::{grid, plot};

impl Trainer {
    pub(super) fn write_csv(&self, path: &Path) -> Result<()> {
        let mut s = String::from("epoch,");
        s += &CSV_COLUMNS.map(|(name, _)| name).join(",");
        s += ",seconds,images_per_second\n";
        for (i, h) in self.history.iter().enumerate() {
            let cols: Vec<String> = h.columns().iter().map(|v| format!("{v:.6}")).collect();
            s += &format!(
                "{},{},{:.3},{:.2}\n",
                i + 1,
                cols.join(","),
                h.seconds,
                h.images_per_second
            );
        }
        crate::io::write_atomic(path, s.as_bytes())
    }

    pub(super) fn write_loss_plot(&self, path: &Path) -> Result<()> {
        let col =
            |f: &dyn Fn(&EpochLosses) -> f32| self.history.iter().map(f).collect::<Vec<f32>>();
        let (d, g) = (col(&|h| h.mean.da + h.mean.db), col(&|h| h.mean.g));
        let (da, db) = (col(&|h| h.mean.da), col(&|h| h.mean.db));
        let (ab, ba) = (col(&|h| h.mean.g_ab_adv), col(&|h| h.mean.g_ba_adv));
        let (aba, bab) = (col(&|h| h.mean.aba_rec), col(&|h| h.mean.bab_rec));
        let p = plot::PALETTE;
        plot::save_panels(
            path,
            &[
                (
                    "D AND G LOSS PER EPOCH",
                    vec![
                        plot::Series {
                            name: "D_LOSS",
                            values: &d,
                            color: p[0],
                        },
                        plot::Series {
                            name: "G_LOSS",
                            values: &g,
                            color: p[1],
                        },
                    ],
                ),
                (
                    "ADVERSARIAL TERMS",
                    vec![
                        plot::Series {
                            name: "DA",
                            values: &da,
                            color: p[2],
                        },
                        plot::Series {
                            name: "DB",
                            values: &db,
                            color: p[3],
                        },
                        plot::Series {
                            name: "G_AB ADV",
                            values: &ab,
                            color: p[4],
                        },
                        plot::Series {
                            name: "G_BA ADV",
                            values: &ba,
                            color: p[5],
                        },
                    ],
                ),
                (
                    "CYCLE RECONSTRUCTION (L1)",
                    vec![
                        plot::Series {
                            name: "ABA",
                            values: &aba,
                            color: p[6],
                        },
                        plot::Series {
                            name: "BAB",
                            values: &bab,
                            color: p[7],
                        },
                    ],
                ),
            ],
        )
    }

    /// The paper's Fig. 3: rows of real MRI (the centre slice when the generator sees
    /// context), real CT, fake CT and, with a CT -> MRI generator, fake MRI (eval mode).
    pub fn write_samples(&self, path: &Path, mr: &Tensor, ct: &Tensor) -> Result<()> {
        let (fake_ct, fake_mr) = crate::no_grad(|| -> Result<(Tensor, Option<Tensor>)> {
            let fake_mr = match &self.gan.critics {
                Critics::Cycle { g_ba, .. } => Some(g_ba.forward(ct, Pass::EVAL)?),
                Critics::Paired { .. } => None,
            };
            Ok((self.gan.g_ab.forward(mr, Pass::EVAL)?, fake_mr))
        })?;
        let [n, channels, size, _] = mr
            .shape()
            .try_into()
            .map_err(|_| Error::shape("write_samples", format!("MRI batch {:?}", mr.shape())))?;
        let per = size * size;
        let mr = mr.to_vec()?;
        let centre = channels / 2;
        let mr: Vec<f32> = (0..n)
            .flat_map(|i| mr[(i * channels + centre) * per..][..per].to_vec())
            .collect();
        let mut columns = vec![mr, ct.to_vec()?, fake_ct.to_vec()?];
        let mut titles = vec!["REAL MRI", "REAL CT", "FAKE CT"];
        if let Some(fake_mr) = fake_mr {
            columns.push(fake_mr.to_vec()?);
            titles.push("FAKE MRI");
        }
        let rows: Vec<grid::GridRow> = (0..n)
            .map(|i| grid::GridRow {
                tiles: columns.iter().map(|c| &c[i * per..(i + 1) * per]).collect(),
            })
            .collect();
        grid::save_grid(path, &titles, &rows, size)
    }
}
