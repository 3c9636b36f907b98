//! Text search keys: what a site's name and address are matched on, and how a query is cut
//! into words. Matching is by word prefix, ignoring case and accents, so "bibliot" finds
//! "Bibliothèque" and "Bibliotheek".

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::Site;

/// At most this many words in a query; more would not narrow the result meaningfully.
pub const MAX_QUERY_WORDS: usize = 8;

/// Folds text to lower-case words without accents, separated and surrounded by single spaces
/// (" grande poste de harare "), so that `LIKE '% word%'` is a word-prefix match.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for c in text.nfkd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

/// The folded words of a query, without repeats, in order.
pub fn query_words(query: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in fold(query).split(' ').filter(|w| !w.is_empty()) {
        if !words.iter().any(|w| w == word) {
            words.push(word.to_owned());
        }
    }
    words
}

/// A postcode as the store keys it: its letters and digits, upper case, so `M9V 1B2`,
/// `m9v1b2` and `M9V-1B2` are one postcode.
pub fn postcode_key(postcode: &str) -> String {
    postcode.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_uppercase).collect()
}

/// The two search keys of a site: its folded display name, and its folded name and address.
pub fn site_keys(site: &Site) -> (String, String) {
    let address = &site.address;
    let mut text = site.display_name.clone();
    for part in address.lines.iter().chain([&address.locality, &address.region, &address.postal_code]) {
        text.push(' ');
        text.push_str(part);
    }
    (fold(&site.display_name), fold(&text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folds_case_accents_and_punctuation() {
        assert_eq!(fold("Bibliothèque Municipale d'Évora"), " bibliotheque municipale d evora ");
        assert_eq!(fold("  ŁÓDŹ—Centrum, ul. 3 "), " łodz centrum ul 3 ");
        assert_eq!(fold(""), " ");
        assert_eq!(query_words("Poste, poste  HARARE"), ["poste", "harare"]);
        assert!(query_words(" ,;- ").is_empty());
        assert_eq!(postcode_key(" m9v-1b2"), "M9V1B2");
    }

    proptest! {
        #[test]
        fn every_query_word_of_a_text_is_found_in_its_key(text in "\\PC{0,40}") {
            let key = fold(&text);
            prop_assert!(key.starts_with(' ') && key.ends_with(' ') && !key.contains("  ") || key == " ");
            for word in query_words(&text) {
                let needle = format!(" {word}");
                prop_assert!(key.contains(&needle), "{key:?} lacks {word:?}");
            }
        }
    }
}
