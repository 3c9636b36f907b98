//! Coordinates as publishers write them: sentinels, placeholders, swapped pairs and points
//! far from where they should be are refused with a reason. Nothing is "fixed".

/// A refused coordinate pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinateError {
    pub field: &'static str,
    pub reason: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, reason: &'static str, message: String) -> CoordinateError {
    CoordinateError { field, reason, message }
}

/// `[min_lat, min_lng, max_lat, max_lng]`; `min_lng > max_lng` wraps across the antimeridian.
pub type Bounds = [f64; 4];

fn inside(bounds: &Bounds, lat: f64, lng: f64) -> bool {
    let [min_lat, min_lng, max_lat, max_lng] = *bounds;
    let lng_ok = if min_lng <= max_lng { (min_lng..=max_lng).contains(&lng) } else { lng >= min_lng || lng <= max_lng };
    (min_lat..=max_lat).contains(&lat) && lng_ok
}

fn number(field: &'static str, raw: &str) -> Result<f64, CoordinateError> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| refuse(field, "NOT_A_NUMBER", format!("{raw:?} is not a decimal number of degrees")))
}

/// Parses and checks a pair. Empty values (after the mapping's null values) are missing.
pub fn check(lat: &str, lng: &str, bounds: Option<&Bounds>) -> Result<(f64, f64), CoordinateError> {
    if lat.trim().is_empty() || lng.trim().is_empty() {
        return Err(refuse("location", "MISSING_COORDINATES", "no latitude and longitude".into()));
    }
    let (lat, lng) = (number("location.latitude", lat)?, number("location.longitude", lng)?);
    if (lat == 0.0 && lng == 0.0) || (lat == 1.0 && lng == 1.0) {
        return Err(refuse("location", "PLACEHOLDER", format!("({lat}, {lng}) is a placeholder, not a position")));
    }
    let in_range = |lat: f64, lng: f64| (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lng);
    let swapped_fits = in_range(lng, lat) && bounds.is_none_or(|b| inside(b, lng, lat));
    if !in_range(lat, lng) {
        if swapped_fits {
            return Err(refuse(
                "location",
                "SWAPPED",
                format!("({lat}, {lng}) looks like longitude and latitude swapped"),
            ));
        }
        return Err(refuse("location", "OUT_OF_RANGE", format!("({lat}, {lng}) is not a position on Earth")));
    }
    if let Some(bounds) = bounds
        && !inside(bounds, lat, lng)
    {
        if swapped_fits {
            return Err(refuse(
                "location",
                "SWAPPED",
                format!("({lat}, {lng}) looks like longitude and latitude swapped"),
            ));
        }
        return Err(refuse(
            "location",
            "OUTSIDE_EXTENT",
            format!("({lat}, {lng}) is outside the declared extent {bounds:?}"),
        ));
    }
    Ok((lat, lng))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDIA: Bounds = [6.0, 68.0, 37.5, 97.5];

    fn reason(lat: &str, lng: &str, bounds: Option<&Bounds>) -> &'static str {
        check(lat, lng, bounds).map(|_| "OK").unwrap_or_else(|e| e.reason)
    }

    #[test]
    fn publishers_mistakes_are_named() {
        assert_eq!(reason("28.69", "77.30", Some(&INDIA)), "OK");
        assert_eq!(reason("", "77.30", Some(&INDIA)), "MISSING_COORDINATES");
        assert_eq!(reason("17°57'17.7", "78.1", Some(&INDIA)), "NOT_A_NUMBER");
        assert_eq!(reason("28.4 32628", "77.1", Some(&INDIA)), "NOT_A_NUMBER");
        assert_eq!(reason("0", "0", None), "PLACEHOLDER");
        assert_eq!(reason("1", "1", Some(&INDIA)), "PLACEHOLDER");
        assert_eq!(reason("77.30", "28.69", Some(&INDIA)), "SWAPPED");
        assert_eq!(reason("120.5", "30.1", None), "SWAPPED");
        assert_eq!(reason("120.5", "300.1", None), "OUT_OF_RANGE");
        assert_eq!(reason("51.5", "-0.12", Some(&INDIA)), "OUTSIDE_EXTENT");
        assert_eq!(reason("NaN", "1", None), "NOT_A_NUMBER");
    }

    #[test]
    fn extents_may_cross_the_antimeridian() {
        let fiji: Bounds = [-21.0, 176.0, -12.0, -178.0];
        assert_eq!(reason("-16.8", "-179.9", Some(&fiji)), "OK");
        assert_eq!(reason("-16.8", "179.9", Some(&fiji)), "OK");
        assert_eq!(reason("-16.8", "170.0", Some(&fiji)), "OUTSIDE_EXTENT");
    }
}
