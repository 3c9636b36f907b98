//! Validation of a site as sent: every rejection names the field it is about.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::country_codes::ISO_3166_1_ALPHA_2;
use crate::name::SiteName;
use crate::site::{CountryCode, LanguageTag, LatLng, OpeningHours, Site, SiteInput, SiteStatus, TimeZone};
use crate::violations::{ViolationReason, Violations, control_char, echo, limits};

/// Checks a text field's length, then its characters; returns whether it passed, so a parser
/// never sees a field already refused. PostgreSQL refuses NUL in text and SQLite does not:
/// refusing every control character here makes both databases accept the same inputs.
pub(crate) fn check_text(out: &mut Violations, field: &str, value: &str, max: usize) -> bool {
    check_text_allowing(out, field, value, max, &[])
}

fn check_text_allowing(out: &mut Violations, field: &str, value: &str, max: usize, allow: &[char]) -> bool {
    // A UTF-8 character is at most 4 bytes: past that, no need to count.
    if value.len() > 4 * max {
        out.push(field, ViolationReason::TooLong, format!("at most {max} characters, got {} bytes", value.len()));
        return false;
    }
    let chars = value.chars().count();
    if chars > max {
        out.push(field, ViolationReason::TooLong, format!("at most {max} characters, got {chars}"));
        return false;
    }
    if let Some((at, c)) = control_char(value, allow) {
        out.push(
            field,
            ViolationReason::InvalidFormat,
            format!("must not contain control characters: U+{:04X} at character {at}", u32::from(c)),
        );
        return false;
    }
    true
}

/// Checks a position: finite, in range, not the (0, 0) placeholder.
pub(crate) fn lat_lng(out: &mut Violations, latitude: f64, longitude: f64) -> Option<LatLng> {
    let before = out.0.len();
    if !latitude.is_finite() || !(-90.0..=90.0).contains(&latitude) {
        out.push(
            "location.latitude",
            ViolationReason::OutOfRange,
            format!("must be a number in [-90, 90], got {latitude}"),
        );
    }
    if !longitude.is_finite() || !(-180.0..=180.0).contains(&longitude) {
        out.push(
            "location.longitude",
            ViolationReason::OutOfRange,
            format!("must be a number in [-180, 180], got {longitude}"),
        );
    }
    if latitude == 0.0 && longitude == 0.0 {
        out.push("location", ViolationReason::Placeholder, "(0, 0) is a placeholder, not a help point's position");
    }
    (out.0.len() == before).then(|| LatLng::new_unchecked(latitude, longitude))
}

impl CountryCode {
    pub fn parse(code: &str) -> Option<CountryCode> {
        ISO_3166_1_ALPHA_2.binary_search(&code).ok().map(|_| CountryCode(code.to_owned()))
    }
}

impl LanguageTag {
    pub fn parse(tag: &str) -> Option<LanguageTag> {
        if tag.len() > limits::LANGUAGE_TAG_CHARS {
            return None;
        }
        oxilangtag::LanguageTag::parse(tag).ok().map(|t| LanguageTag(t.into_inner().to_owned()))
    }

    /// The primary language subtag, lower case (`fr` for `fr-CA`).
    pub fn primary(&self) -> String {
        self.0.split('-').next().unwrap_or_default().to_ascii_lowercase()
    }
}

impl TimeZone {
    pub fn parse(name: &str) -> Option<TimeZone> {
        chrono_tz::Tz::from_str(name).ok().map(|tz| TimeZone(tz.name().to_owned()))
    }
}

impl OpeningHours {
    pub fn parse(text: &str) -> Result<OpeningHours, String> {
        // The parser's time and memory grow with its input: it never sees more than a field holds.
        if text.len() > 4 * limits::OPENING_HOURS_CHARS {
            return Err(format!("at most {} characters", limits::OPENING_HOURS_CHARS));
        }
        opening_hours_syntax::parse(text).map(|_| OpeningHours(text.to_owned())).map_err(|e| e.to_string())
    }
}

impl TryFrom<String> for CountryCode {
    type Error = String;
    fn try_from(code: String) -> Result<Self, String> {
        CountryCode::parse(&code).ok_or_else(|| format!("{} is not an ISO 3166-1 alpha-2 code", echo(&code)))
    }
}

impl TryFrom<String> for LanguageTag {
    type Error = String;
    fn try_from(tag: String) -> Result<Self, String> {
        LanguageTag::parse(&tag).ok_or_else(|| format!("{} is not a BCP 47 language tag", echo(&tag)))
    }
}

impl TryFrom<String> for TimeZone {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        TimeZone::parse(&name).ok_or_else(|| format!("{} is not an IANA time zone", echo(&name)))
    }
}

impl TryFrom<String> for OpeningHours {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        OpeningHours::parse(&text)
    }
}

fn enum_set<T: Ord + Copy + fmt::Debug>(out: &mut Violations, field: &str, values: &[T]) -> BTreeSet<T> {
    if values.len() > limits::ENUM_VALUES {
        out.push(
            field,
            ViolationReason::TooMany,
            format!("at most {} values, got {}", limits::ENUM_VALUES, values.len()),
        );
        // Refused as a whole: its repeats are not listed one by one.
        return BTreeSet::new();
    }
    let mut set = BTreeSet::new();
    for (i, v) in values.iter().enumerate() {
        if !set.insert(*v) {
            out.push(format!("{field}[{i}]"), ViolationReason::Duplicate, format!("{v:?} is listed more than once"));
        }
    }
    set
}

impl SiteInput {
    /// Checks every field and returns the site, or every violation found.
    pub fn validate(self) -> Result<Site, Violations> {
        let mut out = Violations::default();
        let SiteInput {
            name,
            display_name,
            kind,
            operator,
            country_code,
            address,
            location,
            services,
            service_notes,
            languages,
            accessibility,
            opening_hours,
            time_zone,
            contact,
            status,
            free_access,
        } = self;

        let name = if name.is_empty() {
            out.push("name", ViolationReason::Required, "a resource name sites/{origin}/{site_id} is required");
            None
        } else {
            name.parse::<SiteName>().map_err(|e| out.push("name", ViolationReason::InvalidFormat, e.to_string())).ok()
        };

        if display_name.trim().is_empty() {
            out.push("display_name", ViolationReason::Required, "must not be empty");
        }
        check_text(&mut out, "display_name", &display_name, limits::DISPLAY_NAME_CHARS);
        if kind.is_none() {
            out.push("kind", ViolationReason::Required, "must be set");
        }
        check_text(&mut out, "operator", &operator, limits::OPERATOR_CHARS);

        let country = if country_code.is_empty() {
            out.push("country_code", ViolationReason::Required, "an ISO 3166-1 alpha-2 code is required");
            None
        } else if !check_text(&mut out, "country_code", &country_code, limits::COUNTRY_CODE_CHARS) {
            None
        } else {
            let parsed = CountryCode::parse(&country_code);
            if parsed.is_none() {
                out.push(
                    "country_code",
                    ViolationReason::UnknownValue,
                    format!("{} is not an ISO 3166-1 alpha-2 code (upper case, e.g. ZW)", echo(&country_code)),
                );
            }
            parsed
        };

        if address.lines.len() > limits::ADDRESS_LINES {
            out.push(
                "address.lines",
                ViolationReason::TooMany,
                format!("at most {} lines, got {}", limits::ADDRESS_LINES, address.lines.len()),
            );
        }
        for (i, line) in address.lines.iter().enumerate().take(limits::ADDRESS_LINES + 1) {
            check_text(&mut out, &format!("address.lines[{i}]"), line, limits::ADDRESS_FIELD_CHARS);
        }
        check_text(&mut out, "address.locality", &address.locality, limits::ADDRESS_FIELD_CHARS);
        check_text(&mut out, "address.region", &address.region, limits::ADDRESS_FIELD_CHARS);
        check_text(&mut out, "address.postal_code", &address.postal_code, limits::POSTAL_CODE_CHARS);

        let location = match location {
            None => {
                out.push("location", ViolationReason::Required, "a WGS84 latitude and longitude are required");
                None
            }
            Some((lat, lng)) => lat_lng(&mut out, lat, lng),
        };

        let services = enum_set(&mut out, "services", &services);
        check_text_allowing(&mut out, "service_notes", &service_notes, limits::SERVICE_NOTES_CHARS, &['\n', '\t']);

        if languages.len() > limits::LANGUAGES {
            out.push(
                "languages",
                ViolationReason::TooMany,
                format!("at most {} languages, got {}", limits::LANGUAGES, languages.len()),
            );
        }
        let mut tags = Vec::with_capacity(languages.len().min(limits::LANGUAGES));
        // Past the limit the list is refused already: the rest is not looked at.
        for (i, lang) in languages.iter().enumerate().take(limits::LANGUAGES) {
            match LanguageTag::parse(lang) {
                Some(tag) if tags.contains(&tag) => out.push(
                    format!("languages[{i}]"),
                    ViolationReason::Duplicate,
                    format!("{} is listed more than once", echo(lang)),
                ),
                Some(tag) => tags.push(tag),
                None => out.push(
                    format!("languages[{i}]"),
                    ViolationReason::InvalidFormat,
                    format!("{} is not a well-formed BCP 47 language tag", echo(lang)),
                ),
            }
        }

        let accessibility = enum_set(&mut out, "accessibility", &accessibility);

        let opening_hours = if opening_hours.trim().is_empty()
            || !check_text(&mut out, "opening_hours", &opening_hours, limits::OPENING_HOURS_CHARS)
        {
            None
        } else {
            OpeningHours::parse(&opening_hours)
                .map_err(|e| {
                    out.push(
                        "opening_hours",
                        ViolationReason::InvalidFormat,
                        format!("not OpenStreetMap opening_hours syntax: {e}"),
                    )
                })
                .ok()
        };

        let time_zone = if time_zone.is_empty() {
            out.push("time_zone", ViolationReason::Required, "an IANA time zone such as Africa/Harare is required");
            None
        } else if !check_text(&mut out, "time_zone", &time_zone, limits::TIME_ZONE_CHARS) {
            None
        } else {
            let parsed = TimeZone::parse(&time_zone);
            if parsed.is_none() {
                out.push(
                    "time_zone",
                    ViolationReason::UnknownValue,
                    format!("{} is not an IANA time zone", echo(&time_zone)),
                );
            }
            parsed
        };

        check_text(&mut out, "contact.phone", &contact.phone, limits::PHONE_CHARS);
        let email_ok = check_text(&mut out, "contact.email", &contact.email, limits::EMAIL_CHARS);
        if email_ok && !contact.email.is_empty() && !contact.email.contains('@') {
            out.push("contact.email", ViolationReason::InvalidFormat, "an e-mail address needs an @");
        }
        let website_ok = check_text(&mut out, "contact.website", &contact.website, limits::WEBSITE_CHARS);
        let is_http_url = |url: &str| url.starts_with("https://") || url.starts_with("http://");
        if website_ok && !contact.website.is_empty() && !is_http_url(&contact.website) {
            out.push("contact.website", ViolationReason::InvalidFormat, "must be an http:// or https:// URL");
        }

        match (name, kind, country, location, time_zone) {
            (Some(name), Some(kind), Some(country), Some(location), Some(time_zone)) if out.is_empty() => Ok(Site {
                name,
                display_name,
                kind,
                operator,
                country,
                address,
                location,
                services,
                service_notes,
                languages: tags,
                accessibility,
                opening_hours,
                time_zone,
                contact,
                status: status.unwrap_or(SiteStatus::Open),
                free_access,
            }),
            _ => Err(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::{Kind, ServiceType};
    use proptest::prelude::*;

    fn valid() -> SiteInput {
        SiteInput {
            name: "sites/zw/harare-central".into(),
            display_name: "Harare City Library".into(),
            kind: Some(Kind::PublicLibrary),
            operator: "City of Harare".into(),
            country_code: "ZW".into(),
            location: Some((-17.8292, 31.0522)),
            services: vec![ServiceType::FreeWifi, ServiceType::PublicComputers],
            languages: vec!["en".into(), "sn".into()],
            opening_hours: "Mo-Fr 08:00-17:00; Sa 08:00-12:00".into(),
            time_zone: "Africa/Harare".into(),
            ..SiteInput::default()
        }
    }

    fn fields(input: SiteInput) -> Vec<(String, &'static str)> {
        match input.validate() {
            Ok(_) => vec![],
            Err(v) => v.0.into_iter().map(|v| (v.field, v.reason.code())).collect(),
        }
    }

    #[test]
    fn a_valid_site_passes_and_defaults_to_open() {
        let site = valid().validate().unwrap();
        assert_eq!(site.status, SiteStatus::Open);
        assert_eq!(site.services.len(), 2);
    }

    #[test]
    fn each_bad_field_is_named() {
        type Case = (fn(&mut SiteInput), &'static str, &'static str);
        let cases: Vec<Case> = vec![
            (|s| s.name = "zw/1".into(), "name", "INVALID_FORMAT"),
            (|s| s.name.clear(), "name", "REQUIRED"),
            (|s| s.display_name = " ".into(), "display_name", "REQUIRED"),
            (|s| s.display_name = "x".repeat(201), "display_name", "TOO_LONG"),
            (|s| s.kind = None, "kind", "REQUIRED"),
            (|s| s.country_code = "XX".into(), "country_code", "UNKNOWN_VALUE"),
            (|s| s.country_code = "zw".into(), "country_code", "UNKNOWN_VALUE"),
            (|s| s.location = None, "location", "REQUIRED"),
            (|s| s.location = Some((90.5, 10.0)), "location.latitude", "OUT_OF_RANGE"),
            (|s| s.location = Some((10.0, -180.01)), "location.longitude", "OUT_OF_RANGE"),
            (|s| s.location = Some((f64::NAN, 10.0)), "location.latitude", "OUT_OF_RANGE"),
            (|s| s.location = Some((10.0, f64::INFINITY)), "location.longitude", "OUT_OF_RANGE"),
            (|s| s.location = Some((0.0, 0.0)), "location", "PLACEHOLDER"),
            (|s| s.languages = vec!["en".into(), "not a tag".into()], "languages[1]", "INVALID_FORMAT"),
            (|s| s.languages = vec!["en".into(), "en".into()], "languages[1]", "DUPLICATE"),
            (|s| s.languages = vec!["en".into(); 17], "languages", "TOO_MANY"),
            (|s| s.services = vec![ServiceType::FreeWifi, ServiceType::FreeWifi], "services[1]", "DUPLICATE"),
            (|s| s.services = vec![ServiceType::FreeWifi; 33], "services", "TOO_MANY"),
            (|s| s.time_zone = "Mars/Olympus".into(), "time_zone", "UNKNOWN_VALUE"),
            (|s| s.time_zone.clear(), "time_zone", "REQUIRED"),
            (|s| s.opening_hours = "whenever we feel like it".into(), "opening_hours", "INVALID_FORMAT"),
            (|s| s.address.lines = vec!["a".into(); 5], "address.lines", "TOO_MANY"),
            (|s| s.address.postal_code = "1".repeat(33), "address.postal_code", "TOO_LONG"),
            (|s| s.contact.website = "ftp://x".into(), "contact.website", "INVALID_FORMAT"),
            (|s| s.contact.email = "nobody".into(), "contact.email", "INVALID_FORMAT"),
        ];
        for (mutate, field, reason) in cases {
            let mut input = valid();
            mutate(&mut input);
            let got = fields(input);
            assert!(got.contains(&(field.to_string(), reason)), "expected {field} {reason}, got {got:?}");
        }
    }

    /// Finding 4: a 4 MB opening_hours was parsed after being flagged TOO_LONG (2.9 s of CPU,
    /// 900 MB); 100,000 services gave 100,000 violations; a 1 MB time zone was echoed twice.
    #[test]
    fn a_pathological_field_is_refused_once_cheaply_and_never_echoed_whole() {
        let mut input = valid();
        input.opening_hours = "Mo-Fr 08:00-17:00; ".repeat(200_000);
        input.time_zone = "Z".repeat(1 << 20);
        input.services = vec![ServiceType::FreeWifi; 100_000];
        input.languages = vec!["x".repeat(1 << 20); 1000];
        input.country_code = "Q".repeat(1 << 20);
        let started = std::time::Instant::now();
        let violations = input.validate().unwrap_err();
        let mut fields: Vec<(&str, &str)> = violations.0.iter().map(|v| (v.field.as_str(), v.reason.code())).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                ("country_code", "TOO_LONG"),
                ("languages", "TOO_MANY"),
                ("languages[0]", "INVALID_FORMAT"),
                ("languages[10]", "INVALID_FORMAT"),
                ("languages[11]", "INVALID_FORMAT"),
                ("languages[12]", "INVALID_FORMAT"),
                ("languages[13]", "INVALID_FORMAT"),
                ("languages[14]", "INVALID_FORMAT"),
                ("languages[15]", "INVALID_FORMAT"),
                ("languages[1]", "INVALID_FORMAT"),
                ("languages[2]", "INVALID_FORMAT"),
                ("languages[3]", "INVALID_FORMAT"),
                ("languages[4]", "INVALID_FORMAT"),
                ("languages[5]", "INVALID_FORMAT"),
                ("languages[6]", "INVALID_FORMAT"),
                ("languages[7]", "INVALID_FORMAT"),
                ("languages[8]", "INVALID_FORMAT"),
                ("languages[9]", "INVALID_FORMAT"),
                ("opening_hours", "TOO_LONG"),
                ("services", "TOO_MANY"),
                ("time_zone", "TOO_LONG"),
            ]
        );
        let echoed: usize = violations.0.iter().map(|v| v.description.len()).sum();
        assert!(echoed < 4096, "the errors repeat {echoed} bytes of input");
        // Not a timing assertion: the work done is bounded by the limits, not the input.
        eprintln!("validated 8 MB of pathological input in {:?}", started.elapsed());
    }

    #[test]
    fn control_characters_are_refused_in_every_text_field_naming_it() {
        type Case = (fn(&mut SiteInput), &'static str);
        let cases: Vec<Case> = vec![
            (|s| s.display_name = "Library\0".into(), "display_name"),
            (|s| s.operator = "Post\u{1b}[2J".into(), "operator"),
            (|s| s.address.lines = vec!["1 Main St\r\n".into()], "address.lines[0]"),
            (|s| s.address.locality = "\u{7f}".into(), "address.locality"),
            (|s| s.address.region = "\u{85}".into(), "address.region"),
            (|s| s.address.postal_code = "\0".into(), "address.postal_code"),
            (|s| s.service_notes = "notes\0".into(), "service_notes"),
            (|s| s.opening_hours = "Mo-Fr 08:00-17:00\0".into(), "opening_hours"),
            (|s| s.contact.phone = "+263\0".into(), "contact.phone"),
            (|s| s.contact.email = "a@b\0".into(), "contact.email"),
            (|s| s.contact.website = "https://x\0".into(), "contact.website"),
            (|s| s.time_zone = "Africa/Harare\0".into(), "time_zone"),
        ];
        for (mutate, field) in cases {
            let mut input = valid();
            mutate(&mut input);
            let got = fields(input);
            assert!(got.contains(&(field.to_string(), "INVALID_FORMAT")), "{field}: {got:?}");
        }
        // Line breaks and tabs are text in notes.
        let mut notes = valid();
        notes.service_notes = "Printing:\n\tA4 only".into();
        assert!(notes.validate().is_ok());
    }

    #[test]
    fn all_violations_are_reported_at_once() {
        let mut input = valid();
        input.country_code = "QQ".into();
        input.time_zone = "Nowhere/Special".into();
        input.location = Some((100.0, 200.0));
        assert_eq!(fields(input).len(), 4);
    }

    #[test]
    fn deserialising_validates_too() {
        let json = serde_json::to_string(&valid().validate().unwrap()).unwrap();
        assert!(serde_json::from_str::<Site>(&json).is_ok());
        for (good, bad) in [
            ("\"ZW\"", "\"QQ\""),
            ("\"Africa/Harare\"", "\"Mars/Olympus\""),
            ("-17.8292,", "-97.8292,"),
            ("\"sn\"", "\"not a tag\""),
            ("\"Mo-Fr 08:00-17:00; Sa 08:00-12:00\"", "\"whenever\""),
        ] {
            let tampered = json.replacen(good, bad, 1);
            assert_ne!(tampered, json, "{good} not in {json}");
            assert!(serde_json::from_str::<Site>(&tampered).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn etag_changes_with_content_and_only_with_content() {
        let a = valid().validate().unwrap();
        let b = valid().validate().unwrap();
        assert_eq!(a.content_etag(), b.content_etag());
        let mut c = b.clone();
        c.display_name.push('!');
        assert_ne!(a.content_etag(), c.content_etag());
    }

    proptest! {
        #[test]
        fn finite_in_range_positions_other_than_null_island_are_accepted(
            lat in -90.0f64..=90.0, lng in -180.0f64..=180.0,
        ) {
            let mut out = Violations::default();
            let ok = lat_lng(&mut out, lat, lng).is_some();
            prop_assert_eq!(ok, !(lat == 0.0 && lng == 0.0));
        }

        #[test]
        fn out_of_range_latitudes_are_refused(lat in prop_oneof![-1e9f64..-90.000001, 90.000001f64..1e9], lng in -180.0f64..=180.0) {
            let mut out = Violations::default();
            prop_assert!(lat_lng(&mut out, lat, lng).is_none());
            prop_assert_eq!(out.0[0].field.as_str(), "location.latitude");
        }

        #[test]
        fn out_of_range_longitudes_are_refused(lat in -90.0f64..=90.0, lng in prop_oneof![-1e9f64..-180.000001, 180.000001f64..1e9]) {
            let mut out = Violations::default();
            prop_assert!(lat_lng(&mut out, lat, lng).is_none());
            prop_assert!(out.0.iter().any(|v| v.field == "location.longitude"));
        }

        #[test]
        fn country_codes_are_exactly_the_assigned_ones(code in "[A-Za-z]{2}") {
            let known = ISO_3166_1_ALPHA_2.contains(&code.as_str());
            prop_assert_eq!(CountryCode::parse(&code).is_some(), known);
        }

        #[test]
        fn language_parser_never_panics(tag in "[a-zA-Z0-9-]{0,40}") {
            if let Some(t) = LanguageTag::parse(&tag) {
                prop_assert!(!t.primary().is_empty());
            }
        }
    }

    #[test]
    fn country_list_is_sorted_for_binary_search() {
        assert!(ISO_3166_1_ALPHA_2.windows(2).all(|w| w[0] < w[1]));
        assert!(CountryCode::parse("ZW").is_some());
        assert!(CountryCode::parse("SS").is_some());
        assert!(CountryCode::parse("EU").is_none());
        // Kosovo's XK is user-assigned, and AN (Netherlands Antilles) was withdrawn in 2010.
        assert!(CountryCode::parse("XK").is_none());
        assert!(CountryCode::parse("AN").is_none());
        assert!(CountryCode::parse("BQ").is_some());
    }
}
