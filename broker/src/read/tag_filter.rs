//! The `tag` filter of reads: `*` (everything), `a`, or `a||b||c`.
//!
//! A message without a tag matches only `*`. An empty alternative (`a||`) or
//! one that is not a valid tag is 400, so a typo cannot silently match nothing.

use shale_hot::Record;

use crate::error::BrokerError;

/// Which messages a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    All,
    AnyOf(Vec<String>),
}

impl TagFilter {
    /// Parses `tag=`; absent means [`TagFilter::All`].
    pub fn parse(expr: Option<&str>) -> Result<TagFilter, BrokerError> {
        let Some(expr) = expr else {
            return Ok(TagFilter::All);
        };
        let expr = expr.trim();
        if expr == "*" {
            return Ok(TagFilter::All);
        }
        let mut tags = Vec::new();
        for t in expr.split("||") {
            let t = t.trim();
            crate::validate::tag(t).map_err(|e| e.prefixed(&format!("tag filter {expr:?}: ")))?;
            tags.push(t.to_string());
        }
        Ok(TagFilter::AnyOf(tags))
    }

    pub fn is_all(&self) -> bool {
        matches!(self, TagFilter::All)
    }

    pub fn matches(&self, record: &Record) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::AnyOf(tags) => record.tag.as_ref().is_some_and(|t| tags.contains(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses() {
        assert_eq!(TagFilter::parse(None).unwrap(), TagFilter::All);
        assert_eq!(TagFilter::parse(Some("*")).unwrap(), TagFilter::All);
        assert_eq!(
            TagFilter::parse(Some("a||b")).unwrap(),
            TagFilter::AnyOf(vec!["a".into(), "b".into()])
        );
        assert!(crate::error::is_invalid(&TagFilter::parse(Some("a||"))));
        assert!(crate::error::is_invalid(&TagFilter::parse(Some(""))));
        assert!(crate::error::is_invalid(&TagFilter::parse(Some("a|b"))));
    }

    proptest! {
        #[test]
        fn any_of_round_trips(tags in proptest::collection::vec("[A-Za-z0-9._-]{1,16}", 1..8)) {
            let expr = tags.join("||");
            prop_assert_eq!(TagFilter::parse(Some(&expr)).unwrap(), TagFilter::AnyOf(tags));
        }
    }
}
