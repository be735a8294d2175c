//! Every kernel's binding-0 uniform block has the same layout on both sides of the border:
//! each block in `mr2ct::engine::uniforms::all()` is compared, member by member (name, type,
//! offset, in order) and in total size, with the WGSL struct naga lays out for each shader it
//! names, and every uniform block any shader binds must be listed there.

use mr2ct::engine::shaders::{Shader, ALL as SHADERS};
use mr2ct::engine::uniforms::{all as uniform_blocks, UniformField, UniformLayout};

fn parse(shader: &Shader) -> naga::Module {
    let path = format!("shaders/{}.wgsl", shader.name);
    naga::front::wgsl::parse_str(shader.source)
        .unwrap_or_else(|e| panic!("{}", e.emit_to_string_with_path(shader.source, &path)))
}

/// The Rust spelling of a WGSL member type, for the types uniform blocks use.
fn rust_spelling(module: &naga::Module, ty: naga::Handle<naga::Type>) -> String {
    fn scalar(s: naga::Scalar) -> String {
        let kind = match s.kind {
            naga::ScalarKind::Uint => "u",
            naga::ScalarKind::Sint => "i",
            naga::ScalarKind::Float => "f",
            other => return format!("{other:?}"),
        };
        format!("{kind}{}", s.width as u32 * 8)
    }
    match &module.types[ty].inner {
        naga::TypeInner::Scalar(s) => scalar(*s),
        naga::TypeInner::Vector { size, scalar: s } => {
            format!("[{}; {}]", scalar(*s), *size as u32)
        }
        other => format!("{other:?}"),
    }
}

/// Names of the struct types bound as `var<uniform>` in `module`, with their binding.
fn uniform_structs(module: &naga::Module) -> Vec<(String, Option<naga::ResourceBinding>)> {
    module
        .global_variables
        .iter()
        .filter(|(_, v)| v.space == naga::AddressSpace::Uniform)
        .map(|(_, v)| {
            let name = module.types[v.ty].name.clone().unwrap_or_default();
            (name, v.binding)
        })
        .collect()
}

/// Every difference between `layout` and its WGSL struct in `shader`, one line each.
fn mismatches(layout: &UniformLayout, shader: &Shader) -> Vec<String> {
    let module = parse(shader);
    let at = format!(
        "{} vs `{}` in shaders/{}.wgsl",
        layout.rust_name, layout.wgsl_struct, shader.name
    );
    if !uniform_structs(&module)
        .iter()
        .any(|(name, _)| name == layout.wgsl_struct)
    {
        return vec![format!("{at}: no `var<uniform>` of that struct type")];
    }
    let Some((members, span)) = module.types.iter().find_map(|(_, t)| match &t.inner {
        naga::TypeInner::Struct { members, span }
            if t.name.as_deref() == Some(layout.wgsl_struct) =>
        {
            Some((members, *span))
        }
        _ => None,
    }) else {
        return vec![format!("{at}: no such struct")];
    };
    let mut out = Vec::new();
    if layout.size != span as usize {
        out.push(format!(
            "{at}: size {} bytes in Rust, {span} in WGSL",
            layout.size
        ));
    }
    for i in 0..layout.fields.len().max(members.len()) {
        let rust = layout
            .fields
            .get(i)
            .map(|UniformField { name, offset, ty }| format!("{name}: {ty} @ {offset}"));
        let wgsl = members.get(i).map(|m| {
            format!(
                "{}: {} @ {}",
                m.name.as_deref().unwrap_or("?"),
                rust_spelling(&module, m.ty),
                m.offset
            )
        });
        if rust != wgsl {
            out.push(format!(
                "{at}: field {i} is `{}` in Rust, `{}` in WGSL",
                rust.as_deref().unwrap_or("(none)"),
                wgsl.as_deref().unwrap_or("(none)")
            ));
        }
    }
    out
}

#[test]
fn every_registered_uniform_block_matches_its_wgsl_struct() {
    let mut problems = Vec::new();
    for layout in uniform_blocks() {
        for shader in layout.shaders {
            problems.extend(mismatches(layout, shader));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_uniform_block_a_shader_binds_is_registered_at_binding_0() {
    let mut problems = Vec::new();
    for shader in SHADERS {
        for (name, binding) in uniform_structs(&parse(shader)) {
            let path = format!("shaders/{}.wgsl", shader.name);
            if !matches!(
                binding,
                Some(naga::ResourceBinding {
                    group: 0,
                    binding: 0
                })
            ) {
                problems.push(format!(
                    "{path}: uniform `{name}` is at {binding:?}, the engine binds params at group 0, binding 0"
                ));
            }
            let registered = uniform_blocks()
                .any(|l| l.wgsl_struct == name && l.shaders.iter().any(|s| s.name == shader.name));
            if !registered {
                problems.push(format!(
                    "{path}: uniform `{name}` has no Rust block in mr2ct::engine::uniforms::all() \
                     (declare it with uniform_blocks! in the op's file, naming this shader)"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn a_drifted_layout_is_reported_field_by_field() {
    // The comparison above must catch drift: a copy of pad's block with two fields swapped,
    // one retyped and one appended, checked against the real shaders/pad.wgsl.
    let pad = uniform_blocks()
        .find(|l| l.rust_name == "PadParams")
        .expect("PadParams is registered");
    let fields: &'static [UniformField] = Box::leak(Box::new([
        UniformField {
            name: "numel",
            offset: 0,
            ty: "u32",
        },
        UniformField {
            name: "w",
            offset: 4,
            ty: "u32",
        },
        UniformField {
            name: "h",
            offset: 8,
            ty: "u32",
        },
        UniformField {
            name: "pad",
            offset: 12,
            ty: "f32",
        },
        UniformField {
            name: "extra",
            offset: 16,
            ty: "f32",
        },
    ]));
    let drifted = UniformLayout {
        rust_name: "DriftedPadParams",
        wgsl_struct: pad.wgsl_struct,
        shaders: pad.shaders,
        size: 20,
        fields,
    };
    let report = mismatches(&drifted, pad.shaders[0]).join("\n");
    for needle in [
        "size 20 bytes in Rust, 16 in WGSL",
        "field 1 is `w: u32 @ 4` in Rust, `h: u32 @ 4` in WGSL",
        "field 2 is `h: u32 @ 8` in Rust, `w: u32 @ 8` in WGSL",
        "field 3 is `pad: f32 @ 12` in Rust, `pad: u32 @ 12` in WGSL",
        "field 4 is `extra: f32 @ 16` in Rust, `(none)` in WGSL",
    ] {
        assert!(report.contains(needle), "missing `{needle}` in:\n{report}");
    }
}
