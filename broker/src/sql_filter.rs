//! The SQL92 filter of consumer groups (`"filter": {"type": "SQL92", ...}` of
//! `POST /v1/groups/{group}/receive`, RocketMQ 5 semantics).
//!
//! [`SqlFilter::parse`] parses the expression with `sqlparser` (generic
//! dialect), checks it and compiles it into a small tree of our own
//! ([`Node`]); [`SqlFilter::matches`] walks that tree for each message. The
//! compiled tree is all a filter holds, so evaluation borrows the message and
//! allocates nothing.
//!
//! Semantics, as RocketMQ's SQL92 filter:
//! - An identifier names a message property (`region`, `a.b`, `"x-y"`,
//!   `` `x-y` ``); `TAGS` (exactly that spelling, quoted or not) is the
//!   message's tag. With duplicate property names the first one wins.
//! - SQL three-valued logic: a comparison over an absent property, or a
//!   numeric comparison over a value that is not a finite number, is UNKNOWN;
//!   `NOT UNKNOWN` is UNKNOWN; a message matches only if the whole expression
//!   is TRUE.
//! - A comparison with a numeric literal reads the property as an `f64`
//!   (`"10"`, `"-2.5"`, `"1e3"`; no surrounding spaces). Strings compare only
//!   with `=` and `<>`/`!=`, byte for byte; ordering a string is rejected at
//!   parse time, and so is ordering one property against another.
//! - `IN` lists hold only string literals or only numeric literals; `BETWEEN`
//!   takes numeric bounds and is inclusive; `IS [NOT] NULL` tests whether the
//!   property (or tag) is absent, and is never UNKNOWN.
//!
//! Invariants of a compiled filter: the input was at most
//! [`MAX_EXPRESSION_BYTES`] and fully consumed by the parser; the tree nests
//! at most [`MAX_NESTING`] levels (each parenthesis, `NOT` and `AND`/`OR`
//! chain is a level; a chain of one operator is one n-ary node, so long flat
//! chains are fine), which bounds the recursion of evaluation; every numeric
//! literal is finite. Everything else (functions, subqueries, arithmetic,
//! `LIKE`, `CASE`, casts, comparing with `NULL`, ...) is an error: a sentence
//! meant for a 400 `INVALID_ARGUMENT`.

use sqlparser::ast::{BinaryOperator, Expr, Ident, UnaryOperator, Value};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// The longest expression accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// The deepest nesting accepted (parentheses, `NOT`, `AND`/`OR` chains).
pub const MAX_NESTING: usize = 64;

/// The identifier that names the message tag instead of a property.
const TAGS: &str = "TAGS";

/// Recursion budget handed to `sqlparser`. Each level of nesting costs the
/// parser a few frames; this lets every input within [`MAX_NESTING`] through
/// (checked by a test) while still stopping pathological input early.
const PARSER_RECURSION_LIMIT: usize = MAX_NESTING * 4 + 16;

/// How much of an offending sub-expression an error message quotes.
const SNIPPET_CHARS: usize = 60;

/// A compiled SQL92 filter over a message's properties and `TAGS`.
#[derive(Debug, Clone)]
pub struct SqlFilter {
    root: Node,
}

impl SqlFilter {
    /// Parses and checks `expr`; the error is a sentence for a 400 INVALID_ARGUMENT.
    pub fn parse(expr: &str) -> Result<SqlFilter, String> {
        if expr.len() > MAX_EXPRESSION_BYTES {
            return Err(format!(
                "The SQL filter is {} bytes long; at most {MAX_EXPRESSION_BYTES} are allowed.",
                expr.len()
            ));
        }
        if expr.trim().is_empty() {
            return Err("The SQL filter is empty.".to_owned());
        }
        let ast = parse_sql(expr)?;
        let root = compile_condition(&ast, 1)?;
        Ok(SqlFilter { root })
    }

    /// Whether a message with this tag and these properties matches.
    pub fn matches(&self, tag: Option<&str>, properties: &[(String, String)]) -> bool {
        let message = Message { tag, properties };
        self.root.eval(&message) == Truth::True
    }
}

/// Runs `sqlparser` over the whole input: exactly one expression, nothing after it.
fn parse_sql(expr: &str) -> Result<Expr, String> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(PARSER_RECURSION_LIMIT)
        .try_with_sql(expr)
        .map_err(parser_error)?;
    let ast = parser.parse_expr().map_err(parser_error)?;
    let next = parser.peek_token().token;
    if next != Token::EOF {
        return Err(format!(
            "The SQL filter has unexpected text after a complete expression, starting at `{}`.",
            snippet(&next)
        ));
    }
    Ok(ast)
}

fn parser_error(error: ParserError) -> String {
    match error {
        ParserError::RecursionLimitExceeded => nesting_error(),
        ParserError::TokenizerError(message) | ParserError::ParserError(message) => {
            format!("The SQL filter is not valid SQL: {message}.")
        }
    }
}

fn nesting_error() -> String {
    format!("The SQL filter nests deeper than {MAX_NESTING} levels.")
}

/// The first [`SNIPPET_CHARS`] characters of `what`, for an error message.
fn snippet(what: &impl std::fmt::Display) -> String {
    let text = what.to_string();
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

// ---------------------------------------------------------------------------
// The compiled form.

/// SQL's three truth values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    False,
    Unknown,
    True,
}

impl Truth {
    fn from_bool(value: bool) -> Truth {
        if value { Truth::True } else { Truth::False }
    }

    fn not(self) -> Truth {
        match self {
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
            Truth::True => Truth::False,
        }
    }
}

/// What an identifier reads from a message.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Tag,
    Property(Box<str>),
}

/// The ordering operators over numbers (and `=`/`<>`, which also apply to numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    /// The operator that gives the same answer with its operands swapped.
    fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Eq | CmpOp::NotEq => self,
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::LtEq => CmpOp::GtEq,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::GtEq => CmpOp::LtEq,
        }
    }

    fn is_equality(self) -> bool {
        matches!(self, CmpOp::Eq | CmpOp::NotEq)
    }

    fn holds_for_numbers(self, left: f64, right: f64) -> bool {
        match self {
            CmpOp::Eq => left == right,
            CmpOp::NotEq => left != right,
            CmpOp::Lt => left < right,
            CmpOp::LtEq => left <= right,
            CmpOp::Gt => left > right,
            CmpOp::GtEq => left >= right,
        }
    }

    /// Only called for `=` and `<>` (checked at compile time).
    fn holds_for_strings(self, left: &str, right: &str) -> bool {
        debug_assert!(self.is_equality());
        (left == right) == (self == CmpOp::Eq)
    }
}

/// A node of the compiled filter. Literal-only comparisons are folded into
/// [`Node::Const`] at compile time.
#[derive(Debug, Clone)]
enum Node {
    Const(Truth),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    /// `field IS NULL` (`negated`: `IS NOT NULL`).
    IsNull {
        field: Field,
        negated: bool,
    },
    /// `field = 'v'` / `field <> 'v'`.
    StrCmp {
        field: Field,
        op: CmpOp,
        value: Box<str>,
    },
    /// `field <op> number`.
    NumCmp {
        field: Field,
        op: CmpOp,
        value: f64,
    },
    /// `field = other` / `field <> other`, as strings.
    FieldCmp {
        left: Field,
        op: CmpOp,
        right: Field,
    },
    /// `field [NOT] IN ('a', 'b')`.
    StrIn {
        field: Field,
        values: Box<[Box<str>]>,
        negated: bool,
    },
    /// `field [NOT] IN (1, 2)`.
    NumIn {
        field: Field,
        values: Box<[f64]>,
        negated: bool,
    },
    /// `field [NOT] BETWEEN low AND high`.
    Between {
        field: Field,
        low: f64,
        high: f64,
        negated: bool,
    },
}

/// The parts of a message a filter reads.
struct Message<'a> {
    tag: Option<&'a str>,
    properties: &'a [(String, String)],
}

impl Message<'_> {
    fn get(&self, field: &Field) -> Option<&str> {
        match field {
            Field::Tag => self.tag,
            Field::Property(name) => self
                .properties
                .iter()
                .find(|(key, _)| key.as_str() == &**name)
                .map(|(_, value)| value.as_str()),
        }
    }

    /// The field as a finite number; `None` (UNKNOWN) when absent or not numeric.
    fn number(&self, field: &Field) -> Option<f64> {
        self.get(field).and_then(parse_number)
    }
}

/// A property value read as a number, as a numeric comparison does.
fn parse_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|value| value.is_finite())
}

impl Node {
    fn eval(&self, message: &Message<'_>) -> Truth {
        match self {
            Node::Const(truth) => *truth,
            Node::And(children) => {
                let mut result = Truth::True;
                for child in children.iter() {
                    match child.eval(message) {
                        Truth::False => return Truth::False,
                        Truth::Unknown => result = Truth::Unknown,
                        Truth::True => {}
                    }
                }
                result
            }
            Node::Or(children) => {
                let mut result = Truth::False;
                for child in children.iter() {
                    match child.eval(message) {
                        Truth::True => return Truth::True,
                        Truth::Unknown => result = Truth::Unknown,
                        Truth::False => {}
                    }
                }
                result
            }
            Node::Not(child) => child.eval(message).not(),
            Node::IsNull { field, negated } => {
                Truth::from_bool(message.get(field).is_none() != *negated)
            }
            Node::StrCmp { field, op, value } => match message.get(field) {
                Some(actual) => Truth::from_bool(op.holds_for_strings(actual, value)),
                None => Truth::Unknown,
            },
            Node::NumCmp { field, op, value } => match message.number(field) {
                Some(actual) => Truth::from_bool(op.holds_for_numbers(actual, *value)),
                None => Truth::Unknown,
            },
            Node::FieldCmp { left, op, right } => match (message.get(left), message.get(right)) {
                (Some(left), Some(right)) => Truth::from_bool(op.holds_for_strings(left, right)),
                _ => Truth::Unknown,
            },
            Node::StrIn {
                field,
                values,
                negated,
            } => match message.get(field) {
                Some(actual) => {
                    let found = values.iter().any(|value| &**value == actual);
                    Truth::from_bool(found != *negated)
                }
                None => Truth::Unknown,
            },
            Node::NumIn {
                field,
                values,
                negated,
            } => match message.number(field) {
                Some(actual) => {
                    let found = values.contains(&actual);
                    Truth::from_bool(found != *negated)
                }
                None => Truth::Unknown,
            },
            Node::Between {
                field,
                low,
                high,
                negated,
            } => match message.number(field) {
                Some(actual) => {
                    let inside = *low <= actual && actual <= *high;
                    Truth::from_bool(inside != *negated)
                }
                None => Truth::Unknown,
            },
        }
    }
}

// ---------------------------------------------------------------------------
// Compilation: sqlparser's `Expr` -> `Node`.

/// A value position of a comparison, `IN` or `BETWEEN`.
enum Operand {
    Field(Field),
    Str(Box<str>),
    Num(f64),
}

/// Compiles an expression that must yield a truth value. `depth` is the
/// nesting level of `expr` (the whole filter is level 1).
fn compile_condition(expr: &Expr, depth: usize) -> Result<Node, String> {
    if depth > MAX_NESTING {
        return Err(nesting_error());
    }
    match expr {
        Expr::Nested(inner) => compile_condition(inner, depth + 1),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: inner,
        } => Ok(Node::Not(Box::new(compile_condition(inner, depth + 1)?))),
        Expr::BinaryOp { op, left, right } => match op {
            BinaryOperator::And | BinaryOperator::Or => compile_chain(expr, op, depth),
            _ => match comparison_op(op) {
                Some(cmp) => compile_comparison(expr, left, cmp, right),
                None => Err(unsupported_operator(op, expr)),
            },
        },
        Expr::IsNull(inner) => Ok(Node::IsNull {
            field: field_of(inner, "IS NULL")?,
            negated: false,
        }),
        Expr::IsNotNull(inner) => Ok(Node::IsNull {
            field: field_of(inner, "IS NOT NULL")?,
            negated: true,
        }),
        Expr::InList {
            expr: inner,
            list,
            negated,
        } => compile_in(expr, inner, list, *negated),
        Expr::Between {
            expr: inner,
            negated,
            low,
            high,
        } => {
            let field = field_of(inner, "BETWEEN")?;
            let low = number_bound(low, expr)?;
            let high = number_bound(high, expr)?;
            Ok(Node::Between {
                field,
                low,
                high,
                negated: *negated,
            })
        }
        Expr::Value(literal) => match literal.value {
            Value::Boolean(value) => Ok(Node::Const(Truth::from_bool(value))),
            _ => Err(format!(
                "A literal is not a condition in a SQL filter: `{}`; compare a property with it.",
                snippet(expr)
            )),
        },
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => Err(format!(
            "A property alone is not a condition in a SQL filter: `{}`; compare it, \
             e.g. `{0} = 'v'` or `{0} IS NOT NULL`.",
            snippet(expr)
        )),
        _ => Err(unsupported(expr)),
    }
}

/// Compiles a chain of one operator (`a AND b AND c`) into one n-ary node, so
/// that flat chains do not count as nesting. Walks the chain with an explicit
/// stack: sqlparser builds it left-deep, as deep as it is long.
fn compile_chain(expr: &Expr, chain_op: &BinaryOperator, depth: usize) -> Result<Node, String> {
    let mut children = Vec::new();
    let mut pending = vec![expr];
    while let Some(next) = pending.pop() {
        match next {
            Expr::BinaryOp { op, left, right } if op == chain_op => {
                pending.push(right);
                pending.push(left);
            }
            operand => children.push(compile_condition(operand, depth + 1)?),
        }
    }
    let children = children.into_boxed_slice();
    Ok(match chain_op {
        BinaryOperator::And => Node::And(children),
        _ => Node::Or(children),
    })
}

fn comparison_op(op: &BinaryOperator) -> Option<CmpOp> {
    Some(match op {
        BinaryOperator::Eq => CmpOp::Eq,
        BinaryOperator::NotEq => CmpOp::NotEq,
        BinaryOperator::Lt => CmpOp::Lt,
        BinaryOperator::LtEq => CmpOp::LtEq,
        BinaryOperator::Gt => CmpOp::Gt,
        BinaryOperator::GtEq => CmpOp::GtEq,
        _ => return None,
    })
}

fn compile_comparison(expr: &Expr, left: &Expr, op: CmpOp, right: &Expr) -> Result<Node, String> {
    let ordering_strings = || {
        format!(
            "Strings can only be compared with = and <> in a SQL filter: `{}`; \
             compare with a number to compare numerically.",
            snippet(expr)
        )
    };
    Ok(match (operand(left)?, operand(right)?) {
        (Operand::Field(field), Operand::Num(value)) => Node::NumCmp { field, op, value },
        (Operand::Num(value), Operand::Field(field)) => Node::NumCmp {
            field,
            op: op.flipped(),
            value,
        },
        (Operand::Field(field), Operand::Str(value))
        | (Operand::Str(value), Operand::Field(field)) => {
            if !op.is_equality() {
                return Err(ordering_strings());
            }
            Node::StrCmp { field, op, value }
        }
        (Operand::Field(left), Operand::Field(right)) => {
            if !op.is_equality() {
                return Err(format!(
                    "Two properties can only be compared with = and <> in a SQL filter: `{}`; \
                     compare each with a number instead.",
                    snippet(expr)
                ));
            }
            Node::FieldCmp { left, op, right }
        }
        (Operand::Num(left), Operand::Num(right)) => {
            Node::Const(Truth::from_bool(op.holds_for_numbers(left, right)))
        }
        (Operand::Str(left), Operand::Str(right)) => {
            if !op.is_equality() {
                return Err(ordering_strings());
            }
            Node::Const(Truth::from_bool(op.holds_for_strings(&left, &right)))
        }
        (Operand::Num(_), Operand::Str(_)) | (Operand::Str(_), Operand::Num(_)) => {
            return Err(format!(
                "A SQL filter cannot compare a number with a string: `{}`.",
                snippet(expr)
            ));
        }
    })
}

fn compile_in(expr: &Expr, inner: &Expr, list: &[Expr], negated: bool) -> Result<Node, String> {
    let field = field_of(inner, "IN")?;
    let mut strings = Vec::new();
    let mut numbers = Vec::new();
    for item in list {
        match operand(item)? {
            Operand::Str(value) => strings.push(value),
            Operand::Num(value) => numbers.push(value),
            Operand::Field(_) => {
                return Err(format!(
                    "An IN list of a SQL filter holds only literals: `{}`.",
                    snippet(expr)
                ));
            }
        }
    }
    match (strings.is_empty(), numbers.is_empty()) {
        (false, true) => Ok(Node::StrIn {
            field,
            values: strings.into_boxed_slice(),
            negated,
        }),
        (true, false) => Ok(Node::NumIn {
            field,
            values: numbers.into_boxed_slice(),
            negated,
        }),
        (false, false) => Err(format!(
            "An IN list of a SQL filter holds either strings or numbers, not both: `{}`.",
            snippet(expr)
        )),
        (true, true) => Err(format!(
            "An IN list of a SQL filter cannot be empty: `{}`.",
            snippet(expr)
        )),
    }
}

/// The field tested by `IS NULL`, `IN` or `BETWEEN`.
fn field_of(expr: &Expr, construct: &str) -> Result<Field, String> {
    match operand(expr)? {
        Operand::Field(field) => Ok(field),
        Operand::Str(_) | Operand::Num(_) => Err(format!(
            "{construct} in a SQL filter applies to a property or TAGS, not to `{}`.",
            snippet(expr)
        )),
    }
}

fn number_bound(bound: &Expr, whole: &Expr) -> Result<f64, String> {
    match operand(bound)? {
        Operand::Num(value) => Ok(value),
        Operand::Str(_) | Operand::Field(_) => Err(format!(
            "BETWEEN in a SQL filter takes numeric literals as bounds: `{}`.",
            snippet(whole)
        )),
    }
}

/// Compiles a value position: a property, `TAGS`, a string or a number.
fn operand(expr: &Expr) -> Result<Operand, String> {
    match expr {
        Expr::Nested(inner) => operand(inner),
        Expr::Identifier(ident) => Ok(Operand::Field(field_named(&ident.value))),
        Expr::CompoundIdentifier(parts) => Ok(Operand::Field(field_named(&dotted(parts)))),
        Expr::Value(literal) => match &literal.value {
            Value::SingleQuotedString(text) => Ok(Operand::Str(text.as_str().into())),
            Value::Number(text, _) => number_literal(text, false, expr).map(Operand::Num),
            Value::Null => Err(format!(
                "A SQL filter cannot compare with NULL (that is always UNKNOWN): `{}`; \
                 use IS NULL or IS NOT NULL.",
                snippet(expr)
            )),
            Value::Boolean(_) => Err(format!(
                "TRUE and FALSE stand alone as conditions in a SQL filter; \
                 they cannot be compared or listed: `{}`.",
                snippet(expr)
            )),
            _ => Err(format!(
                "This kind of literal is not supported in a SQL filter: `{}`; \
                 use 'single-quoted' strings and plain numbers.",
                snippet(expr)
            )),
        },
        Expr::UnaryOp {
            op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
            expr: inner,
        } => match inner.as_ref() {
            Expr::Value(literal) => match &literal.value {
                Value::Number(text, _) => {
                    number_literal(text, *op == UnaryOperator::Minus, expr).map(Operand::Num)
                }
                _ => Err(unsupported(expr)),
            },
            _ => Err(unsupported(expr)),
        },
        _ => Err(unsupported(expr)),
    }
}

/// `TAGS` is the tag only in exactly that spelling, as in RocketMQ.
fn field_named(name: &str) -> Field {
    if name == TAGS {
        Field::Tag
    } else {
        Field::Property(name.into())
    }
}

/// `a.b.c` names the property `"a.b.c"`: RocketMQ has no qualified names.
fn dotted(parts: &[Ident]) -> String {
    let names: Vec<&str> = parts.iter().map(|part| part.value.as_str()).collect();
    names.join(".")
}

fn number_literal(text: &str, negative: bool, expr: &Expr) -> Result<f64, String> {
    match parse_number(text) {
        Some(value) if negative => Ok(-value),
        Some(value) => Ok(value),
        None => Err(format!(
            "The number `{}` in a SQL filter is not a finite number.",
            snippet(expr)
        )),
    }
}

fn unsupported_operator(op: &BinaryOperator, expr: &Expr) -> String {
    let what = match op {
        BinaryOperator::Plus
        | BinaryOperator::Minus
        | BinaryOperator::Multiply
        | BinaryOperator::Divide
        | BinaryOperator::Modulo => "Arithmetic is".to_owned(),
        _ => format!("The operator `{op}` is"),
    };
    format!("{what} not supported in a SQL filter: `{}`.", snippet(expr))
}

/// The error for a construct outside the supported SQL92 subset, named by kind.
fn unsupported(expr: &Expr) -> String {
    let what = match expr {
        Expr::Function(_) => "Functions are",
        Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. } => "Subqueries are",
        Expr::Like { .. } | Expr::ILike { .. } | Expr::SimilarTo { .. } | Expr::RLike { .. } => {
            "LIKE and other pattern matches are"
        }
        Expr::Case { .. } => "CASE is",
        Expr::Cast { .. } | Expr::Convert { .. } | Expr::TypedString(_) => "Casts are",
        Expr::BinaryOp { .. } | Expr::UnaryOp { .. } => "Arithmetic and this operator are",
        Expr::IsTrue(_)
        | Expr::IsNotTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotFalse(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotUnknown(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..) => "IS tests other than IS [NOT] NULL are",
        _ => "Such expressions are",
    };
    format!("{what} not supported in a SQL filter: `{}`.", snippet(expr))
}

#[cfg(test)]
#[path = "sql_filter_tests.rs"]
mod tests;
