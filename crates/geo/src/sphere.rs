//! Positions as unit vectors in 3D and great-circle distances between them.

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A position as a unit vector.
pub fn unit_vector(latitude: f64, longitude: f64) -> [f64; 3] {
    let (lat, lng) = (latitude.to_radians(), longitude.to_radians());
    [lat.cos() * lng.cos(), lat.cos() * lng.sin(), lat.sin()]
}

/// Great-circle distance between two unit vectors, in metres (atan2 form: accurate for tiny
/// and for antipodal angles).
pub fn great_circle_m(a: [f64; 3], b: [f64; 3]) -> f64 {
    let cross = [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
    let sin = (cross[0] * cross[0] + cross[1] * cross[1] + cross[2] * cross[2]).sqrt();
    let cos = a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    sin.atan2(cos) * EARTH_RADIUS_M
}
