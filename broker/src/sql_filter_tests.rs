//! Tests of the SQL92 filter: every operator with its NULL/UNKNOWN cases,
//! numeric vs string comparison, quoting, precedence, the rejected inputs, and
//! property tests that the three-valued logic agrees with a reference
//! evaluator written independently over randomly generated expressions.

use proptest::prelude::*;

use super::{MAX_EXPRESSION_BYTES, MAX_NESTING, Message, SqlFilter, Truth};

fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn filter(expr: &str) -> SqlFilter {
    match SqlFilter::parse(expr) {
        Ok(filter) => filter,
        Err(error) => panic!("`{expr}` should parse: {error}"),
    }
}

/// The truth value of `expr` for a message, UNKNOWN included.
fn truth(expr: &str, tag: Option<&str>, pairs: &[(&str, &str)]) -> Truth {
    let properties = props(pairs);
    let message = Message {
        tag,
        properties: &properties,
    };
    filter(expr).root.eval(&message)
}

fn matches(expr: &str, pairs: &[(&str, &str)]) -> bool {
    filter(expr).matches(None, &props(pairs))
}

fn rejected(expr: &str) -> String {
    match SqlFilter::parse(expr) {
        Ok(filter) => panic!("`{expr}` should be rejected, compiled to {filter:?}"),
        Err(error) => error,
    }
}

fn assert_rejected(expr: &str, needle: &str) {
    let error = rejected(expr);
    assert!(
        error.contains(needle),
        "error for `{expr}` should mention `{needle}`: {error}"
    );
}

use Truth::{False, True, Unknown};

#[test]
fn string_equality_and_inequality() {
    assert_eq!(truth("region = 'eu'", None, &[("region", "eu")]), True);
    assert_eq!(truth("region = 'eu'", None, &[("region", "us")]), False);
    assert_eq!(truth("region = 'eu'", None, &[]), Unknown);
    assert_eq!(truth("region <> 'eu'", None, &[("region", "us")]), True);
    assert_eq!(truth("region != 'eu'", None, &[("region", "eu")]), False);
    assert_eq!(truth("region <> 'eu'", None, &[]), Unknown);
    // Literal on the left, case-sensitive values, the empty string, escaped quotes.
    assert_eq!(truth("'eu' = region", None, &[("region", "eu")]), True);
    assert_eq!(truth("region = 'EU'", None, &[("region", "eu")]), False);
    assert_eq!(truth("region = ''", None, &[("region", "")]), True);
    assert_eq!(truth("name = 'it''s'", None, &[("name", "it's")]), True);
}

#[test]
fn numeric_comparisons_convert_the_property() {
    let amount = |value| [("amount", value)];
    assert_eq!(truth("amount > 100", None, &amount("150")), True);
    assert_eq!(truth("amount > 100", None, &amount("100")), False);
    assert_eq!(truth("amount >= 100", None, &amount("100")), True);
    assert_eq!(truth("amount < 100", None, &amount("99.5")), True);
    assert_eq!(truth("amount <= 100", None, &amount("100.0")), True);
    assert_eq!(truth("amount = 100", None, &amount("100.0")), True);
    assert_eq!(truth("amount = 100", None, &amount("1e2")), True);
    assert_eq!(truth("amount <> 100", None, &amount("101")), True);
    assert_eq!(truth("amount != 100", None, &amount("100")), False);
    assert_eq!(truth("amount > -5", None, &amount("-4")), True);
    assert_eq!(truth("amount > +5", None, &amount("6")), True);
    assert_eq!(truth("amount < 0.25", None, &amount("0.2")), True);
    // Literal on the left flips the operator.
    assert_eq!(truth("100 < amount", None, &amount("150")), True);
    assert_eq!(truth("100 >= amount", None, &amount("150")), False);
    // Not a number, not finite, padded, or absent: UNKNOWN, whatever the operator.
    for value in ["abc", "", "NaN", "inf", "1e400", " 5", "0x10"] {
        assert_eq!(
            truth("amount > 1", None, &amount(value)),
            Unknown,
            "{value:?}"
        );
        assert_eq!(
            truth("amount <> 1", None, &amount(value)),
            Unknown,
            "{value:?}"
        );
    }
    assert_eq!(truth("amount = 1", None, &[]), Unknown);
    // A numeric property still compares as a string with a string literal.
    assert_eq!(truth("amount = '100'", None, &amount("100.0")), False);
}

#[test]
fn logic_is_three_valued() {
    let a_true = ("a", "1");
    let a_false = ("a", "0");
    // a = 1 is TRUE, FALSE or (a absent) UNKNOWN; b = 1 likewise.
    assert_eq!(truth("a = 1 AND b = 1", None, &[a_true]), Unknown);
    assert_eq!(truth("a = 1 AND b = 1", None, &[a_false]), False);
    assert_eq!(truth("a = 1 OR b = 1", None, &[a_true]), True);
    assert_eq!(truth("a = 1 OR b = 1", None, &[a_false]), Unknown);
    assert_eq!(truth("NOT a = 1", None, &[]), Unknown);
    assert_eq!(truth("NOT (a = 1)", None, &[a_false]), True);
    assert_eq!(truth("NOT NOT a = 1", None, &[a_true]), True);
    assert!(!matches("NOT a = 1", &[]));
    assert!(!matches("NOT (a = 1 AND b = 1)", &[a_true]));
    assert!(matches("NOT (a = 1 AND b = 1)", &[a_false]));
}

#[test]
fn true_and_false_literals() {
    assert_eq!(truth("TRUE", None, &[]), True);
    assert_eq!(truth("FALSE", None, &[]), False);
    assert_eq!(truth("true AND a = 1", None, &[("a", "1")]), True);
    assert_eq!(truth("FALSE OR a = 1", None, &[]), Unknown);
    assert_eq!(truth("NOT FALSE", None, &[]), True);
    assert_eq!(truth("FALSE AND a = 1", None, &[]), False);
}

#[test]
fn literal_comparisons_are_folded() {
    assert_eq!(truth("1 = 1", None, &[]), True);
    assert_eq!(truth("1 < 0.5", None, &[]), False);
    assert_eq!(truth("'a' <> 'b'", None, &[]), True);
}

#[test]
fn in_and_not_in() {
    let expr = "region IN ('eu', 'us')";
    assert_eq!(truth(expr, None, &[("region", "eu")]), True);
    assert_eq!(truth(expr, None, &[("region", "ap")]), False);
    assert_eq!(truth(expr, None, &[]), Unknown);
    let expr = "region NOT IN ('eu', 'us')";
    assert_eq!(truth(expr, None, &[("region", "ap")]), True);
    assert_eq!(truth(expr, None, &[("region", "us")]), False);
    assert_eq!(truth(expr, None, &[]), Unknown);
    let expr = "level IN (1, 2.5)";
    assert_eq!(truth(expr, None, &[("level", "2.50")]), True);
    assert_eq!(truth(expr, None, &[("level", "3")]), False);
    assert_eq!(truth(expr, None, &[("level", "x")]), Unknown);
    assert_eq!(
        truth("level NOT IN (1, 2)", None, &[("level", "x")]),
        Unknown
    );
}

#[test]
fn between_and_not_between() {
    let expr = "amount BETWEEN 10 AND 20";
    assert_eq!(truth(expr, None, &[("amount", "10")]), True);
    assert_eq!(truth(expr, None, &[("amount", "20")]), True);
    assert_eq!(truth(expr, None, &[("amount", "20.01")]), False);
    assert_eq!(truth(expr, None, &[("amount", "x")]), Unknown);
    assert_eq!(truth(expr, None, &[]), Unknown);
    let expr = "amount NOT BETWEEN 10 AND 20";
    assert_eq!(truth(expr, None, &[("amount", "9")]), True);
    assert_eq!(truth(expr, None, &[("amount", "15")]), False);
    assert_eq!(truth(expr, None, &[]), Unknown);
    assert_eq!(
        truth("amount BETWEEN -1.5 AND -1", None, &[("amount", "-1.2")]),
        True
    );
    // Bounds the wrong way round select nothing, as in SQL.
    assert_eq!(
        truth("amount BETWEEN 20 AND 10", None, &[("amount", "15")]),
        False
    );
    // BETWEEN binds tighter than the AND around it.
    let expr = "amount BETWEEN 1 AND 5 AND region = 'eu'";
    assert!(matches(expr, &[("amount", "3"), ("region", "eu")]));
    assert!(!matches(expr, &[("amount", "3"), ("region", "us")]));
}

#[test]
fn is_null_and_is_not_null_are_never_unknown() {
    assert_eq!(truth("region IS NULL", None, &[]), True);
    assert_eq!(truth("region IS NULL", None, &[("region", "")]), False);
    assert_eq!(truth("region IS NOT NULL", None, &[("region", "eu")]), True);
    assert_eq!(truth("region IS NOT NULL", None, &[]), False);
    assert_eq!(truth("NOT region IS NULL", None, &[("region", "eu")]), True);
    assert_eq!(truth("TAGS IS NULL", None, &[]), True);
    assert_eq!(truth("TAGS IS NOT NULL", Some("paid"), &[]), True);
}

#[test]
fn tags_names_the_tag_case_sensitively() {
    assert_eq!(truth("TAGS = 'paid'", Some("paid"), &[]), True);
    assert_eq!(truth("TAGS = 'paid'", Some("created"), &[]), False);
    assert_eq!(truth("TAGS = 'paid'", None, &[]), Unknown);
    assert_eq!(
        truth("TAGS IN ('created', 'paid')", Some("paid"), &[]),
        True
    );
    assert_eq!(truth("\"TAGS\" = 'paid'", Some("paid"), &[]), True);
    // The tag wins over a property of that name; `tags` is an ordinary property.
    assert_eq!(truth("TAGS = 'paid'", Some("paid"), &[("TAGS", "x")]), True);
    assert_eq!(truth("tags = 'paid'", Some("paid"), &[]), Unknown);
    assert_eq!(truth("tags = 'paid'", Some("x"), &[("tags", "paid")]), True);
    assert!(
        filter("TAGS = 'paid' AND amount > 1").matches(Some("paid"), &props(&[("amount", "2")]))
    );
}

#[test]
fn identifiers_can_be_dotted_or_quoted() {
    assert!(matches("a.b = 'x'", &[("a.b", "x")]));
    assert!(matches("\"a.b\" = 'x'", &[("a.b", "x")]));
    assert!(matches("\"x-y\" = 'x'", &[("x-y", "x")]));
    assert!(matches("`x-y` = 'x'", &[("x-y", "x")]));
    assert!(matches("\"with space\" > 1", &[("with space", "2")]));
    assert!(matches("\"Select\" = 'x'", &[("Select", "x")]));
    assert!(matches("Region = 'x'", &[("Region", "x")]));
    assert!(!matches("Region = 'x'", &[("region", "x")]));
    // Keywords are case-insensitive.
    assert!(matches("a = 1 and not b is not null", &[("a", "1")]));
}

#[test]
fn a_filter_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<SqlFilter>();
}

#[test]
fn first_duplicate_property_wins() {
    assert!(matches("a = '1'", &[("a", "1"), ("a", "2")]));
    assert!(!matches("a = '2'", &[("a", "1"), ("a", "2")]));
}

#[test]
fn comparing_two_properties_is_by_string() {
    let expr = "a = b";
    assert_eq!(truth(expr, None, &[("a", "x"), ("b", "x")]), True);
    assert_eq!(truth(expr, None, &[("a", "1"), ("b", "1.0")]), False);
    assert_eq!(truth(expr, None, &[("a", "x")]), Unknown);
    assert_eq!(truth("a <> b", None, &[("a", "x"), ("b", "y")]), True);
}

#[test]
fn and_binds_tighter_than_or() {
    let expr = "a = '1' OR b = '2' AND c = '3'";
    assert!(matches(expr, &[("a", "1")]));
    assert!(matches(expr, &[("b", "2"), ("c", "3")]));
    assert!(!matches(expr, &[("a", "0"), ("b", "2")]));
    assert!(!matches(expr, &[("a", "0"), ("c", "3")]));
    let grouped = "(a = '1' OR b = '2') AND c = '3'";
    assert!(!matches(grouped, &[("a", "1")]));
    assert!(matches(grouped, &[("a", "1"), ("c", "3")]));
    // NOT binds tighter than AND, and comparisons tighter than NOT.
    let expr = "NOT a = '1' AND b = '2'";
    assert!(matches(expr, &[("a", "0"), ("b", "2")]));
    assert!(!matches(expr, &[("a", "1"), ("b", "2")]));
}

#[test]
fn the_brief_example_from_the_api() {
    let filter = filter("region = 'eu' AND amount > 100");
    assert!(filter.matches(None, &props(&[("region", "eu"), ("amount", "101")])));
    assert!(!filter.matches(None, &props(&[("region", "eu"), ("amount", "100")])));
    assert!(!filter.matches(None, &props(&[("region", "eu")])));
    assert!(!filter.matches(None, &props(&[("region", "us"), ("amount", "1000")])));
}

#[test]
fn whitespace_comments_and_long_flat_chains_are_fine() {
    assert!(matches("  a = 1\n\t", &[("a", "1")]));
    assert!(matches("a = 1 -- trailing comment", &[("a", "1")]));
    assert!(matches("a /* inline */ = 1", &[("a", "1")]));
    // A flat chain is one level, however long.
    let chain = vec!["a = 1"; 300].join(" AND ");
    assert!(chain.len() <= MAX_EXPRESSION_BYTES);
    assert!(matches(&chain, &[("a", "1")]));
    let chain = vec!["a = 1"; 300].join(" OR ");
    assert!(!matches(&chain, &[("a", "2")]));
}

#[test]
fn nesting_is_limited_to_64_levels() {
    let nested = |levels: usize| {
        // The whole expression is level 1; each parenthesis adds one.
        format!("{}a = 1{}", "(".repeat(levels - 1), ")".repeat(levels - 1))
    };
    assert!(matches(&nested(MAX_NESTING), &[("a", "1")]));
    assert_rejected(&nested(MAX_NESTING + 1), "deeper than 64");
    assert_rejected(&nested(1000), "deeper than 64");

    let nots = |levels: usize| format!("{}a = 1", "NOT ".repeat(levels - 1));
    assert_eq!(truth(&nots(MAX_NESTING), None, &[("a", "1")]), False);
    assert_rejected(&nots(MAX_NESTING + 1), "deeper than 64");
    // Past the parser's own recursion budget a `NOT` chain fails inside
    // sqlparser, with its message rather than ours.
    assert!(SqlFilter::parse(&nots(900)).is_err());

    // Alternating AND/OR groups, each level a parenthesis plus a chain.
    let mut mixed = "a = 1".to_owned();
    for level in 0..40 {
        let op = if level % 2 == 0 { "AND" } else { "OR" };
        mixed = format!("(b = 2 {op} {mixed})");
    }
    assert!(SqlFilter::parse(&mixed).is_err());
    let mut mixed = "a = 1".to_owned();
    for level in 0..31 {
        let op = if level % 2 == 0 { "AND" } else { "OR" };
        mixed = format!("(b = 2 {op} {mixed})");
    }
    assert!(SqlFilter::parse(&mixed).is_ok());
}

/// sqlparser's frames are large in debug builds (tens of KiB per level of
/// parentheses); its `recursive-protection` feature moves deep recursion onto
/// the heap. This keeps the worst 4 KiB inputs safe on a small thread stack.
#[test]
fn parse_is_stack_safe_on_a_small_thread() {
    let worst_inputs = [
        format!("{}a = 1{}", "(".repeat(63), ")".repeat(63)),
        format!("{}a = 1", "NOT ".repeat(63)),
        format!("{}a = 1{}", "(".repeat(2040), ")".repeat(2040)),
        format!("{}a = 1", "NOT ".repeat(1020)),
        format!("{}a = 1", "NOT (".repeat(680)),
        format!("a = {}1", "- ".repeat(2000)),
    ];
    let worker = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            worst_inputs
                .iter()
                .map(|input| SqlFilter::parse(input).is_ok())
                .collect::<Vec<bool>>()
        })
        .expect("spawn a thread");
    let parsed = worker.join().expect("no stack overflow");
    assert_eq!(parsed, [true, true, false, false, false, false]);
}

#[test]
fn rejects_what_is_not_supported() {
    assert_rejected("", "empty");
    assert_rejected("   \n", "empty");
    assert_rejected(
        &format!("a = '{}'", "x".repeat(MAX_EXPRESSION_BYTES)),
        "4096",
    );
    assert_rejected("a = 1 b", "unexpected text");
    assert_rejected("a = 1;", "unexpected text");
    assert_rejected("a = 1)", "unexpected text");
    assert_rejected("a = 1 AND", "not valid SQL");
    assert_rejected("(a = 1", "not valid SQL");
    assert_rejected("a = 'unterminated", "not valid SQL");
    assert_rejected("upper(a) = 'X'", "Functions");
    assert_rejected("a IN (SELECT b FROM t)", "Subqueries");
    assert_rejected("EXISTS (SELECT 1)", "Subqueries");
    assert_rejected("a + 1 > 2", "Arithmetic");
    assert_rejected("a * 2 = 4", "Arithmetic");
    assert_rejected("-a = 1", "not supported");
    assert_rejected("a LIKE 'x%'", "LIKE");
    assert_rejected("CASE WHEN a = 1 THEN TRUE ELSE FALSE END", "CASE");
    assert_rejected("CAST(a AS INT) = 1", "Casts");
    assert_rejected("a || 'x' = 'yx'", "operator");
    assert_rejected("a = 1 XOR b = 1", "operator");
    assert_rejected("a IS TRUE", "IS tests");
    assert_rejected("a IS DISTINCT FROM b", "IS tests");
    // Types and shapes.
    assert_rejected("a > 'x'", "only be compared with = and <>");
    assert_rejected("'x' <= a", "only be compared with = and <>");
    assert_rejected("'a' < 'b'", "only be compared with = and <>");
    assert_rejected("a < b", "Two properties");
    assert_rejected("1 = 'x'", "number with a string");
    assert_rejected("a = NULL", "IS NULL");
    assert_rejected("a <> NULL", "IS NULL");
    assert_rejected("a = TRUE", "TRUE and FALSE");
    assert_rejected("a", "property alone");
    assert_rejected("a AND b = 1", "property alone");
    assert_rejected("'x'", "literal is not a condition");
    assert_rejected("1", "literal is not a condition");
    assert_rejected("a IN ('x', 1)", "not both");
    assert_rejected("a IN (b)", "only literals");
    assert_rejected("a IN ()", "");
    assert_rejected("'x' IN ('x')", "applies to a property");
    assert_rejected("1 IS NULL", "applies to a property");
    assert_rejected("a BETWEEN 'a' AND 'z'", "numeric literals");
    assert_rejected("a BETWEEN b AND 2", "numeric literals");
    assert_rejected("a = 1e400", "finite");
    assert_rejected("a = \"b\" + 1", "Arithmetic");
}

#[test]
fn error_messages_quote_a_short_snippet() {
    let long_name = "p".repeat(500);
    let error = rejected(&format!("upper({long_name}) = 'x'"));
    assert!(error.len() < 200, "{error}");
    assert!(error.contains('…'), "{error}");
}

// ---------------------------------------------------------------------------
// Property tests against a reference evaluator.

const NAMES: [&str; 4] = ["a", "b", "c", "x-y"];
const VALUES: [&str; 7] = ["1", "2", "10", "-3.5", "abc", "", "1e1"];

/// A generated expression, rendered to SQL and evaluated independently.
#[derive(Debug, Clone)]
enum Gen {
    Bool(bool),
    /// `name <op> number`, op one of `=`, `<>`, `<`, `<=`, `>`, `>=`.
    NumCmp(usize, usize, f64),
    /// `name = 'value'` (`<>` when negated).
    StrCmp(usize, bool, usize),
    IsNull(usize, bool),
    StrIn(usize, Vec<usize>, bool),
    Between(usize, f64, f64, bool),
    Not(Box<Gen>),
    And(Box<Gen>, Box<Gen>),
    Or(Box<Gen>, Box<Gen>),
}

const OPS: [&str; 6] = ["=", "<>", "<", "<=", ">", ">="];

fn quoted(name: usize) -> String {
    format!("\"{}\"", NAMES[name])
}

fn render(expr: &Gen) -> String {
    match expr {
        Gen::Bool(value) => if *value { "TRUE" } else { "FALSE" }.to_owned(),
        Gen::NumCmp(name, op, number) => format!("{} {} {number}", quoted(*name), OPS[*op]),
        Gen::StrCmp(name, negated, value) => {
            let op = if *negated { "<>" } else { "=" };
            format!("{} {op} '{}'", quoted(*name), VALUES[*value])
        }
        Gen::IsNull(name, negated) => {
            let not = if *negated { "NOT " } else { "" };
            format!("{} IS {not}NULL", quoted(*name))
        }
        Gen::StrIn(name, values, negated) => {
            let list: Vec<String> = values.iter().map(|v| format!("'{}'", VALUES[*v])).collect();
            let not = if *negated { "NOT " } else { "" };
            format!("{} {not}IN ({})", quoted(*name), list.join(", "))
        }
        Gen::Between(name, low, high, negated) => {
            let not = if *negated { "NOT " } else { "" };
            format!("{} {not}BETWEEN {low} AND {high}", quoted(*name))
        }
        Gen::Not(inner) => format!("NOT ({})", render(inner)),
        Gen::And(left, right) => format!("({}) AND ({})", render(left), render(right)),
        Gen::Or(left, right) => format!("({}) OR ({})", render(left), render(right)),
    }
}

/// The reference: `None` is UNKNOWN. Deliberately naive.
fn reference(expr: &Gen, message: &[(String, String)]) -> Option<bool> {
    let get = |name: usize| {
        message
            .iter()
            .find(|(key, _)| key == NAMES[name])
            .map(|(_, value)| value.as_str())
    };
    let number = |name: usize| {
        get(name)
            .and_then(|text| text.parse::<f64>().ok())
            .filter(|value| value.is_finite())
    };
    match expr {
        Gen::Bool(value) => Some(*value),
        Gen::NumCmp(name, op, literal) => {
            let value = number(*name)?;
            Some(match OPS[*op] {
                "=" => value == *literal,
                "<>" => value != *literal,
                "<" => value < *literal,
                "<=" => value <= *literal,
                ">" => value > *literal,
                _ => value >= *literal,
            })
        }
        Gen::StrCmp(name, negated, literal) => Some((get(*name)? == VALUES[*literal]) != *negated),
        Gen::IsNull(name, negated) => Some(get(*name).is_none() != *negated),
        Gen::StrIn(name, values, negated) => {
            let value = get(*name)?;
            Some(values.iter().any(|v| VALUES[*v] == value) != *negated)
        }
        Gen::Between(name, low, high, negated) => {
            let value = number(*name)?;
            Some((*low <= value && value <= *high) != *negated)
        }
        Gen::Not(inner) => reference(inner, message).map(|value| !value),
        Gen::And(left, right) => match (reference(left, message), reference(right, message)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Gen::Or(left, right) => match (reference(left, message), reference(right, message)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
    }
}

fn literal_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(1.0),
        Just(2.0),
        Just(10.0),
        Just(-3.5),
        Just(0.0),
        (-20i32..20).prop_map(f64::from),
    ]
}

fn leaf() -> impl Strategy<Value = Gen> {
    let name = 0..NAMES.len();
    let value = 0..VALUES.len();
    prop_oneof![
        any::<bool>().prop_map(Gen::Bool),
        (name.clone(), 0..OPS.len(), literal_number()).prop_map(|(n, op, v)| Gen::NumCmp(n, op, v)),
        (name.clone(), any::<bool>(), value.clone()).prop_map(|(n, neg, v)| Gen::StrCmp(n, neg, v)),
        (name.clone(), any::<bool>()).prop_map(|(n, neg)| Gen::IsNull(n, neg)),
        (
            name.clone(),
            prop::collection::vec(value, 1..4),
            any::<bool>()
        )
            .prop_map(|(n, vs, neg)| Gen::StrIn(n, vs, neg)),
        (name, literal_number(), literal_number(), any::<bool>())
            .prop_map(|(n, lo, hi, neg)| Gen::Between(n, lo, hi, neg)),
    ]
}

fn expression() -> impl Strategy<Value = Gen> {
    leaf().prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Gen::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Gen::And(Box::new(l), Box::new(r))),
            (inner.clone(), inner).prop_map(|(l, r)| Gen::Or(Box::new(l), Box::new(r))),
        ]
    })
}

fn message() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (0..NAMES.len(), 0..VALUES.len())
            .prop_map(|(n, v)| (NAMES[n].to_owned(), VALUES[v].to_owned())),
        0..5,
    )
}

fn compiled_matches(sql: &str, message: &[(String, String)]) -> bool {
    filter(sql).matches(None, message)
}

proptest! {
    #[test]
    fn matches_exactly_when_the_reference_is_true(e in expression(), msg in message()) {
        let sql = render(&e);
        prop_assert_eq!(compiled_matches(&sql, &msg), reference(&e, &msg) == Some(true), "{}", sql);
    }

    #[test]
    fn not_matches_exactly_when_false_not_unknown(e in expression(), msg in message()) {
        let sql = format!("NOT ({})", render(&e));
        prop_assert_eq!(compiled_matches(&sql, &msg), reference(&e, &msg) == Some(false), "{}", sql);
    }

    #[test]
    fn and_or_agree_with_the_parts(e1 in expression(), e2 in expression(), msg in message()) {
        let (r1, r2) = (reference(&e1, &msg), reference(&e2, &msg));
        let (s1, s2) = (render(&e1), render(&e2));
        let and = format!("({s1}) AND ({s2})");
        prop_assert_eq!(compiled_matches(&and, &msg), r1 == Some(true) && r2 == Some(true), "{}", and);
        let or = format!("({s1}) OR ({s2})");
        prop_assert_eq!(compiled_matches(&or, &msg), r1 == Some(true) || r2 == Some(true), "{}", or);
        // The negations see the UNKNOWNs of the parts.
        let not_and = format!("NOT (({s1}) AND ({s2}))");
        prop_assert_eq!(compiled_matches(&not_and, &msg), r1 == Some(false) || r2 == Some(false), "{}", not_and);
        let not_or = format!("NOT (({s1}) OR ({s2}))");
        prop_assert_eq!(compiled_matches(&not_or, &msg), r1 == Some(false) && r2 == Some(false), "{}", not_or);
    }

    #[test]
    fn parse_never_panics(input in "[a-zA-Z0-9 ()'\"=<>!.,*+-]{0,80}") {
        let _ = SqlFilter::parse(&input);
    }
}
