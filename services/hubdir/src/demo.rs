//! A deterministic demo data set: a few thousand help points around real cities in several
//! countries, including the awkward places (the antimeridian in Fiji, the Arctic in
//! Svalbard), so a newcomer gets answers at once. The same seed gives the same sites, so
//! loading it twice changes nothing.

use crate::rng::Rng;
use hubdir_core::{Accessibility, Address, Kind, ServiceType, Site, SiteInput, SiteStatus, Violations};
use hubdir_store::{Applied, Change, Precondition, Store, StoreError, Write};

/// How many sites `hubdir serve --demo` loads unless told otherwise.
pub const DEFAULT_SITES: usize = 3000;

struct City {
    name: &'static str,
    country: &'static str,
    lat: f64,
    lng: f64,
    time_zone: &'static str,
    languages: &'static [&'static str],
    /// Spread of sites around the centre, in degrees of latitude.
    spread: f64,
}

const CITIES: &[City] = &[
    City {
        name: "Harare",
        country: "ZW",
        lat: -17.8292,
        lng: 31.0522,
        time_zone: "Africa/Harare",
        languages: &["en", "sn"],
        spread: 0.15,
    },
    City {
        name: "Bulawayo",
        country: "ZW",
        lat: -20.1325,
        lng: 28.6265,
        time_zone: "Africa/Harare",
        languages: &["en", "nd"],
        spread: 0.12,
    },
    City {
        name: "Mutare",
        country: "ZW",
        lat: -18.9707,
        lng: 32.6709,
        time_zone: "Africa/Harare",
        languages: &["en", "sn"],
        spread: 0.3,
    },
    City {
        name: "Nairobi",
        country: "KE",
        lat: -1.2864,
        lng: 36.8172,
        time_zone: "Africa/Nairobi",
        languages: &["en", "sw"],
        spread: 0.15,
    },
    City {
        name: "Mombasa",
        country: "KE",
        lat: -4.0435,
        lng: 39.6682,
        time_zone: "Africa/Nairobi",
        languages: &["sw", "en"],
        spread: 0.1,
    },
    City {
        name: "Kisumu",
        country: "KE",
        lat: -0.0917,
        lng: 34.768,
        time_zone: "Africa/Nairobi",
        languages: &["sw", "luo"],
        spread: 0.4,
    },
    City {
        name: "Delhi",
        country: "IN",
        lat: 28.6139,
        lng: 77.209,
        time_zone: "Asia/Kolkata",
        languages: &["hi", "en"],
        spread: 0.2,
    },
    City {
        name: "Mumbai",
        country: "IN",
        lat: 19.076,
        lng: 72.8777,
        time_zone: "Asia/Kolkata",
        languages: &["mr", "hi", "en"],
        spread: 0.15,
    },
    City {
        name: "Chennai",
        country: "IN",
        lat: 13.0827,
        lng: 80.2707,
        time_zone: "Asia/Kolkata",
        languages: &["ta", "en"],
        spread: 0.15,
    },
    City {
        name: "Kolkata",
        country: "IN",
        lat: 22.5726,
        lng: 88.3639,
        time_zone: "Asia/Kolkata",
        languages: &["bn", "hi"],
        spread: 0.15,
    },
    City {
        name: "Lucknow",
        country: "IN",
        lat: 26.8467,
        lng: 80.9462,
        time_zone: "Asia/Kolkata",
        languages: &["hi"],
        spread: 0.5,
    },
    City {
        name: "Paris",
        country: "FR",
        lat: 48.8566,
        lng: 2.3522,
        time_zone: "Europe/Paris",
        languages: &["fr"],
        spread: 0.12,
    },
    City {
        name: "Lyon",
        country: "FR",
        lat: 45.764,
        lng: 4.8357,
        time_zone: "Europe/Paris",
        languages: &["fr"],
        spread: 0.2,
    },
    City {
        name: "Marseille",
        country: "FR",
        lat: 43.2965,
        lng: 5.3698,
        time_zone: "Europe/Paris",
        languages: &["fr", "ar"],
        spread: 0.2,
    },
    City {
        name: "São Paulo",
        country: "BR",
        lat: -23.5505,
        lng: -46.6333,
        time_zone: "America/Sao_Paulo",
        languages: &["pt"],
        spread: 0.2,
    },
    City {
        name: "Manaus",
        country: "BR",
        lat: -3.119,
        lng: -60.0217,
        time_zone: "America/Manaus",
        languages: &["pt"],
        spread: 0.6,
    },
    City {
        name: "Recife",
        country: "BR",
        lat: -8.0476,
        lng: -34.877,
        time_zone: "America/Recife",
        languages: &["pt"],
        spread: 0.15,
    },
    City {
        name: "Lima",
        country: "PE",
        lat: -12.0464,
        lng: -77.0428,
        time_zone: "America/Lima",
        languages: &["es"],
        spread: 0.15,
    },
    City {
        name: "Cusco",
        country: "PE",
        lat: -13.532,
        lng: -71.9675,
        time_zone: "America/Lima",
        languages: &["es", "qu"],
        spread: 0.4,
    },
    City {
        name: "Suva",
        country: "FJ",
        lat: -18.1248,
        lng: 178.4501,
        time_zone: "Pacific/Fiji",
        languages: &["en", "fj"],
        spread: 0.1,
    },
    City {
        name: "Labasa",
        country: "FJ",
        lat: -16.4333,
        lng: 179.3667,
        time_zone: "Pacific/Fiji",
        languages: &["en", "fj", "hif"],
        spread: 0.2,
    },
    // Taveuni straddles the antimeridian: sites land on both sides of ±180°.
    City {
        name: "Taveuni",
        country: "FJ",
        lat: -16.85,
        lng: 179.98,
        time_zone: "Pacific/Fiji",
        languages: &["en", "fj"],
        spread: 0.1,
    },
    City {
        name: "Tromsø",
        country: "NO",
        lat: 69.6492,
        lng: 18.9553,
        time_zone: "Europe/Oslo",
        languages: &["no", "se"],
        spread: 0.3,
    },
    City {
        name: "Longyearbyen",
        country: "SJ",
        lat: 78.2232,
        lng: 15.6267,
        time_zone: "Arctic/Longyearbyen",
        languages: &["no"],
        spread: 0.1,
    },
];

const KINDS: &[(Kind, &str, u32)] = &[
    (Kind::PostOffice, "Post Office", 30),
    (Kind::PublicLibrary, "Public Library", 25),
    (Kind::Telecentre, "Telecentre", 15),
    (Kind::CommunityCentre, "Community Centre", 10),
    (Kind::PostalAgency, "Postal Agency", 8),
    (Kind::School, "School", 6),
    (Kind::SchoolLibrary, "School Library", 3),
    (Kind::AcademicLibrary, "University Library", 3),
];

const HOURS: &[&str] = &[
    "Mo-Fr 08:00-17:00; Sa 08:00-12:00; PH off",
    "Mo-Fr 09:00-18:00",
    "Mo-Sa 08:30-16:30",
    "Mo-Fr 08:00-13:00,14:00-17:00",
    "24/7",
    "Tu-Su 10:00-19:00; Mo off",
];

/// Wraps a longitude into [-180, 180].
fn wrap_longitude(lng: f64) -> f64 {
    if lng > 180.0 {
        lng - 360.0
    } else if lng < -180.0 {
        lng + 360.0
    } else {
        lng
    }
}

fn services_for(kind: Kind, rng: &mut Rng) -> Vec<ServiceType> {
    let mut offered = vec![ServiceType::PublicInternet];
    let typical: &[(ServiceType, f64)] = match kind {
        Kind::PostOffice | Kind::PostalAgency => &[
            (ServiceType::PostalBanking, 0.8),
            (ServiceType::BillPayment, 0.7),
            (ServiceType::EGovernmentHelp, 0.5),
            (ServiceType::MobileMoney, 0.4),
            (ServiceType::FreeWifi, 0.3),
        ],
        Kind::PublicLibrary | Kind::AcademicLibrary | Kind::SchoolLibrary => &[
            (ServiceType::FreeWifi, 0.9),
            (ServiceType::PublicComputers, 0.8),
            (ServiceType::DigitalSkillsTraining, 0.5),
            (ServiceType::PrintingAndScanning, 0.6),
            (ServiceType::EGovernmentHelp, 0.3),
        ],
        _ => &[
            (ServiceType::PublicComputers, 0.7),
            (ServiceType::DigitalSkillsTraining, 0.6),
            (ServiceType::HealthPlatformAccess, 0.3),
            (ServiceType::FreeWifi, 0.5),
            (ServiceType::EGovernmentHelp, 0.4),
        ],
    };
    for (service, p) in typical {
        if rng.chance(*p) {
            offered.push(*service);
        }
    }
    offered
}

/// The `count` demo sites of `origin`, always the same for the same arguments.
pub fn sites(origin: &str, count: usize) -> Result<Vec<Site>, Violations> {
    let mut rng = Rng(0x6875_6264_6972); // "hubdir"
    let total_weight: u32 = KINDS.iter().map(|k| k.2).sum();
    (0..count)
        .map(|i| {
            let city = &CITIES[i % CITIES.len()];
            let mut pick = (rng.next() % u64::from(total_weight)) as u32;
            let &(kind, label, _) = KINDS
                .iter()
                .find(|(_, _, w)| {
                    let hit = pick < *w;
                    pick = pick.saturating_sub(*w);
                    hit
                })
                .unwrap_or(&KINDS[0]);
            // Clustered around the centre: the sum of two uniforms leans to the middle.
            let dlat = (rng.unit() + rng.unit() - 1.0) * city.spread;
            let dlng = (rng.unit() + rng.unit() - 1.0) * city.spread / city.lat.to_radians().cos();
            let lat = (city.lat + dlat).clamp(-89.9, 89.9);
            let lng = wrap_longitude(city.lng + dlng);
            let number = i / CITIES.len() + 1;
            let languages = city.languages.iter().map(|l| (*l).to_owned()).collect();
            let status = match rng.below(50) {
                0 => Some(SiteStatus::Closed),
                1 => Some(SiteStatus::TemporarilyClosed),
                _ => Some(SiteStatus::Open),
            };
            let accessibility = [
                (Accessibility::StepFreeEntrance, 0.5),
                (Accessibility::WheelchairAccessible, 0.4),
                (Accessibility::AccessibleToilet, 0.2),
                (Accessibility::HearingLoop, 0.1),
                (Accessibility::ScreenReader, 0.15),
            ]
            .into_iter()
            .filter(|(_, p)| rng.chance(*p))
            .map(|(a, _)| a)
            .collect();
            SiteInput {
                name: format!("sites/{origin}/demo-{}-{i:05}", city.country.to_ascii_lowercase()),
                display_name: format!("{} {label} {number}", city.name),
                kind: Some(kind),
                operator: format!(
                    "{} {}",
                    city.country,
                    if matches!(kind, Kind::PostOffice | Kind::PostalAgency) { "Post" } else { "Public Services" }
                ),
                country_code: city.country.to_owned(),
                address: Address {
                    lines: vec![format!("{} Main Road", 1 + rng.below(400))],
                    locality: city.name.to_owned(),
                    region: String::new(),
                    postal_code: String::new(),
                },
                location: Some((lat, lng)),
                services: services_for(kind, &mut rng),
                service_notes: String::new(),
                languages,
                accessibility,
                opening_hours: HOURS[rng.below(HOURS.len())].to_owned(),
                time_zone: city.time_zone.to_owned(),
                contact: Default::default(),
                status,
                free_access: rng.chance(0.7),
            }
            .validate()
        })
        .collect()
}

/// What loading the demo did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadSummary {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// Loads the demo sites in batches; running it again is a no-op.
pub async fn load(store: &Store, origin: &str, count: usize) -> Result<LoadSummary, DemoError> {
    let sites = sites(origin, count).map_err(DemoError::Invalid)?;
    let mut summary = LoadSummary::default();
    for chunk in sites.chunks(500) {
        let writes = chunk
            .iter()
            .map(|site| Write { change: Change::Upsert(Box::new(site.clone())), precondition: Precondition::None })
            .collect();
        for applied in store.write(writes).await? {
            match applied {
                Applied::Created(_) => summary.created += 1,
                Applied::Updated(_) => summary.updated += 1,
                Applied::Unchanged(_) => summary.unchanged += 1,
                Applied::Deleted { .. } | Applied::AlreadyAbsent(_) => {}
            }
        }
        tracing::info!(
            loaded = summary.created + summary.updated + summary.unchanged,
            of = count,
            "loading demo sites"
        );
    }
    Ok(summary)
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo generator made an invalid site (a bug): {0}")]
    Invalid(Violations),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_deterministic_valid_and_spread_out() {
        let a = sites("demo", 3000).unwrap();
        let b = sites("demo", 3000).unwrap();
        assert_eq!(a, b);
        let countries: std::collections::BTreeSet<_> = a.iter().map(|s| s.country.to_string()).collect();
        assert!(countries.len() >= 8, "{countries:?}");
        let east = a.iter().filter(|s| s.country.as_str() == "FJ" && s.location.longitude() > 179.0).count();
        let west = a.iter().filter(|s| s.country.as_str() == "FJ" && s.location.longitude() < -179.0).count();
        assert!(east > 0 && west > 0, "no sites on both sides of the antimeridian: {east} {west}");
        let names: std::collections::BTreeSet<_> = a.iter().map(|s| s.name.to_string()).collect();
        assert_eq!(names.len(), a.len(), "duplicate names");
    }

    #[tokio::test]
    async fn loading_twice_changes_nothing() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let first = load(&store, "demo", 600).await.unwrap();
        assert_eq!(first, LoadSummary { created: 600, updated: 0, unchanged: 0 });
        let second = load(&store, "demo", 600).await.unwrap();
        assert_eq!(second, LoadSummary { created: 0, updated: 0, unchanged: 600 });
        assert_eq!(store.last_seq(&"demo".parse().unwrap()).await.unwrap(), 600);
    }
}
