//! Writes the man pages: `pushmfa-man [DIR]` (default packaging/man).

fn main() {
    let dir = std::env::args_os().nth(1).map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/man"),
        std::path::PathBuf::from,
    );
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("pushmfa-man: {}: {e}", dir.display());
        std::process::exit(1);
    }
    for (name, bytes) in pushmfa_tests::man::pages() {
        let path = dir.join(&name);
        if let Err(e) = std::fs::write(&path, bytes) {
            eprintln!("pushmfa-man: {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("{}", path.display());
    }
}
