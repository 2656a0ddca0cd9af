//! protocol/testdata/vectors.json for the unit tests, and hex both ways.

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// Only the sealed-envelope tests print bytes back.
#[cfg_attr(not(feature = "sealed"), allow(dead_code))]
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("../testdata/vectors.json")).unwrap()
}

/// The vector `name`, decoded.
pub fn v(name: &str) -> Vec<u8> {
    unhex(vectors()[name].as_str().unwrap())
}
