//! Finding the images under a directory and turning them into volumes: the recursive walk,
//! the modality rule for NIfTI and MetaImage files, the two-pass streaming scan (headers group
//! DICOM files into series, then each series is decoded), and the single-volume loader used by
//! translate and eval.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::metaimage::{self, is_metaimage_name, read_metaimage_inner};
use super::series::{group_series, volumes_from_dicom};
use super::{
    dicom, io_reason, nifti, Fail, LoadOptions, LoadSummary, Modality, SkipKind, Skipped, Volume,
};
use crate::engine::error::{Error, Result};

fn is_nifti_name(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

/// NIfTI and MetaImage files: one file (plus a MetaImage data file) is one volume.
pub(crate) fn is_grid_image_name(p: &Path) -> bool {
    is_nifti_name(p) || is_metaimage_name(p)
}

/// The file name without its image extension, lower case (`mr.nii.gz` -> `mr`).
pub(crate) fn image_stem(p: &Path) -> String {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    for ext in [".nii.gz", ".nii", ".mha", ".mhd"] {
        if let Some(stem) = name.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    name
}

/// Reads a NIfTI or MetaImage file (by its name) as one volume of `modality`; the volume's
/// MetaImage data file, if any, comes back too.
pub(crate) fn read_grid_volume(
    file: &Path,
    modality: Modality,
    opts: &LoadOptions,
) -> std::result::Result<(Volume, Option<PathBuf>), Fail> {
    if is_metaimage_name(file) {
        let img = read_metaimage_inner(file, opts)?;
        let data_file = img.data_file.clone();
        Ok((img.into_volume(modality)?, data_file))
    } else {
        let v = nifti::read_nifti_inner(file, opts).and_then(|img| img.into_volume(modality))?;
        Ok((v, None))
    }
}

/// Every regular file under `dir`, sorted, recursing into folders. Unreadable subfolders go to
/// `skipped`; an unreadable, missing or non-directory `dir` is an error.
fn walk(dir: &Path, skipped: &mut Vec<Skipped>) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| Error::file(dir, io_reason("cannot open directory", &e)))?;
    if !meta.is_dir() {
        return Err(Error::file(dir, "not a directory"));
    }
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut first = true;
    let mut visited = std::collections::HashSet::new();
    while let Some(d) = stack.pop() {
        // Guard against symlink loops: each real directory once.
        if let Ok(canon) = std::fs::canonicalize(&d) {
            if !visited.insert(canon) {
                continue;
            }
        }
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) => {
                if first {
                    return Err(Error::file(&d, io_reason("cannot read directory", &e)));
                }
                skipped.push(Skipped {
                    path: d.clone(),
                    kind: SkipKind::Unreadable,
                    reason: io_reason("cannot read directory", &e),
                });
                continue;
            }
        };
        first = false;
        let mut subdirs = Vec::new();
        for entry in rd {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    skipped.push(Skipped {
                        path: d.clone(),
                        kind: SkipKind::Unreadable,
                        reason: io_reason("cannot list directory entry", &e),
                    });
                    continue;
                }
            };
            let p = entry.path();
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => subdirs.push(p),
                Ok(m) if m.is_file() => files.push(p),
                Ok(_) => {}
                Err(e) => skipped.push(Skipped {
                    path: p,
                    kind: SkipKind::Unreadable,
                    reason: io_reason("cannot stat", &e),
                }),
            }
        }
        subdirs.sort();
        // Reverse so that popping visits folders in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    files.sort();
    Ok(files)
}

/// The modality a NIfTI or MetaImage file gets from its own name when that is exactly `mr` or
/// `ct` plus the extension (the SynthRAD naming), else from the nearest enclosing folder named
/// mr/mri/ct, looking at the folders from the file up to and including `root`.
fn nifti_folder_modality(file: &Path, root: &Path) -> Option<Modality> {
    match image_stem(file).as_str() {
        "mr" => return Some(Modality::Mr),
        "ct" => return Some(Modality::Ct),
        _ => {}
    }
    let mut cur = file.parent();
    while let Some(d) = cur {
        if let Some(m) = d
            .file_name()
            .and_then(|n| Modality::from_folder_name(&n.to_string_lossy()))
        {
            return Some(m);
        }
        if d == root {
            break;
        }
        cur = d.parent();
    }
    None
}

/// Reads every MR and CT image under `dir` (recursively) into volumes, with a summary of what
/// was used and skipped. Errors only when `dir` itself cannot be read; an empty result is Ok
/// (the caller decides whether that is fatal). Holds every volume in memory: for large trees
/// use [`for_each_volume`].
pub fn scan_volumes(dir: &Path, opts: &LoadOptions) -> Result<(Vec<Volume>, LoadSummary)> {
    let mut volumes = Vec::new();
    let summary = for_each_volume(dir, opts, |v, _| {
        volumes.push(v);
        Ok(())
    })?;
    Ok((volumes, summary))
}

/// Streams the volumes under `dir` to `f`, one at a time, so memory holds one decoded series
/// (plus whatever `f` keeps). Two passes: file headers (up to the pixel data) group DICOM files
/// into series; then each series is decoded, ordered and handed over. NIfTI and MetaImage files
/// come first, in path order, then DICOM series in (modality, SeriesInstanceUID) order. An
/// error from `f` stops the walk.
pub fn for_each_volume(
    dir: &Path,
    opts: &LoadOptions,
    mut f: impl FnMut(Volume, &mut LoadSummary) -> Result<()>,
) -> Result<LoadSummary> {
    let mut summary = LoadSummary {
        root: dir.to_path_buf(),
        ..Default::default()
    };
    let files = walk(dir, &mut summary.skipped)?;
    summary.files_seen = files.len();
    let accept = match opts.force_modality {
        Some(m) => dicom::Accept::Forced(m),
        None => dicom::Accept::MrCt,
    };
    let mut groups: BTreeMap<(Modality, String), Vec<PathBuf>> = BTreeMap::new();
    let mut loose = Vec::new();
    let mut hand_over = |v: Volume, summary: &mut LoadSummary| -> Result<()> {
        match v.modality {
            Modality::Mr => summary.mr_volumes += 1,
            Modality::Ct => summary.ct_volumes += 1,
        }
        f(v, summary)
    };
    // NIfTI and MetaImage files first, in path order; the data files of .mhd headers are
    // theirs, not candidates for the DICOM pass.
    let mut claimed = BTreeSet::new();
    for file in files.iter().filter(|f| is_grid_image_name(f)) {
        if file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("mhd"))
        {
            claimed.insert(file.with_extension("raw"));
            claimed.insert(file.with_extension("zraw"));
        }
        let modality = opts
            .force_modality
            .or_else(|| nifti_folder_modality(file, dir));
        let Some(modality) = modality else {
            summary.skipped.push(Skipped {
                path: file.clone(),
                kind: SkipKind::NoModality,
                reason: format!("{} file with no modality: put it under a folder named mr/ or ct/, or force the modality", format_name(file)),
            });
            continue;
        };
        match read_grid_volume(file, modality, opts) {
            Ok((v, data_file)) => {
                // A data file inside the tree is used too.
                let in_tree = data_file
                    .as_ref()
                    .is_some_and(|d| files.binary_search(d).is_ok());
                summary.files_used += 1 + usize::from(in_tree);
                claimed.extend(data_file);
                summary.warnings.extend(
                    v.warnings
                        .iter()
                        .map(|w| format!("{}: {w}", file.display())),
                );
                hand_over(v, &mut summary)?;
            }
            Err(fail) => summary.skipped.push(fail.into_skipped(file)),
        }
    }
    for file in &files {
        if is_grid_image_name(file) || claimed.contains(file) {
            continue;
        }
        match dicom::header_key(file, accept, opts) {
            Some(key) => groups.entry(key).or_default().push(file.clone()),
            // Unreadable header or refused modality: the full read below gives the reason.
            None => loose.push(file.clone()),
        }
    }
    let batches = groups
        .into_values()
        .chain(loose.into_iter().map(|p| vec![p]));
    for paths in batches {
        let mut decoded = Vec::new();
        for p in &paths {
            match dicom::read_dicom_inner(p, opts, accept) {
                Ok(df) => decoded.push(df),
                Err(fail) => summary.skipped.push(fail.into_skipped(p)),
            }
        }
        if decoded.is_empty() {
            continue;
        }
        let (vols, used) = group_series(decoded, &mut summary);
        summary.files_used += used;
        for v in vols {
            hand_over(v, &mut summary)?;
        }
    }
    summary.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(summary)
}

/// One volume from a NIfTI file, a single DICOM file, or a directory holding one series
/// (used by translate and eval). A directory with several series is an error listing them.
/// NIfTI needs `opts.force_modality` or an enclosing mr/ or ct/ folder.
pub fn load_volume(path: &Path, opts: &LoadOptions) -> Result<Volume> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::file(path, io_reason("cannot open", &e)))?;
    if meta.is_file() {
        if is_grid_image_name(path) {
            // Any enclosing folder named mr/ or ct/ counts here (the nearest wins).
            let modality = opts
                .force_modality
                .or_else(|| nifti_folder_modality(path, Path::new("/")))
                .ok_or_else(|| {
                    Error::file(path, format!("{} file with no modality: force the modality (MR or CT) or put it under a folder named mr/ or ct/", format_name(path)))
                })?;
            return read_grid_volume(path, modality, opts)
                .map(|(v, _)| v)
                .map_err(|f| f.into_error(path));
        }
        let accept = match opts.force_modality {
            Some(m) => dicom::Accept::Forced(m),
            None => dicom::Accept::MrCt,
        };
        let df = dicom::read_dicom_inner(path, opts, accept).map_err(|f| f.into_error(path))?;
        let mut summary = LoadSummary::default();
        let (mut vols, _) = group_series(vec![df], &mut summary);
        return vols
            .pop()
            .ok_or_else(|| Error::file(path, "no usable image"));
    }
    load_series_dir(path, opts).map(|(v, _)| v)
}

/// [`load_volume`] with the summary of the load: for a directory, every file it skipped and
/// why (a single file is used whole or is an error).
pub fn load_volume_reported(path: &Path, opts: &LoadOptions) -> Result<(Volume, LoadSummary)> {
    if path.is_dir() {
        return load_series_dir(path, opts);
    }
    let v = load_volume(path, opts)?;
    let summary = LoadSummary {
        root: path.to_path_buf(),
        files_seen: 1,
        files_used: 1,
        ..Default::default()
    };
    Ok((v, summary))
}

/// The one series under the directory `path`, with the summary of its load.
fn load_series_dir(path: &Path, opts: &LoadOptions) -> Result<(Volume, LoadSummary)> {
    let (vols, summary) = scan_volumes(path, opts)?;
    one_volume(path, vols, summary)
}

/// [`load_volume_reported`] of files held in memory (what a web page was given): one NIfTI
/// or MetaImage (.mha) file, or the files of one DICOM series, each named by its path (which
/// stands in for the folder when a file has no SeriesInstanceUID, and names it in messages).
/// `root` names the whole in errors. A NIfTI or MetaImage needs `opts.force_modality`.
pub fn load_volume_bytes(
    root: &Path,
    files: Vec<(PathBuf, Vec<u8>)>,
    opts: &LoadOptions,
) -> Result<(Volume, LoadSummary)> {
    let mut summary = LoadSummary {
        root: root.to_path_buf(),
        files_seen: files.len(),
        ..Default::default()
    };
    if let [(name, bytes)] = files.as_slice() {
        if is_grid_image_name(name) {
            let modality = opts.force_modality.ok_or_else(|| {
                Error::file(name, format!("{} file with no modality", format_name(name)))
            })?;
            let v = if is_metaimage_name(name) {
                let img = metaimage::read_metaimage_bytes(bytes, name, opts)
                    .map_err(|s| Error::file(name, s.reason))?;
                if img.data_file.is_some() {
                    return Err(Error::file(
                        name,
                        "its voxels are in a separate data file; give the single-file .mha form",
                    ));
                }
                img.to_volume(modality)?
            } else {
                nifti::read_nifti_bytes(bytes, name, opts)
                    .map_err(|s| Error::file(name, s.reason))?
                    .to_volume(modality)?
            };
            summary.files_used = 1;
            return Ok((v, summary));
        }
    }
    let accept = match opts.force_modality {
        Some(m) => dicom::Accept::Forced(m),
        None => dicom::Accept::MrCt,
    };
    let mut decoded = Vec::new();
    for (name, bytes) in files {
        match dicom::read_dicom_bytes(bytes, &name, opts, accept) {
            Ok(f) => decoded.push(f),
            Err(skipped) => summary.skipped.push(skipped),
        }
    }
    let (vols, grouped) = volumes_from_dicom(decoded);
    summary.files_used = grouped.files_used;
    summary.skipped.extend(grouped.skipped);
    summary.warnings.extend(grouped.warnings);
    one_volume(root, vols, summary)
}

/// The single volume of a load, or an error naming what was there instead.
fn one_volume(
    path: &Path,
    mut vols: Vec<Volume>,
    summary: LoadSummary,
) -> Result<(Volume, LoadSummary)> {
    match vols.len() {
        0 => Err(Error::file(path, no_usable_reason(&summary))),
        1 => Ok((vols.pop().expect("one volume"), summary)),
        n => Err(Error::file(
            path,
            format!(
                "holds {n} series ({}); pass the directory of one series",
                vols.iter()
                    .map(|v| v
                        .info
                        .series_instance_uid
                        .clone()
                        .unwrap_or_else(|| v.source.display().to_string()))
                    .take(4)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// "NIfTI" or "MetaImage", for messages.
fn format_name(p: &Path) -> &'static str {
    if is_metaimage_name(p) {
        "MetaImage"
    } else {
        "NIfTI"
    }
}

fn no_usable_reason(summary: &LoadSummary) -> String {
    if summary.files_seen == 0 && summary.skipped.is_empty() {
        return "empty directory: no files".to_string();
    }
    let mut r = format!("no usable image among {} file(s)", summary.files_seen);
    if !summary.skipped.is_empty() {
        // Every skipped file is named: the user has nothing else to go on.
        let each: Vec<String> = summary.skipped.iter().map(|s| s.to_string()).collect();
        r.push_str(&format!(
            " (skipped: {}: {})",
            summary.skip_counts_text(),
            each.join("; ")
        ));
    }
    r
}
