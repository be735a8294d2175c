//! report.html of a training run: written beside losses.csv after every epoch, reasonably
//! formed (every element closed in order, void elements aside), every image it shows exists in
//! the run directory, and the configuration, the validation scores and the CLI's record appear.
//! scripts/check_report.sh renders it in headless Chromium.

mod common;
use common::*;
use mr2ct::cyclegan::train::{Domains, RunOptions, Trainer};
use mr2ct::cyclegan::validation::{HeldOut, Validation};
use mr2ct::cyclegan::TrainConfig;

const VOID: [&str; 6] = ["meta", "img", "br", "hr", "link", "input"];

/// Start and end tags in order: (name, is_end, the tag's text).
fn tags(html: &str) -> Vec<(String, bool, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        let end = rest[at..]
            .find('>')
            .unwrap_or_else(|| panic!("unclosed '<' near {:?}", &rest[at..at + 40]));
        let tag = &rest[at + 1..at + end];
        rest = &rest[at + end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        let is_end = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        assert!(!name.is_empty(), "empty tag <{tag}>");
        out.push((name.to_ascii_lowercase(), is_end, tag.to_string()));
    }
    out
}

/// Panics unless every non-void element is closed, innermost first; returns the tags.
fn check_nesting(html: &str) -> Vec<(String, bool, String)> {
    let all = tags(html);
    let mut open: Vec<&str> = Vec::new();
    for (name, is_end, text) in &all {
        if VOID.contains(&name.as_str()) {
            assert!(!is_end, "end tag of void element <{text}>");
            continue;
        }
        if *is_end {
            assert_eq!(
                open.pop(),
                Some(name.as_str()),
                "</{name}> closes the wrong element"
            );
        } else {
            open.push(name);
        }
    }
    assert!(open.is_empty(), "elements left open: {open:?}");
    all
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

#[test]
fn run_writes_a_well_formed_report_that_shows_its_files_and_config() {
    let g = gpu();
    let size = 64;
    let n = 6;
    let per = size * size;
    let mr = host_values(31, n * per);
    let ct: Vec<f32> = host_values(32, n * per)
        .iter()
        .map(|v| v * 0.8 - 0.1)
        .collect();
    let cfg = TrainConfig {
        ngf: 4,
        ndf: 4,
        n_blocks: 1,
        batch_size: 3,
        epochs: 2,
        seed: 77,
        ..TrainConfig::resnet_defaults()
    };
    let dir = std::env::temp_dir().join(format!("mr2ct-test-{}-report", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // What the CLI writes before training: the report shows it.
    std::fs::write(
        dir.join("config.json"),
        r#"{"data": "/data/phantom-<7>", "prep": {"size": 64}}"#,
    )
    .unwrap();
    let mut t = Trainer::new(&g, cfg).unwrap();
    t.validation = Some(Validation {
        held_out: HeldOut {
            mr: mr[..2 * per].to_vec(),
            ct: ct[..2 * per].to_vec(),
            channels: 1,
            size,
        },
        every: 1,
    });
    t.run(
        &Domains {
            mr: &mr,
            ct: &ct,
            size,
        },
        &RunOptions {
            out_dir: dir.clone(),
            sample_every: 1,
            checkpoint_every: 0,
            progress: false,
            stop: None,
            stop_after_steps: None,
            after_step: None,
        },
    )
    .unwrap();

    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html written");
    assert!(html.starts_with("<!DOCTYPE html>"), "doctype");
    let all = check_nesting(&html);
    let srcs: Vec<&str> = all
        .iter()
        .filter(|(name, end, _)| name == "img" && !end)
        .map(|(_, _, text)| attribute(text, "src").expect("img without src"))
        .collect();
    for src in &srcs {
        assert!(
            !src.contains('/') && dir.join(src).is_file(),
            "img src {src:?} is not a file in the run directory"
        );
    }
    for want in [
        "loss_curves.png",
        "samples_epoch0001.png",
        "samples_epoch0002.png",
    ] {
        assert!(srcs.contains(&want), "no <img> of {want}: {srcs:?}");
    }
    // The configuration, as JSON, with this run's values.
    for want in [
        "&quot;seed&quot;: 77",
        "&quot;ngf&quot;: 4",
        "&quot;n_blocks&quot;: 1",
        "&quot;model&quot;: &quot;resnet&quot;",
    ] {
        assert!(html.contains(want), "config value {want} missing");
    }
    // One validation row per epoch, with the MAE of the history.
    for (i, h) in t.history.iter().enumerate() {
        let v = h.val.expect("validated every epoch");
        let row = format!("<td>{}</td><td>{:.2}</td>", i + 1, v.mae);
        assert!(html.contains(&row), "validation row {row} missing");
    }
    // The CLI's record, escaped, and the data the trainer saw.
    assert!(
        html.contains("/data/phantom-&lt;7&gt;"),
        "config.json content"
    );
    assert!(html.contains("<td class=\"l\">6</td>"), "sample counts");
    assert!(html.contains("epoch 2 of 2"), "title");
    let _ = std::fs::remove_dir_all(dir);
}
