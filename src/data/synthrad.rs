//! The SynthRAD challenge layouts: registered MR/CT pairs with a body mask per patient.
//!
//! SynthRAD 2023 ships `Task1/<region>/<patient>/{mr,ct,mask}.nii.gz`, SynthRAD 2025 the same
//! with `.mha` files. A patient folder is any folder holding a NIfTI or MetaImage file named
//! `mr`, `ct` or `mask` (any case, any of .nii, .nii.gz, .mha, .mhd); they are looked for in
//! the given folder and up to three levels below it, so the root of a release, its `Task1/`,
//! a region folder or one patient folder all work. Other folders (SynthRAD's `overview/`) are
//! not patients and are passed over. A patient folder without an mr or ct file, with two
//! candidates for one role, or with a file that cannot be opened is reported by name.
//!
//! Writing ([`write_synthrad`]): 2023 as gzipped NIfTI through the crate's NIfTI writer
//! (int16 voxels), 2025 as zlib-compressed MetaImage (MR float32, CT int16, mask uint8).

use std::path::{Path, PathBuf};

use super::metaimage::ElementType;
use super::phantom::{phantom_subject, PhantomOptions, PhantomSummary, Tissue};
use super::scan::{image_stem, is_grid_image_name};
use super::{io_reason, write_metaimage, Modality, SkipKind, Skipped, VoxelGrid};
use crate::engine::error::{Error, Result};

/// One patient of a SynthRAD tree: its folder name and its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthradSubject {
    pub id: String,
    pub dir: PathBuf,
    pub mr: PathBuf,
    pub ct: PathBuf,
    pub mask: Option<PathBuf>,
}

/// The patients found under a folder, and the patient folders that cannot be used.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SynthradScan {
    pub root: PathBuf,
    pub subjects: Vec<SynthradSubject>,
    /// One line per unusable patient folder (a missing, ambiguous or unreadable file).
    pub skipped: Vec<Skipped>,
}

/// Levels below the given folder searched for patient folders (root/Task1/region/patient).
const MAX_DEPTH: usize = 3;

const ROLES: [&str; 3] = ["mr", "ct", "mask"];

fn sorted_entries(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::file(dir, io_reason("cannot read directory", &e)))?;
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    for entry in rd.flatten() {
        let p = entry.path();
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => dirs.push(p),
            Ok(m) if m.is_file() => files.push(p),
            _ => {}
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}

/// The role (mr, ct, mask) an image file plays in a patient folder, by its name.
fn role_of(file: &Path) -> Option<usize> {
    if !is_grid_image_name(file) {
        return None;
    }
    let stem = image_stem(file);
    ROLES.iter().position(|r| *r == stem)
}

/// Finds the SynthRAD patients under `dir` (module docs). `Ok(None)` when `dir` holds no
/// patient folder at all (not that layout); an error only when `dir` cannot be read.
pub fn scan_synthrad(dir: &Path) -> Result<Option<SynthradScan>> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| Error::file(dir, io_reason("cannot open directory", &e)))?;
    if !meta.is_dir() {
        return Err(Error::file(dir, "not a directory"));
    }
    let mut scan = SynthradScan {
        root: dir.to_path_buf(),
        ..Default::default()
    };
    let mut found = false;
    let mut level = vec![dir.to_path_buf()];
    for depth in 0..=MAX_DEPTH {
        let mut next = Vec::new();
        for d in level {
            // Below the root, an unreadable folder is passed over like a non-patient one.
            let Ok((dirs, files)) = sorted_entries(&d) else {
                if depth == 0 {
                    sorted_entries(&d)?;
                }
                continue;
            };
            let mut by_role: [Vec<PathBuf>; 3] = Default::default();
            for f in files {
                if let Some(r) = role_of(&f) {
                    by_role[r].push(f);
                }
            }
            if by_role.iter().all(|v| v.is_empty()) {
                next.extend(dirs);
                continue;
            }
            found = true;
            match patient(&d, by_role) {
                Ok(s) => scan.subjects.push(s),
                Err(reason) => scan.skipped.push(Skipped {
                    path: d.clone(),
                    kind: SkipKind::Unreadable,
                    reason,
                }),
            }
        }
        level = next;
    }
    scan.subjects.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(found.then_some(scan))
}

fn patient(dir: &Path, by_role: [Vec<PathBuf>; 3]) -> std::result::Result<SynthradSubject, String> {
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let mut problems = Vec::new();
    let mut picked: [Option<PathBuf>; 3] = Default::default();
    for (r, files) in by_role.into_iter().enumerate() {
        match files.len() {
            0 if r < 2 => problems.push(format!("no {} file ({0}.nii.gz or {0}.mha)", ROLES[r])),
            0 => {}
            1 => {
                let f = &files[0];
                match std::fs::File::open(f) {
                    Ok(_) => picked[r] = Some(f.clone()),
                    Err(e) => {
                        problems.push(format!("{}: {}", f.display(), io_reason("cannot open", &e)))
                    }
                }
            }
            _ => problems.push(format!(
                "{} files for {}: {}",
                files.len(),
                ROLES[r],
                files
                    .iter()
                    .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    let [mr, ct, mask] = picked;
    match (mr, ct, problems.is_empty()) {
        (Some(mr), Some(ct), true) => Ok(SynthradSubject {
            id,
            dir: dir.to_path_buf(),
            mr,
            ct,
            mask,
        }),
        _ => Err(format!("SynthRAD patient {id}: {}", problems.join("; "))),
    }
}

/// The patients of a SynthRAD tree (module docs). Errors, naming the folder, when there is no
/// patient folder, or when any patient folder has a missing, ambiguous or unreadable file
/// (the first is named, with the count of the others); [`scan_synthrad`] reports those
/// per folder instead.
pub fn synthrad_subjects(dir: &Path) -> Result<Vec<SynthradSubject>> {
    let scan = scan_synthrad(dir)?.ok_or_else(|| {
        Error::file(
            dir,
            "not a SynthRAD layout: no patient folder holding mr and ct files (.nii.gz or .mha)",
        )
    })?;
    if let Some(first) = scan.skipped.first() {
        let more = scan.skipped.len() - 1;
        let tail = if more > 0 {
            format!(" (and {more} more patient folder(s))")
        } else {
            String::new()
        };
        return Err(Error::file(&first.path, format!("{}{tail}", first.reason)));
    }
    Ok(scan.subjects)
}

/// Which SynthRAD release's file format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynthradLayout {
    /// SynthRAD 2023: `.nii.gz`.
    Nifti2023,
    /// SynthRAD 2025: `.mha`.
    Mha2025,
}

impl SynthradLayout {
    pub fn extension(self) -> &'static str {
        match self {
            SynthradLayout::Nifti2023 => "nii.gz",
            SynthradLayout::Mha2025 => "mha",
        }
    }
}

/// One patient to write: values on `grid` (i fastest), MR and CT registered, mask 0/1.
#[derive(Clone, Copy, Debug)]
pub struct SynthradCase<'a> {
    pub id: &'a str,
    pub grid: &'a VoxelGrid,
    pub mr: &'a [f32],
    pub ct: &'a [f32],
    pub mask: Option<&'a [f32]>,
}

/// Writes one patient as `dir/Task1/<region>/<id>/{mr,ct,mask}.<ext>` in `layout`'s format
/// (module docs) and returns the patient folder.
pub fn write_synthrad(
    dir: &Path,
    region: &str,
    case: &SynthradCase,
    layout: SynthradLayout,
) -> Result<PathBuf> {
    for (what, name) in [("region", region), ("patient id", case.id)] {
        let plain =
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
        if !plain {
            return Err(Error::Invalid(format!(
                "SynthRAD {what} '{name}' is not a plain folder name"
            )));
        }
    }
    let pdir = dir.join("Task1").join(region).join(case.id);
    std::fs::create_dir_all(&pdir)
        .map_err(|e| Error::file(&pdir, io_reason("cannot create directory", &e)))?;
    let mut parts = vec![
        ("mr", case.mr, ElementType::Float),
        ("ct", case.ct, ElementType::Short),
    ];
    if let Some(m) = case.mask {
        parts.push(("mask", m, ElementType::UChar));
    }
    let [nx, ny, _] = case.grid.dims;
    for (name, values, element) in parts {
        let path = pdir.join(format!("{name}.{}", layout.extension()));
        match layout {
            SynthradLayout::Mha2025 => {
                write_metaimage(&path, case.grid, values, element, true)?;
            }
            SynthradLayout::Nifti2023 => {
                let modality = if name == "mr" {
                    Modality::Mr
                } else {
                    Modality::Ct
                };
                let v = case.grid.volume(values, modality, &path)?;
                crate::sct::write_nifti(&path, &v, ny, nx, values, &format!("SynthRAD {name}"))?;
            }
        }
    }
    Ok(pdir)
}

/// Writes `subjects` phantom subjects (the same subjects, for a seed, as
/// [`super::write_phantom`]) in a SynthRAD layout: `out/{train,test}/Task1/brain/<id>/`, split
/// as the DICOM phantom is, with the body mask (every voxel that is not air outside the head).
/// Fails when `subjects` < 2, or when out/train or out/test exists and `opts.force` is false.
pub fn write_synthrad_phantom(
    out: &Path,
    subjects: usize,
    seed: u64,
    opts: &PhantomOptions,
    layout: SynthradLayout,
) -> Result<PhantomSummary> {
    crate::data::phantom::check_request(subjects, opts)?;
    let (train_dir, test_dir) = (out.join("train"), out.join("test"));
    for d in [&train_dir, &test_dir] {
        if d.exists() {
            if !opts.force {
                return Err(Error::file(
                    d,
                    "already exists; use --force to replace the phantom",
                ));
            }
            std::fs::remove_dir_all(d)
                .map_err(|e| Error::file(d, io_reason("cannot remove", &e)))?;
        }
    }
    let n_test = ((subjects as f64 * opts.test_fraction).round() as usize).clamp(1, subjects - 1);
    let n_train = subjects - n_test;
    let mut summary = PhantomSummary {
        out: out.to_path_buf(),
        seed,
        train: vec![],
        test: vec![],
        slices: vec![],
        files_written: 0,
    };
    for i in 0..subjects {
        let s = phantom_subject(seed, i, opts);
        let first = s.positions.first().copied().unwrap_or([0.0; 3]);
        let step = match s.positions.as_slice() {
            [a, b, ..] => (b[2] - a[2]).abs().max(1e-6),
            _ => s.slice_thickness,
        };
        let grid = VoxelGrid {
            dims: [s.cols, s.rows, s.slices],
            spacing: [s.pixel_spacing, s.pixel_spacing, step],
            origin: first,
            axes: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        };
        let mask: Vec<f32> = s
            .labels
            .iter()
            .map(|&l| f32::from(l != Tissue::Air as u8))
            .collect();
        let case = SynthradCase {
            id: &s.id,
            grid: &grid,
            mr: &s.mr,
            ct: &s.ct_hu,
            mask: Some(&mask),
        };
        let split = if i < n_train { &train_dir } else { &test_dir };
        write_synthrad(split, "brain", &case, layout)?;
        summary.files_written += 3;
        summary.slices.push(s.slices);
        if i < n_train {
            summary.train.push(s.id);
        } else {
            summary.test.push(s.id);
        }
    }
    Ok(summary)
}
