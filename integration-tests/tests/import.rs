//! `hubdir import` on samples of the real datasets: summaries, error reports, replays and
//! atomic imports, through the real binary.

// Shared with the node tests; this file uses only the binary and path helpers.
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::time::Duration;

use support::{NodeProcess, binary, python_bin, workspace_root};

fn fixture(name: &str) -> PathBuf {
    workspace_root().join("integration-tests/fixtures/import").join(name)
}

fn mapping(name: &str) -> PathBuf {
    workspace_root().join("examples/mappings").join(format!("{name}.toml"))
}

fn import(file: &Path, mapping: &Path, db: &str, errors: &Path, extra: &[&str]) -> Output {
    Command::new(binary("hubdir"))
        .arg("import")
        .arg(file)
        .arg("--mapping")
        .arg(mapping)
        .args(["--db", db, "--errors"])
        .arg(errors)
        .args(extra)
        .output()
        .expect("run hubdir import")
}

/// The summary's "rejected N REASON" lines.
fn rejected(stdout: &str) -> Vec<(String, u64)> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("rejected")).then(|| {
                let n = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                (words.next().unwrap_or("").to_owned(), n)
            })
        })
        .collect()
}

struct Run {
    stdout: String,
    errors_csv: String,
}

/// Runs an import whose valid rows are written; it exits 0 when no row was rejected and 3
/// when some were (the default `--max-rejected` is 0), as docs/IMPORT.md says.
fn run(file: &str, mapping_name: &str, db: &str, dir: &Path) -> Run {
    let errors = dir.join(format!("{mapping_name}-errors.csv"));
    let output = import(&fixture(file), &mapping(mapping_name), db, &errors, &[]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let any_rejected = rejected(&stdout).iter().any(|(_, n)| *n > 0);
    assert_eq!(output.status.code(), Some(if any_rejected { 3 } else { 0 }), "{stdout}{stderr}");
    if any_rejected {
        assert!(stderr.contains("more than --max-rejected allows"), "{stderr}");
    }
    Run { stdout, errors_csv: std::fs::read_to_string(errors).unwrap() }
}

#[test]
fn india_post_faults_are_each_rejected_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    india_post_import(&format!("sqlite://{}", dir.path().join("in.db").display()), dir.path());
}

#[test]
fn on_postgresql_india_post_faults_are_each_rejected_with_their_reason() {
    let Some(schema) = support::postgres_schema() else { return };
    let dir = tempfile::tempdir().unwrap();
    india_post_import(&schema.url, dir.path());
}

fn india_post_import(db: &str, dir: &Path) {
    let db = db.to_owned();
    let first = run("india-post-sample.csv", "india-post", &db, dir);
    assert!(
        first.stdout.starts_with("read 49, imported 39 (created 39, updated 0), unchanged 0, rejected 10"),
        "{}",
        first.stdout
    );
    let reasons = rejected(&first.stdout);
    for (reason, count) in [
        ("DUPLICATE_ID", 1),
        ("MISSING_COORDINATES", 1),
        ("NOT_A_NUMBER", 2),
        ("OUTSIDE_EXTENT", 2),
        ("PLACEHOLDER", 2),
        ("SWAPPED", 2),
    ] {
        assert!(reasons.contains(&(reason.to_owned(), count)), "{reason} x{count} missing from {reasons:?}");
    }
    // The report names row, line, site, field and reason of every rejected row.
    let report: Vec<&str> = first.errors_csv.lines().collect();
    assert_eq!(report[0], "row,line,site_id,field,reason,message");
    assert_eq!(report.len(), 11);
    assert!(report.iter().any(|l| l.starts_with("49,50,110090-Khajoori-Khas-BO,id,DUPLICATE_ID")), "{report:?}");

    // Replaying the same file changes nothing.
    let again = run("india-post-sample.csv", "india-post", &db, dir);
    assert!(
        again.stdout.starts_with("read 49, imported 0 (created 0, updated 0), unchanged 39, rejected 10"),
        "{}",
        again.stdout
    );

    // A scheduler that accepts these data errors says how many: at the threshold it exits 0,
    // one row under it 3, and the same as a share of the rows read.
    let errors = dir.join("threshold-errors.csv");
    for (threshold, code) in [("10", 0), ("9", 3), ("20.5%", 0), ("20%", 3)] {
        let output = import(
            &fixture("india-post-sample.csv"),
            &mapping("india-post"),
            &db,
            &errors,
            &["--max-rejected", threshold],
        );
        assert_eq!(output.status.code(), Some(code), "--max-rejected {threshold}");
    }
}

#[test]
fn atomic_imports_write_nothing_when_a_row_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("atomic.db").display());
    let errors = dir.path().join("errors.csv");
    let output = import(&fixture("india-post-sample.csv"), &mapping("india-post"), &db, &errors, &["--atomic"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("10 of 49 rows were rejected, so nothing was written"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&errors).unwrap().lines().count(), 11);
    // Nothing was written: a normal import afterwards creates every good row.
    let after = run("india-post-sample.csv", "india-post", &db, dir.path());
    assert!(after.stdout.contains("created 39"), "{}", after.stdout);
}

#[test]
fn windows_1252_bom_semicolon_and_geojson_sources_import() {
    let dir = tempfile::tempdir().unwrap();
    for (file, mapping_name, summary, reason) in [
        ("us-imls-sample.csv", "us-imls-pls-outlets", "read 28, imported 25", "UNMAPPED_VALUE"),
        ("fr-laposte-sample.csv", "fr-laposte-points", "read 32, imported 30", "MISSING_COORDINATES"),
        ("ca-toronto-libraries.geojson", "ca-toronto-libraries", "read 101, imported 100", "MISSING_COORDINATES"),
    ] {
        let db = format!("sqlite://{}", dir.path().join(format!("{mapping_name}.db")).display());
        let result = run(file, mapping_name, &db, dir.path());
        assert!(result.stdout.starts_with(summary), "{mapping_name}: {}", result.stdout);
        assert!(rejected(&result.stdout).iter().any(|(r, _)| r == reason), "{mapping_name}: {}", result.stdout);
        assert!(!result.errors_csv.contains("INVALID_BYTES"), "{mapping_name}: {}", result.errors_csv);
    }
}

#[test]
fn a_mapping_naming_a_missing_column_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(mapping("india-post")).unwrap().replace("{officename}", "{office_name}");
    std::fs::write(&bad, text).unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    let output = import(&fixture("india-post-sample.csv"), &bad, &db, &dir.path().join("e.csv"), &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("office_name"), "{stderr}");
    // No row was read, so no report of rejected rows is pointed to (finding 8).
    assert!(!stderr.contains("rejected rows so far"), "{stderr}");
}

#[test]
fn imports_stream_to_a_running_node_which_checks_the_token() {
    let node = NodeProcess::start("hubdir", &["serve", "--node-id", "in-post"], "");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}", node.address);
    let over_grpc = |token: &str| {
        let output = Command::new(binary("hubdir"))
            .arg("import")
            .arg(fixture("india-post-sample.csv"))
            .arg("--mapping")
            .arg(mapping("india-post"))
            .args(["--node", &url, "--errors"])
            .arg(dir.path().join("errors.csv"))
            .env("HUBDIR_TOKEN", token)
            .args(["--max-rejected", "10"])
            .output()
            .expect("run hubdir import");
        (output.status.code(), String::from_utf8(output.stdout).unwrap())
    };

    let publisher = node.token("sites.write", Some("in-post"), Some("India Post"), &[]);
    let (code, stdout) = over_grpc(&publisher);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.starts_with("read 49, imported 39 (created 39, updated 0), unchanged 0, rejected 10"), "{stdout}");
    let (_, again) = over_grpc(&publisher);
    assert!(again.contains("unchanged 39"), "{again}");

    // Another operator's token: the node refuses every row, and the report says why. A cron
    // job must not look green: exit 4, whatever --max-rejected allows.
    let stranger = node.token("sites.write", Some("in-post"), Some("Someone Else"), &[]);
    let (code, refused) = over_grpc(&stranger);
    assert_eq!(code, Some(4), "{refused}");
    assert!(refused.contains("imported 0"), "{refused}");
    assert!(rejected(&refused).contains(&("PERMISSION_DENIED".to_owned(), 39)), "{refused}");
    // A token the node refuses outright (here, not a token at all) exits 4 too, not 1.
    let (code, _) = over_grpc("not-a-token");
    assert_eq!(code, Some(4));
    let (status, _) = node.terminate(Duration::from_secs(30));
    assert!(status.success());
}

fn export(db: &str, format: &str, out: &Path) {
    let output = Command::new(binary("hubdir"))
        .args(["export", "--format", format, "--db", db, "--out"])
        .arg(out)
        .output()
        .expect("run hubdir export");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn exports_are_valid_hsds_geojson_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("export.db").display());
    run("ca-toronto-libraries.geojson", "ca-toronto-libraries", &db, dir.path());
    run("us-imls-sample.csv", "us-imls-pls-outlets", &db, dir.path());

    let hsds = dir.path().join("hsds.json");
    export(&db, "hsds", &hsds);
    let output = Command::new(python_bin())
        .arg(workspace_root().join("integration-tests/python/validate_hsds.py"))
        .arg(&hsds)
        .arg(workspace_root().join("integration-tests/fixtures/hsds-3.0"))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("125 service_at_locations, each with its service, valid"), "{stdout}");

    // And back in: an HSDS list imports through the HSDS mapping.
    let back = format!("sqlite://{}", dir.path().join("back.db").display());
    let errors = dir.path().join("back-errors.csv");
    let output = import(&hsds, &mapping("hsds-3.0"), &back, &errors, &[]);
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.starts_with("read 125, imported 125"), "{summary}{}", String::from_utf8_lossy(&output.stderr));

    let geojson = dir.path().join("sites.geojson");
    export(&db, "geojson", &geojson);
    let collection: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&geojson).unwrap()).unwrap();
    let features = collection["features"].as_array().unwrap();
    assert_eq!(features.len(), 125);
    let albion = features.iter().find(|f| f["properties"]["name"] == "sites/ca-tpl/AB").unwrap();
    // RFC 7946: longitude first (Albion branch, Toronto: 43.739826 N, 79.584096 W).
    assert_eq!(albion["geometry"]["coordinates"], serde_json::json!([-79.584096, 43.739826]));

    let csv = dir.path().join("sites.csv");
    export(&db, "csv", &csv);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("name,display_name,kind,"), "{text}");
    assert_eq!(text.lines().count(), 126);

    // hubdir's own CSV imports without a mapping, and back into the database it came from
    // every site is identical (unchanged: same content, same etag).
    let no_mapping = |db: &str| {
        let output = Command::new(binary("hubdir"))
            .arg("import")
            .arg(&csv)
            .args(["--db", db, "--errors"])
            .arg(dir.path().join("csv-errors.csv"))
            .output()
            .expect("run hubdir import");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let elsewhere = format!("sqlite://{}", dir.path().join("copy.db").display());
    assert!(no_mapping(&elsewhere).starts_with("read 125, imported 125"));
    let home = no_mapping(&db);
    assert!(home.starts_with("read 125, imported 0 (created 0, updated 0), unchanged 125"), "{home}");
}

#[test]
fn overpass_and_hsds_json_import_through_their_mappings() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("json.db").display());
    let osm = run("osm-overpass-sample.json", "osm-overpass", &db, dir.path());
    assert!(osm.stdout.starts_with("read 5, imported 2"), "{}", osm.stdout);
    let reasons = rejected(&osm.stdout);
    for reason in ["REQUIRED", "UNMAPPED_VALUE", "OUTSIDE_EXTENT"] {
        assert!(reasons.iter().any(|(r, n)| r == reason && *n == 1), "{reason} missing: {reasons:?}");
    }
    // The library's wifi, step-free access and hours come through its tags.
    let export_file = dir.path().join("osm.geojson");
    export(&db, "geojson", &export_file);
    let collection: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&export_file).unwrap()).unwrap();
    let library = collection["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["properties"]["name"] == "sites/osm/node-101")
        .unwrap();
    assert_eq!(library["properties"]["services"], serde_json::json!(["PUBLIC_INTERNET", "FREE_WIFI"]));
    assert_eq!(library["properties"]["opening_hours"], "Mo-Fr 08:00-17:00");

    // The HSDS specification's own example puts its location at (100, 101): refused, not fixed.
    let hsds = run("hsds-example-service_at_location_list.json", "hsds-3.0", &db, dir.path());
    assert!(hsds.stdout.contains("imported 0"), "{}", hsds.stdout);
    assert!(hsds.errors_csv.contains("OUT_OF_RANGE"), "{}", hsds.errors_csv);
}

/// Counts in a SQLite file, read with Python's sqlite3 (a reader hubdir did not write).
fn sqlite_counts(db_file: &Path) -> Vec<i64> {
    try_sqlite_counts(db_file).unwrap_or_else(|err| panic!("{err}"))
}

/// As [`sqlite_counts`]; an error while the file is still being created (no tables yet).
fn try_sqlite_counts(db_file: &Path) -> Result<Vec<i64>, String> {
    let script = "import sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1])\n\
        q = lambda sql: c.execute(sql).fetchone()[0]\n\
        print(q('select count(*) from sites'), q('select count(*) from change_log'),\n\
              q('select coalesce(max(last_seq), 0) from origin_sequences'), q('select count(*) from site_services'))";
    let output = Command::new(python_bin()).args(["-c", script]).arg(db_file).output().expect("run python3");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8(output.stdout).unwrap().split_whitespace().map(|n| n.parse().unwrap()).collect())
}

#[test]
fn a_killed_import_leaves_whole_transactions_and_resumes() {
    const ROWS: usize = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("big.csv");
    let mut text = String::from("id,name,lat,lng\n");
    for i in 0..ROWS {
        text.push_str(&format!(
            "{i},Help point {i},{},{}\n",
            -17.0 - (i % 500) as f64 / 1000.0,
            31.0 + (i / 500) as f64 / 1000.0
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let mapping_file = dir.path().join("m.toml");
    std::fs::write(
        &mapping_file,
        "[source]\nformat = \"csv\"\n[site]\norigin = \"zw\"\nid = \"{id}\"\ndisplay_name = \"{name}\"\n\
         kind = \"TELECENTRE\"\ncountry_code = \"ZW\"\nlatitude = \"{lat}\"\nlongitude = \"{lng}\"\n\
         time_zone = \"Africa/Harare\"\nservices = [\"FREE_WIFI\", \"PUBLIC_COMPUTERS\"]\n",
    )
    .unwrap();
    let db_file = dir.path().join("killed.db");
    let db = format!("sqlite://{}", db_file.display());
    let errors = dir.path().join("e.csv");
    let mut child = Command::new(binary("hubdir"))
        .arg("import")
        .arg(&csv)
        .arg("--mapping")
        .arg(&mapping_file)
        .args(["--db", &db, "--errors"])
        .arg(&errors)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some transactions have committed (a condition, polled), then kill -9.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        // Before the import's migrations ran there is a file but no table yet.
        let committed = try_sqlite_counts(&db_file).is_ok_and(|counts| counts.first().copied().unwrap_or(0) >= 2000);
        if committed || child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the import never committed 2,000 rows");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();

    let [sites, events, last_seq, services] = sqlite_counts(&db_file)[..] else { panic!() };
    assert!(!status.success(), "the import finished before it could be killed: the test tested nothing");
    assert!(sites > 0 && sites < ROWS as i64, "{sites} sites after the kill");
    // Whole transactions only: every site has its event and its services, and the
    // sequence counts exactly the events.
    assert_eq!(sites % 1000, 0, "a partial transaction survived: {sites} sites");
    assert_eq!((events, last_seq, services), (sites, sites, 2 * sites));

    // Running it again finishes the job: the killed run's sites are unchanged.
    let output = import(&csv, &mapping_file, &db, &errors, &[]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let expected = format!(
        "read {ROWS}, imported {} (created {}, updated 0), unchanged {sites}, rejected 0",
        ROWS as i64 - sites,
        ROWS as i64 - sites
    );
    assert!(stdout.starts_with(&expected), "{stdout}");
    assert_eq!(sqlite_counts(&db_file), vec![ROWS as i64, ROWS as i64, ROWS as i64, 2 * ROWS as i64]);
}
