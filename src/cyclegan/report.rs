//! What a training run writes for people after every epoch: losses.csv (columns by name),
//! the loss curves and the sample grids.

use std::path::Path;

use super::losses::{EpochLosses, StepLosses, CSV_COLUMNS, VAL_COLUMNS};
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
        s += ",seconds,images_per_second,";
        s += &VAL_COLUMNS.join(",");
        s += "\n";
        for (i, h) in self.history.iter().enumerate() {
            let cols: Vec<String> = h.columns().iter().map(|v| format!("{v:.6}")).collect();
            let val = h.val.map_or(",,".to_string(), |v| {
                format!("{:.2},{:.3},{:.4}", v.mae, v.psnr, v.ssim)
            });
            s += &format!(
                "{},{},{:.3},{:.2},{val}\n",
                i + 1,
                cols.join(","),
                h.seconds,
                h.images_per_second
            );
        }
        crate::io::write_atomic(path, s.as_bytes())
    }

    /// Loss curves: the generator and discriminator losses at every step (so a one-epoch run
    /// draws a curve), the epoch means of each term, and the validation scores when there are
    /// any.
    pub(super) fn write_loss_plot(&self, path: &Path) -> Result<()> {
        let p = plot::PALETTE;
        let steps =
            |f: &dyn Fn(&StepLosses) -> f32| self.step_log.iter().map(f).collect::<Vec<f32>>();
        let epochs =
            |f: &dyn Fn(&EpochLosses) -> f32| self.history.iter().map(f).collect::<Vec<f32>>();
        let (g, d) = (steps(&|l| l.g), steps(&|l| l.d_loss()));
        let paired = matches!(self.gan.critics, Critics::Paired { .. });
        let series = |list: &[(&'static str, Vec<f32>)],
                      first: usize|
         -> Vec<(&'static str, Vec<f32>, [u8; 3])> {
            list.iter()
                .enumerate()
                .map(|(i, (n, v))| (*n, v.clone(), p[(first + i) % p.len()]))
                .collect()
        };
        let terms = if paired {
            series(
                &[
                    ("L1 TO CT", epochs(&|h| h.mean.ab_l1)),
                    ("ADVERSARIAL", epochs(&|h| h.mean.g_ab_adv)),
                    ("D", epochs(&|h| h.mean.db)),
                ],
                2,
            )
        } else {
            series(
                &[
                    ("DA", epochs(&|h| h.mean.da)),
                    ("DB", epochs(&|h| h.mean.db)),
                    ("G_AB ADV", epochs(&|h| h.mean.g_ab_adv)),
                    ("G_BA ADV", epochs(&|h| h.mean.g_ba_adv)),
                    ("ABA", epochs(&|h| h.mean.aba_rec)),
                    ("BAB", epochs(&|h| h.mean.bab_rec)),
                ],
                2,
            )
        };
        let val = epochs(&|h| h.val.map_or(f32::NAN, |v| v.mae as f32));
        let step_lines = [("G_LOSS", g, p[1]), ("D_LOSS", d, p[0])];
        let val_line = [("VALIDATION MAE (HU)", val, p[3])];
        let mut panels = vec![
            plot::Panel {
                title: "G AND D LOSS PER STEP",
                x_label: "STEP",
                series: to_series(&step_lines),
            },
            plot::Panel {
                title: "LOSS TERMS, EPOCH MEANS",
                x_label: "EPOCH",
                series: to_series(&terms),
            },
        ];
        if self.history.iter().any(|h| h.val.is_some()) {
            panels.push(plot::Panel {
                title: "HELD-OUT SUBJECTS",
                x_label: "EPOCH",
                series: to_series(&val_line),
            });
        }
        plot::save_panels(path, &panels)
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

/// Plot lines from (name, values, colour) triples.
fn to_series<'a>(list: &'a [(&'static str, Vec<f32>, [u8; 3])]) -> Vec<plot::Series<'a>> {
    list.iter()
        .map(|(name, values, color)| plot::Series {
            name,
            values,
            color: *color,
        })
        .collect()
}
