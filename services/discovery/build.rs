//! Embeds every string catalogue of the page (`page/i18n/*.json`): adding a language is
//! adding its file. A catalogue that is not a JSON object of strings, or a missing English
//! one (the fallback), fails the build.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("page/i18n");
    println!("cargo:rerun-if-changed=page/i18n");
    let mut languages: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
        .collect();
    languages.sort();
    if !languages.iter().any(|l| l == "en") {
        return Err("page/i18n/en.json, the fallback catalogue, is missing".into());
    }
    let mut out = String::from(
        "/// Every catalogue of `page/i18n`: (language tag, JSON).\nconst CATALOGUES: &[(&str, &str)] = &[\n",
    );
    for language in &languages {
        println!("cargo:rerun-if-changed=page/i18n/{language}.json");
        let path = dir.join(format!("{language}.json"));
        let strings: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&path)?).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some((key, _)) = strings.iter().find(|(_, v)| !v.is_string()) {
            return Err(format!("{}: `{key}` is not a string", path.display()).into());
        }
        writeln!(out, "    ({language:?}, include_str!({:?})),", path.display().to_string())?;
    }
    out.push_str("];\n");
    std::fs::write(PathBuf::from(std::env::var("OUT_DIR")?).join("catalogues.rs"), out)?;
    Ok(())
}
