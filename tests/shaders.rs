//! Every WGSL file in shaders/ is parsed and validated by naga, so a shader error points at
//! its file and line at test time, and every file is registered in `mr2ct::engine::shaders::ALL`.

use std::path::Path;

#[test]
fn every_shader_parses_and_validates() {
    for shader in mr2ct::engine::shaders::ALL {
        let path = format!("shaders/{}.wgsl", shader.name);
        let module = naga::front::wgsl::parse_str(shader.source)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string_with_path(shader.source, &path)));
        // The subgroup kernels are compiled only on adapters that have subgroup operations.
        let caps = if shader.name.ends_with("_subgroup") {
            naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP
        } else {
            naga::valid::Capabilities::default()
        };
        let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
        validator
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(
                naga::valid::SubgroupOperationSet::BASIC
                    | naga::valid::SubgroupOperationSet::BALLOT,
            );
        if let Err(e) = validator.validate(&module) {
            panic!("{}", e.emit_to_string_with_path(shader.source, &path));
        }
        assert!(!module.entry_points.is_empty(), "{path} has no entry point");
    }
}

#[test]
fn every_file_in_shaders_is_registered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let registered: Vec<&str> = mr2ct::engine::shaders::ALL.iter().map(|s| s.name).collect();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().and_then(|e| e.to_str()) == Some("wgsl") {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_owned();
            assert!(
                registered.contains(&stem.as_str()),
                "{} is not in mr2ct::engine::shaders::ALL",
                p.display()
            );
        }
    }
}

#[test]
fn a_broken_shader_is_reported_with_its_line() {
    // The validation path above must actually catch errors: feed it a known-bad kernel.
    let src = "@compute @workgroup_size(1)\nfn main() {\n  let x: f32 = 1u;\n}\n";
    let msg = match naga::front::wgsl::parse_str(src) {
        Err(e) => e.emit_to_string_with_path(src, "bad.wgsl"),
        Ok(module) => match naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        {
            Err(e) => e.emit_to_string_with_path(src, "bad.wgsl"),
            Ok(_) => panic!("a type error was accepted"),
        },
    };
    assert!(msg.contains("bad.wgsl:3"), "{msg}");
}
