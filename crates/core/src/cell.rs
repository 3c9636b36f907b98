//! A site's H3 cell: the resolution-15 cell its position falls in, computed by the store
//! (`hubdir_geo::site_cell`) when the site is written.

use std::fmt;
use std::str::FromStr;

/// An H3 cell index, shown as H3 shows it: lowercase hexadecimal (`8f2830828052d25`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct H3Cell(u64);

impl H3Cell {
    /// Bits 59-62 of an H3 index hold its mode; 1 is a cell.
    const MODE_SHIFT: u32 = 59;

    /// The cell of an index that an H3 library computed. `None` unless it has the shape of a
    /// cell index (high bit clear, cell mode).
    pub fn new(index: u64) -> Option<H3Cell> {
        (index >> 63 == 0 && (index >> Self::MODE_SHIFT) & 0xF == 1).then_some(H3Cell(index))
    }

    /// Its integer form, as stored.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for H3Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// Why a text is not an H3 cell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not an H3 cell index (15 hexadecimal digits)")]
pub struct NotACell(String);

impl FromStr for H3Cell {
    type Err = NotACell;
    fn from_str(text: &str) -> Result<H3Cell, NotACell> {
        let not = || NotACell(crate::echo(text));
        if text.len() != 15 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(not());
        }
        u64::from_str_radix(text, 16).ok().and_then(H3Cell::new).ok_or_else(not)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_show_and_parse_as_h3_does() {
        let cell = H3Cell::new(0x8f2830828052d25).unwrap();
        assert_eq!(cell.to_string(), "8f2830828052d25");
        assert_eq!("8f2830828052d25".parse::<H3Cell>(), Ok(cell));
        for bad in ["", "8F2830828052D25", "8f2830828052d2", "x", "1f2830828052d25"] {
            assert!(bad.parse::<H3Cell>().is_err(), "{bad}");
        }
        assert_eq!(H3Cell::new(u64::MAX), None);
    }
}
