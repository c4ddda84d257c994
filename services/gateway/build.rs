//! Embeds the storefront (`web/`) in the binary: a table of its files and one version, a hash of
//! all of them, that names the asset directory. A changed file gives a new URL, so browsers can
//! cache every asset forever and still never run a stale mix of old and new modules.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("services/gateway/web exists")
        .map(|e| {
            e.expect("readable web/ entry")
                .file_name()
                .into_string()
                .expect("UTF-8 name")
        })
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    // FNV-1a over names and contents: no hashing crate needed for a cache-busting name.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut table = String::new();
    for name in &names {
        let path = dir.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        let bytes = std::fs::read(&path).expect("readable web/ file");
        for b in name
            .as_bytes()
            .iter()
            .chain([0u8].iter())
            .chain(bytes.iter())
        {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        writeln!(
            table,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("write to String");
    }
    let out = format!(
        "/// Names the asset directory: changes whenever any file of `web/` does.\n\
         pub const VERSION: &str = \"{hash:016x}\";\n\
         /// Every file of `web/`, by name.\n\
         pub static FILES: &[(&str, &[u8])] = &[\n{table}];\n"
    );
    let target =
        Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR set by cargo")).join("web_assets.rs");
    std::fs::write(target, out).expect("write web_assets.rs");
}
