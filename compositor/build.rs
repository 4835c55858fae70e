//! Compiles the compositor's WGSL shaders to SPIR-V with naga (a Rust library: no
//! network, no external tool, no prebuilt binaries). Each `shaders/NAME.wgsl` becomes
//! `$OUT_DIR/NAME.spv` (a shader with a `KIND` override: `NAME-K.spv` for each layer kind
//! K), validated on the way.

// Build scripts talk to cargo through stdout.
#![allow(clippy::disallowed_macros)]

use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo::rerun-if-changed=shaders");
    let mut names: Vec<_> = std::fs::read_dir("shaders")
        .expect("compositor/shaders exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    names.sort();
    for path in names {
        let src = std::fs::read_to_string(&path).expect("readable shader");
        let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| {
            panic!("{}:\n{}", path.display(), e.emit_to_string(&src));
        });
        let stem = path
            .file_stem()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let info = validate(&module, &path);
        // A shader with a `KIND` override is built once per layer kind (render::kind:
        // projection, quad, cylinder, equirect, equirect by scale and bias, cube; and 6,
        // a projection layer that uses its source alpha).
        let builds: Vec<(String, Option<u32>)> = if module
            .overrides
            .iter()
            .any(|(_, o)| o.name.as_deref() == Some("KIND"))
        {
            (0..7).map(|k| (format!("{stem}-{k}"), Some(k))).collect()
        } else {
            vec![(stem, None)]
        };
        for (name, kind) in builds {
            let mut constants = naga::back::PipelineConstants::default();
            if let Some(k) = kind {
                constants.insert("KIND".to_string(), f64::from(k));
            }
            let (module, info) =
                naga::back::pipeline_constants::process_overrides(&module, &info, None, &constants)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let options = naga::back::spv::Options {
                lang_version: (1, 0),
                flags: naga::back::spv::WriterFlags::empty(),
                ..Default::default()
            };
            let words = naga::back::spv::write_vec(&module, &info, &options, None)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            std::fs::write(Path::new(&out).join(format!("{name}.spv")), bytes)
                .expect("OUT_DIR is writable");
        }
    }
}

fn validate(module: &naga::Module, path: &Path) -> naga::valid::ModuleInfo {
    // SHADER_FLOAT16_IN_FLOAT32: pack2x16float/unpack2x16float (SPIR-V's GLSL.std.450
    // PackHalf2x16, core in Vulkan: no 16-bit types involved).
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::PUSH_CONSTANT
            | naga::valid::Capabilities::DUAL_SOURCE_BLENDING
            | naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32,
    )
    .validate(module)
    .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
}
