//! What every batch operation checks first, as AWS does: 1-10 entries
//! (EmptyBatchRequest, TooManyEntriesInBatchRequest), each `Id` 1-80 of
//! `[A-Za-z0-9_-]` (InvalidBatchEntryId) and distinct
//! (BatchEntryIdsNotDistinct). These fail the whole call; an entry's own
//! problems fail only that entry (`Failed` of the answer).

use std::collections::HashSet;

use serde_json::{Value, json};

use super::protocol::SqsError;

/// Most entries in one batch.
pub const MAX_ENTRIES: usize = 10;

/// Checks the entries' ids.
pub fn check_ids<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> Result<(), SqsError> {
    if ids.len() == 0 {
        return Err(SqsError::empty_batch());
    }
    if ids.len() > MAX_ENTRIES {
        return Err(SqsError::too_many_entries(MAX_ENTRIES));
    }
    let mut seen = HashSet::new();
    for id in ids {
        let ok = !id.is_empty()
            && id.len() <= 80
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(SqsError::invalid_batch_id(id));
        }
        if !seen.insert(id) {
            return Err(SqsError::ids_not_distinct(id));
        }
    }
    Ok(())
}

/// A batch answer from per-entry outcomes, in request order.
pub fn answer(outcomes: Vec<(String, Result<Value, SqsError>)>) -> Value {
    let mut successful = Vec::new();
    let mut failed = Vec::new();
    for (id, outcome) in outcomes {
        match outcome {
            Ok(mut v) => {
                v["Id"] = Value::String(id);
                successful.push(v);
            }
            Err(e) => failed.push(e.entry(&id)),
        }
    }
    json!({ "Successful": successful, "Failed": failed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_checked_as_aws_does() {
        let code = |ids: &[&str]| check_ids(ids.iter().copied()).err().map(|e| e.code);
        assert_eq!(code(&["a", "b-1", "C_2"]), None);
        assert_eq!(code(&[]), Some("AWS.SimpleQueueService.EmptyBatchRequest"));
        let eleven: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
        assert_eq!(
            code(&eleven),
            Some("AWS.SimpleQueueService.TooManyEntriesInBatchRequest")
        );
        assert_eq!(
            code(&["a", "a"]),
            Some("AWS.SimpleQueueService.BatchEntryIdsNotDistinct")
        );
        assert_eq!(
            code(&["a b"]),
            Some("AWS.SimpleQueueService.InvalidBatchEntryId")
        );
        assert_eq!(
            code(&[""]),
            Some("AWS.SimpleQueueService.InvalidBatchEntryId")
        );
    }

    #[test]
    fn answers_split_successes_and_failures() {
        let v = answer(vec![
            ("1".into(), Ok(json!({"MessageId": "m"}))),
            ("2".into(), Err(SqsError::invalid_parameter("bad"))),
        ]);
        assert_eq!(v["Successful"][0]["Id"], "1");
        assert_eq!(v["Failed"][0]["Id"], "2");
        assert_eq!(v["Failed"][0]["SenderFault"], true);
        assert_eq!(v["Failed"][0]["Code"], "InvalidParameterValue");
    }
}
