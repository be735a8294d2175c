//! report.html: one page per run that a browser opens from the run directory, rewritten after
//! every epoch beside losses.csv. It shows the loss curves, the validation scores per epoch,
//! the sample grids of every epoch that has one, the configuration and what the trainer knows
//! of its data (and the CLI's config.json, when the run has one).
//!
//! The page is self-contained apart from the PNGs beside it: inline CSS, no script, no
//! network. It references only images that exist when it is written, by bare file name, so
//! the run directory can be moved or copied as a whole.

use std::fmt::Write as _;
use std::path::Path;

use super::losses::CSV_COLUMNS;
use super::train::{Domains, Trainer};
use super::{Critics, ModelKind};
use crate::engine::error::{Error, Result};

/// The page's file name in the run directory.
const REPORT_HTML: &str = "report.html";
/// The loss-curve image `write_loss_plot` draws.
const LOSS_PLOT: &str = "loss_curves.png";
/// The CLI's record of the run (configuration, preprocessing, data folder).
const RUN_RECORD: &str = "config.json";

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1150px;\
color:#1b1b1b;background:#fff}h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;\
padding-bottom:.2em;margin-top:1.6em}table{border-collapse:collapse;font-size:.9em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f0f0f0}\
td.l,th.l{text-align:left}tr.best td{background:#e6f4e6;font-weight:600}\
pre{background:#f6f6f6;border:1px solid #ddd;padding:.8em;overflow:auto;font-size:.85em}\
figure{margin:0 0 1.2em 0}figcaption{font-weight:600;margin-bottom:.3em}\
img{max-width:100%;border:1px solid #ddd}.muted{color:#666}nav a{margin-right:1em}";

impl Trainer {
    /// Writes `out_dir/report.html` atomically (module docs).
    pub(super) fn write_html_report(&self, out_dir: &Path, data: &Domains) -> Result<()> {
        let cfg = self.config();
        let mut page = String::with_capacity(16 * 1024);
        let title = format!("mr2ct run: epoch {} of {}", self.epoch, cfg.epochs);
        page += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
        let _ = writeln!(page, "<title>{}</title>", escape(&title));
        let _ = writeln!(page, "<style>{STYLE}</style>\n</head>\n<body>");
        let _ = writeln!(page, "<h1>{}</h1>", escape(&title));
        let _ = writeln!(
            page,
            "<p>{}; objective {}. Rewritten after every epoch: reload to follow the run.</p>",
            escape(&model_summary(self)),
            escape(&json_name(&cfg.objective)),
        );
        page += "<nav><a href=\"#losses\">Losses</a><a href=\"#validation\">Validation</a>\
<a href=\"#samples\">Samples</a><a href=\"#config\">Configuration</a><a href=\"#data\">Data</a></nav>\n";
        self.losses_section(&mut page, out_dir);
        self.validation_section(&mut page);
        samples_section(&mut page, out_dir)?;
        let config = serde_json::to_string_pretty(cfg)
            .map_err(|e| Error::Invalid(format!("report.html: serializing the config: {e}")))?;
        page += "<section id=\"config\">\n<h2>Configuration</h2>\n";
        let _ = writeln!(page, "<pre>{}</pre>\n</section>", escape(&config));
        self.data_section(&mut page, out_dir, data);
        page += "</body>\n</html>\n";
        crate::io::write_atomic(&out_dir.join(REPORT_HTML), page.as_bytes())
    }

    fn losses_section(&self, page: &mut String, out_dir: &Path) {
        *page += "<section id=\"losses\">\n<h2>Losses</h2>\n";
        if out_dir.join(LOSS_PLOT).is_file() {
            let _ = writeln!(
                page,
                "<img src=\"{LOSS_PLOT}\" alt=\"loss curves: G and D loss per step, loss terms per epoch\">"
            );
        }
        *page += "<p>Epoch means (as in <a href=\"losses.csv\">losses.csv</a>).</p>\n";
        // Only the terms the objective trains; a column that is zero in every epoch is noise.
        let shown: Vec<usize> = (0..CSV_COLUMNS.len())
            .filter(|&c| self.history.iter().any(|h| h.columns()[c] != 0.0))
            .collect();
        *page += "<table>\n<tr><th>epoch</th>";
        for &c in &shown {
            let _ = write!(page, "<th>{}</th>", escape(CSV_COLUMNS[c].0));
        }
        *page += "<th>seconds</th><th>images/s</th></tr>\n";
        for (i, h) in self.history.iter().enumerate() {
            let cols = h.columns();
            let _ = write!(page, "<tr><td>{}</td>", i + 1);
            for &c in &shown {
                let _ = write!(page, "<td>{:.4}</td>", cols[c]);
            }
            let _ = writeln!(
                page,
                "<td>{:.1}</td><td>{:.1}</td></tr>",
                h.seconds, h.images_per_second
            );
        }
        *page += "</table>\n</section>\n";
    }

    fn validation_section(&self, page: &mut String) {
        *page += "<section id=\"validation\">\n<h2>Validation on held-out subjects</h2>\n";
        let scored: Vec<(usize, super::validation::ValScores)> = self
            .history
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.val.map(|v| (i + 1, v)))
            .collect();
        if scored.is_empty() {
            *page += "<p class=\"muted\">No epoch has been validated yet (the run has no \
held-out subjects, or its validation interval has not come round).</p>\n</section>\n";
            return;
        }
        let best = scored
            .iter()
            .min_by(|a, b| a.1.mae.total_cmp(&b.1.mae))
            .map(|(e, _)| *e);
        *page += "<p>Body = CT above -500 HU. The best epoch (lowest MAE) is highlighted; its \
weights are best.safetensors.</p>\n<table>\n<tr><th>epoch</th><th>MAE (HU)</th>\
<th>PSNR (dB)</th><th>SSIM</th></tr>\n";
        for (epoch, v) in &scored {
            let class = if Some(*epoch) == best {
                " class=\"best\""
            } else {
                ""
            };
            let _ = writeln!(
                page,
                "<tr{class}><td>{epoch}</td><td>{:.2}</td><td>{:.3}</td><td>{:.4}</td></tr>",
                v.mae, v.psnr, v.ssim
            );
        }
        *page += "</table>\n</section>\n";
    }

    fn data_section(&self, page: &mut String, out_dir: &Path, data: &Domains) {
        let cfg = self.config();
        let channels = cfg.input_channels();
        let per = data.size * data.size;
        let (n_mr, n_ct) = if per == 0 {
            (0, 0)
        } else {
            (data.mr.len() / (per * channels), data.ct.len() / per)
        };
        *page += "<section id=\"data\">\n<h2>Data</h2>\n<table>\n";
        let mut row = |name: &str, value: String| {
            let _ = writeln!(
                page,
                "<tr><th class=\"l\">{}</th><td class=\"l\">{}</td></tr>",
                escape(name),
                escape(&value)
            );
        };
        row("MRI training samples", n_mr.to_string());
        row("CT training samples", n_ct.to_string());
        row(
            "pairing",
            match cfg.objective {
                super::Objective::Paired => "registered pairs (MRI sample i is CT sample i)",
                super::Objective::Cyclegan => "unpaired",
            }
            .into(),
        );
        row(
            "MR slices per sample",
            format!("{channels} (2.5D context {})", cfg.context),
        );
        row("slice size", format!("{0} x {0}", data.size));
        row(
            "training image",
            if cfg.crop > 0 {
                format!("random {0} x {0} crops", cfg.crop)
            } else {
                "whole slices".into()
            },
        );
        row(
            "pixel spacing",
            if cfg.spacing > 0.0 {
                format!("{} mm", cfg.spacing)
            } else {
                "none (slices stretched to the size)".into()
            },
        );
        let held = self.validation.as_ref().map(|v| {
            let plane = v.held_out.size * v.held_out.size;
            (v.held_out.ct.len().checked_div(plane).unwrap_or(0), v.every)
        });
        row(
            "held-out validation slices",
            match held {
                Some((n, every)) => {
                    format!("{n}, scored every {every} epoch(s) and after the last")
                }
                None => "none".into(),
            },
        );
        *page += "</table>\n";
        match std::fs::read_to_string(out_dir.join(RUN_RECORD)) {
            Ok(text) => {
                // Folded: with one scaling entry per MR volume it runs long on real data.
                let _ = writeln!(
                    page,
                    "<details><summary>The run's record, <a href=\"{RUN_RECORD}\">{RUN_RECORD}</a> \
(configuration, preprocessing of every volume, data folder)</summary>\n<pre>{}</pre>\n</details>",
                    escape(&text)
                );
            }
            Err(_) => {
                *page += "<p class=\"muted\">No config.json in the run directory (the command \
line writes one with the preprocessing and the data folder).</p>\n";
            }
        }
        *page += "</section>\n";
    }
}

/// The sample grids of the run directory, oldest epoch first.
fn samples_section(page: &mut String, out_dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(out_dir)
        .map_err(|e| Error::file(out_dir, format!("cannot list the run directory: {e}")))?;
    let mut grids: Vec<(usize, String)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let epoch = name
                .strip_prefix("samples_epoch")?
                .strip_suffix(".png")?
                .parse()
                .ok()?;
            Some((epoch, name))
        })
        .collect();
    grids.sort();
    *page += "<section id=\"samples\">\n<h2>Samples by epoch</h2>\n";
    if grids.is_empty() {
        *page += "<p class=\"muted\">No sample grid yet.</p>\n";
    } else {
        *page += "<p>Columns: real MRI (the centre slice), real CT, synthetic CT and, with a \
CT-to-MRI generator, synthetic MRI; the generator in eval mode.</p>\n";
    }
    for (epoch, name) in grids {
        let name = escape(&name);
        let _ = writeln!(
            page,
            "<figure><figcaption>epoch {epoch}</figcaption><img src=\"{name}\" \
alt=\"sample grid after epoch {epoch}\"></figure>"
        );
    }
    *page += "</section>\n";
    Ok(())
}

/// "resnet generator, ngf 32, 6 blocks, 64 x 64" and the like.
fn model_summary(t: &Trainer) -> String {
    let cfg = t.config();
    let shape = match cfg.model {
        ModelKind::Paper => "the paper's generator".to_string(),
        ModelKind::Resnet => format!("ResNet generator, {} residual block(s)", cfg.n_blocks),
        ModelKind::Unet => format!("U-Net generator, {} levels", cfg.unet_downs),
    } + &if cfg.refine > 0 {
        format!(" and a refinement head of width {}", cfg.refine)
    } else {
        String::new()
    };
    let critics = match &t.gan.critics {
        Critics::Cycle { .. } => "G_BA and two discriminators",
        Critics::Paired { d_b: Some(_) } => "a conditional discriminator",
        Critics::Paired { d_b: None } => "no discriminator",
    };
    format!(
        "{shape}, ngf {}, {1} x {1}, with {critics}",
        cfg.ngf, cfg.size
    )
}

/// How serde names a unit enum value (`"paired"` -> `paired`).
fn json_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Text made safe for HTML element content and quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\'' => out += "&#39;",
            _ => out.push(c),
        }
    }
    out
}
