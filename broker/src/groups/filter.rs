//! The `filter` of a receive: TAG (`*`, `a`, `a||b`) or SQL92 over
//! properties and `TAGS`, evaluated on the server. Messages a group filters
//! out count as consumed.

use serde::Deserialize;
use shale_hot::Record;

use crate::error::BrokerError;
use crate::read::tag_filter::TagFilter;
use crate::sql_filter::SqlFilter;

/// `{"type": "TAG" | "SQL92", "expression": "..."}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    #[serde(rename = "type")]
    pub kind: String,
    pub expression: String,
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub enum Filter {
    Tag(TagFilter),
    Sql(Box<SqlFilter>),
}

impl Filter {
    /// Compiles a request's filter (none: everything); a bad one is 400.
    pub fn compile(spec: Option<&FilterSpec>) -> Result<Filter, BrokerError> {
        let Some(spec) = spec else {
            return Ok(Filter::Tag(TagFilter::All));
        };
        match spec.kind.to_ascii_uppercase().as_str() {
            "TAG" => Ok(Filter::Tag(TagFilter::parse(Some(&spec.expression))?)),
            "SQL92" => SqlFilter::parse(&spec.expression)
                .map(|f| Filter::Sql(Box::new(f)))
                .map_err(|why| {
                    BrokerError::invalid(format!("SQL92 filter {:?}: {why}", spec.expression))
                }),
            other => Err(BrokerError::invalid(format!(
                "filter type {other:?} is not TAG or SQL92"
            ))),
        }
    }

    pub fn matches(&self, r: &Record) -> bool {
        match self {
            Filter::Tag(t) => t.matches(r),
            Filter::Sql(s) => s.matches(r.tag.as_deref(), &r.properties),
        }
    }
}
