//! Compiles every proto under `proto/` with protox (no system protoc) and keeps the
//! descriptor set for gRPC reflection.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let mut files = Vec::new();
    collect(&root, &mut files)?;
    files.sort();
    let mut compiler = protox::Compiler::new([&root])?;
    compiler
        .include_source_info(true)
        .include_imports(true)
        .open_files(&files)?;
    let fds = compiler.file_descriptor_set();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Encoded by the compiler, which keeps custom options such as `ism.types.v1.limits`
    // (prost's descriptor types drop them).
    std::fs::write(
        out.join("ism_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    // Type names let event payloads travel as `google.protobuf.Any`.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    // A Contact's custom values decode without hashing and come out in key order: a
    // streamed segment carries 20 or so per Contact.
    config.btree_map([".ism.contacts.v1.Contact.custom_fields"]);
    // Every method decodes its requests through the checking codec (`src/codec.rs`).
    tonic_prost_build::configure()
        .codec_path("crate::codec::CheckedCodec")
        .compile_fds_with_config(fds, config)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}

fn collect(dir: &std::path::Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            files.push(path);
        }
    }
    Ok(())
}
