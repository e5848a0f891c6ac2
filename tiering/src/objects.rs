//! Small operations over many objects.

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;

use crate::error::{Result, TieringError};

/// Deletes every object under `prefix`. Deleting is idempotent: an object
/// already gone is fine, so a retry after a partial failure finishes the job.
pub async fn delete_prefix(store: &dyn ObjectStore, prefix: &Path) -> Result<()> {
    let objects: Vec<_> = store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|e| TieringError::store(format!("listing {prefix}"), e))?;
    for meta in objects {
        match store.delete(&meta.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                return Err(TieringError::store(
                    format!("deleting {}", meta.location),
                    e,
                ));
            }
        }
    }
    Ok(())
}
