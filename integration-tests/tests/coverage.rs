//! Who is far from help, on a real node: population imported by the CLI, CoverageService
//! called by Python grpcio and checked against its own computation, an ONLINE filter changed
//! by a connectivity report; and the CLI's table, map and GeoJSON.

#[allow(dead_code)]
mod support;

use std::process::{Command, Output};

use support::{NodeProcess, binary, python, workspace_root};

fn hubdir(args: &[&str]) -> Output {
    Command::new(binary("hubdir")).args(args).output().expect("run hubdir")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A database with Toronto Public Library branches and US public library outlets (fixture
/// samples) and the GeoNames sample as layer `geonames-sample`.
fn database(dir: &std::path::Path) -> String {
    let db = sites(dir);
    let output = import_population(&population(), &db, &dir.join("population-errors.csv"), &[]);
    assert!(output.status.success(), "{}", text(&output));
    db
}

/// `hubdir population import FILE --layer geonames-sample --db DB --errors ERRORS EXTRA...`
fn import_population(file: &str, db: &str, errors: &std::path::Path, extra: &[&str]) -> Output {
    let errors = errors.display().to_string();
    let args = ["population", "import", file, "--layer", "geonames-sample", "--db", db, "--errors", &errors];
    hubdir(&[&args[..], extra].concat())
}

/// A database with the two site samples only.
fn sites(dir: &std::path::Path) -> String {
    let db = format!("sqlite://{}", dir.join("coverage.db").display());
    let root = workspace_root();
    for (file, mapping) in
        [("ca-toronto-libraries.geojson", "ca-toronto-libraries"), ("us-imls-sample.csv", "us-imls-pls-outlets")]
    {
        let file = root.join("integration-tests/fixtures/import").join(file).display().to_string();
        let mapping = root.join("examples/mappings").join(format!("{mapping}.toml")).display().to_string();
        let errors = dir.join(format!("{}-errors.csv", &mapping[mapping.len() - 10..])).display().to_string();
        let output = hubdir(&["import", &file, "--mapping", &mapping, "--db", &db, "--errors", &errors]);
        // The samples hold a few rows the mappings reject (exit 3), as the import tests show.
        assert!(matches!(output.status.code(), Some(0 | 3)), "{}", text(&output));
    }
    db
}

fn population() -> String {
    workspace_root().join("integration-tests/fixtures/population/geonames-cities1000-sample.csv").display().to_string()
}

#[test]
fn population_imports_replace_whole_layers_and_report_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("population.db").display());
    let errors = dir.path().join("errors.csv");
    let output = import_population(&population(), &db, &errors, &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("read 128, imported 128 places"), "{}", text(&output));

    // A file with bad rows: each reported with its row and field; past --max-rejected,
    // nothing is written and the layer stays as it was (exit 3).
    let bad = dir.path().join("bad.csv");
    let mut rows =
        std::fs::read_to_string(population()).unwrap().lines().take(4).map(str::to_owned).collect::<Vec<_>>();
    rows.push("999,Nowhere,XX,00,95.0,10.0,-5,UTC,PPL".into());
    rows.push(rows[1].clone());
    std::fs::write(&bad, rows.join("\n") + "\n").unwrap();
    let bad = bad.display().to_string();
    let output = import_population(&bad, &db, &errors, &[]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let report = std::fs::read_to_string(&errors).unwrap();
    for expected in [
        "4,5,999,country_code,INVALID_FORMAT",
        "999,location.latitude,OUT_OF_RANGE",
        "999,population,INVALID_FORMAT",
        "DUPLICATE_ID",
    ] {
        assert!(report.contains(expected), "missing {expected}:\n{report}");
    }
    let listed = hubdir(&["population", "list", "--db", &db]);
    assert!(text(&listed).contains("geonames-sample") && text(&listed).contains("128"), "{}", text(&listed));
    // Allowed, the valid rows replace the layer whole.
    let output = import_population(&bad, &db, &errors, &["--max-rejected", "2"]);
    assert!(output.status.success(), "{}", text(&output));
    let listed = hubdir(&["population", "list", "--db", &db]);
    assert!(
        text(&listed).lines().any(|l| l.starts_with("geonames-sample") && l.contains("    3 ")),
        "{}",
        text(&listed)
    );
    // Not GeoNames' layout, and no mapping: refused, naming the way out.
    let output = hubdir(&[
        "population",
        "import",
        &workspace_root().join("integration-tests/fixtures/import/us-imls-sample.csv").display().to_string(),
        "--layer",
        "x",
        "--db",
        &db,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains("--mapping"), "{}", text(&output));
}

#[test]
fn coverage_answers_python_grpcio_as_computed_there_and_follows_connectivity() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let sites = dir.path().join("sites.geojson").display().to_string();
    let output = hubdir(&["export", "--format", "geojson", "--db", &db, "--out", &sites]);
    assert!(output.status.success(), "{}", text(&output));

    // The node owns ca-tpl, so it records measurements of Toronto's branches.
    let node = NodeProcess::start_on(
        "hubdir",
        &["serve", "--node-id", "ca-tpl"],
        "[auth]\nanonymous_discovery = false\n",
        Some(&db),
    );
    let reader = node.token("sites.read", None, None, &[]);
    let albion = "sites/ca-tpl/AB";
    let agent = node.token("connectivity.report", None, None, &[albion]);
    let report = python(
        "coverage.py",
        &node.address,
        &[&sites, &population(), "geonames-sample"],
        &[("HUBDIR_TOKEN", &reader), ("HUBDIR_AGENT_TOKEN", &agent), ("HUBDIR_AGENT_SITE", albion)],
    );
    for check in ["coverage:", "summarize:", "online:", "errors:"] {
        assert!(report.contains(check), "missing {check}:\n{report}");
    }
    println!("{report}");
}

#[test]
fn the_cli_prints_the_table_draws_the_map_and_writes_geojson_cells() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let map = dir.path().join("toronto.svg");
    let cells = dir.path().join("toronto.geojson");
    let output = hubdir(&[
        "coverage",
        "--db",
        &db,
        "--layer",
        "geonames-sample",
        "--country",
        "CA",
        "--service",
        "public-internet",
        "--km",
        "2,5,25",
        "--map",
        &map.display().to_string(),
        "--geojson",
        &cells.display().to_string(),
    ]);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    for line in ["within     2 km", "within     5 km", "beyond    25 km", "most populated places beyond 25 km"] {
        assert!(printed.contains(line), "missing {line:?}:\n{printed}");
    }
    let svg = std::fs::read_to_string(&map).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polygon") && svg.contains("<circle") && svg.contains("no help point"),
        "{}",
        &svg[..svg.len().min(500)]
    );
    let collection: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cells).unwrap()).unwrap();
    let features = collection["features"].as_array().unwrap();
    assert!(!features.is_empty());
    let people: i64 = features.iter().map(|f| f["properties"]["people"].as_i64().unwrap()).sum();
    let total: i64 = printed
        .lines()
        .find_map(|l| l.split(" places, ").nth(1))
        .unwrap()
        .trim()
        .trim_end_matches(" people")
        .replace(',', "")
        .parse()
        .unwrap();
    assert_eq!(people, total, "the cells' people are the table's");
    let ring = features[0]["geometry"]["coordinates"][0].as_array().unwrap();
    assert_eq!(ring.first(), ring.last(), "a closed ring");
    // Bad input is named.
    let output = hubdir(&["coverage", "--db", &db, "--layer", "nope", "--country", "CA"]);
    assert!(!output.status.success() && text(&output).contains("nope"), "{}", text(&output));
    let output = hubdir(&["coverage", "--db", &db, "--layer", "geonames-sample", "--country", "CA", "--map", "x.png"]);
    assert!(!output.status.success() && text(&output).contains("SVG"), "{}", text(&output));
}
