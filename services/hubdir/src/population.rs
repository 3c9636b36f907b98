//! `hubdir population import FILE --layer NAME [--mapping M]` and `hubdir population list`:
//! population layers in a node's database, for CoverageService.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hubdir_import::{PopulationMapping, RowError};

#[derive(Debug, clap::Subcommand)]
pub enum PopulationCommand {
    /// Load a population layer, replacing the layer of that name whole: GeoNames' cities1000
    /// CSV as it is, any other CSV through a mapping (see examples/mappings/population-*.toml).
    /// Exit 3: more rows were rejected than --max-rejected allows, and nothing was written.
    Import(ImportArgs),
    /// The layers of a node's database: name, source, year, places and people.
    List {
        #[command(flatten)]
        node: hubdir_node::NodeArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The CSV file of places (or H3 cells) and their people.
    file: PathBuf,
    /// The layer's name (letters, digits, '-', '_', '.'), as ComputeCoverage asks for it.
    #[arg(long)]
    layer: String,
    /// How the file's columns become places; unneeded for GeoNames' cities1000 layout.
    #[arg(long)]
    mapping: Option<PathBuf>,
    #[command(flatten)]
    node: hubdir_node::NodeArgs,
    /// Where to write the rejected rows (CSV: row, line, site_id (the place's id), field,
    /// reason, message).
    #[arg(long, default_value = "population-errors.csv")]
    errors: PathBuf,
    /// How many rows may be rejected before the import writes nothing and exits 3.
    #[arg(long, default_value_t = 0)]
    max_rejected: u64,
}

/// Exit code when more rows were rejected than allowed.
const TOO_MANY_REJECTED: u8 = 3;

pub async fn run(command: PopulationCommand, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    match command {
        PopulationCommand::Import(args) => import(&args, out).await,
        PopulationCommand::List { node } => {
            let store = node.open_store().await?;
            writeln!(out, "{:<28} {:>4} {:>9} {:>15}  source", "layer", "year", "places", "people")?;
            for layer in store.population_layers().await? {
                writeln!(
                    out,
                    "{:<28} {:>4} {:>9} {:>15}  {}",
                    layer.name, layer.year, layer.places, layer.people, layer.source
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn import(args: &ImportArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    hubdir_core::population::check_layer_name(&args.layer).map_err(|v| anyhow::anyhow!("--layer: {v}"))?;
    let geonames = PopulationMapping::geonames();
    let mapping = match &args.mapping {
        Some(path) => PopulationMapping::load(path)?,
        None => geonames.clone(),
    };
    let (header, rows) = hubdir_import::read_csv(&args.file, mapping.delimiter, mapping.encoding)?;
    if args.mapping.is_none() && !PopulationMapping::is_geonames(&header) {
        anyhow::bail!(
            "{} is not in GeoNames' cities1000 layout (geonameid,name,country_code,...): give --mapping",
            args.file.display()
        );
    }
    mapping.check_columns(&header)?;

    let mut places = Vec::new();
    let mut errors: Vec<RowError> = Vec::new();
    let mut ids = HashSet::new();
    let mut read = 0u64;
    for row in rows {
        read += 1;
        if read.is_multiple_of(100_000) {
            eprintln!("read {read} rows");
        }
        match row.map_err(|e| vec![e]).and_then(|record| mapping.place(&record).map(|p| (record, p))) {
            Ok((record, place)) => {
                if ids.insert(place.id.clone()) {
                    places.push(place);
                } else {
                    errors.push(RowError {
                        row: record.row,
                        line: record.line,
                        site_id: place.id,
                        field: "id".into(),
                        reason: "DUPLICATE_ID".into(),
                        message: "an earlier row has this id; ids are unique in a layer".into(),
                    });
                }
            }
            Err(row_errors) => errors.extend(row_errors),
        }
    }
    let rejected: BTreeMap<&str, u64> =
        errors.iter().map(|e| (e.row, e.reason.as_str())).collect::<BTreeMap<_, _>>().into_values().fold(
            BTreeMap::new(),
            |mut by_reason, reason| {
                *by_reason.entry(reason).or_default() += 1;
                by_reason
            },
        );
    let rejected_rows: u64 = rejected.values().sum();
    let file =
        std::fs::File::create(&args.errors).with_context(|| format!("cannot write {}", args.errors.display()))?;
    hubdir_import::write_errors(std::io::BufWriter::new(file), &errors)?;
    for (reason, rows) in &rejected {
        writeln!(out, "  rejected {rows:>7}  {reason}")?;
    }
    if rejected_rows > args.max_rejected {
        writeln!(
            out,
            "read {read}, rejected {rejected_rows} (more than --max-rejected {}): layer {} left as it was; errors: {}",
            args.max_rejected,
            args.layer,
            args.errors.display()
        )?;
        return Ok(ExitCode::from(TOO_MANY_REJECTED));
    }
    // A loader, as `hubdir import --db`: it brings a new database's schema up unless
    // `store.auto_migrate` is off.
    let config = args.node.load_config()?.store;
    let store = hubdir_node::cli::open_store(&config, config.schema()).await?;
    let layer = store.replace_population_layer(&args.layer, &mapping.source, mapping.year, &places).await?;
    writeln!(
        out,
        "read {read}, imported {} places ({} people) into layer {} ({}, {}), rejected {rejected_rows}",
        layer.places, layer.people, layer.name, layer.source, layer.year
    )?;
    Ok(ExitCode::SUCCESS)
}
