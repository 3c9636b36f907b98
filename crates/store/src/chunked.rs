//! Multi-row statements, cut to fit both databases' limits on bound parameters: SQLite allows
//! 32,766 per statement and PostgreSQL 65,535, so a statement of `n`-column rows takes at most
//! 32,766 / n rows (and never more than 1,000, to keep statements and their plans small).
//! Every multi-row insert and every `IN (...)` list of the store goes through here.

use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Iterable};

use crate::StoreError;

/// SQLite's limit, the lower of the two.
const MAX_BIND_PARAMETERS: usize = 32_766;
const MAX_ROWS: usize = 1000;

/// How many rows of `columns` bound values one statement may carry.
pub(crate) fn rows_per_statement(columns: usize) -> usize {
    (MAX_BIND_PARAMETERS / columns.max(1)).clamp(1, MAX_ROWS)
}

/// The columns of an entity's table: an upper bound on the values a row binds.
pub(crate) fn columns<E: EntityTrait>() -> usize {
    E::Column::iter().count()
}

/// `items` in chunks of at most `rows_per_statement(columns)`; never an empty chunk.
pub(crate) fn chunks<T>(columns: usize, items: impl IntoIterator<Item = T>) -> impl Iterator<Item = Vec<T>> {
    let size = rows_per_statement(columns);
    let mut items = items.into_iter();
    std::iter::from_fn(move || {
        let chunk: Vec<T> = items.by_ref().take(size).collect();
        (!chunk.is_empty()).then_some(chunk)
    })
}

/// Inserts every row, in as few statements as the limits allow.
pub(crate) async fn insert_all<A>(
    db: &impl ConnectionTrait,
    rows: impl IntoIterator<Item = A>,
) -> Result<(), StoreError>
where
    A: ActiveModelTrait + Send,
{
    for chunk in chunks(columns::<A::Entity>(), rows) {
        <A::Entity as EntityTrait>::insert_many(chunk).exec_without_returning(db).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_rows_take_fewer_rows_per_statement() {
        assert_eq!(rows_per_statement(1), 1000);
        assert_eq!(rows_per_statement(40), 819);
        assert!(rows_per_statement(17) * 17 <= MAX_BIND_PARAMETERS);
        let sizes: Vec<usize> = chunks(40, 0..2000).map(|c| c.len()).collect();
        assert_eq!(sizes, [819, 819, 362]);
        assert_eq!(chunks(3, std::iter::empty::<u8>()).count(), 0);
    }
}
