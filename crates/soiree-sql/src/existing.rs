//! Opening a store that must already exist (`create_missing(false)`,
//! `read_only`): its tables and its group are checked, not created, and
//! the errors name what exists instead.

use crate::{Error, Result};

/// Groups listed in an error, at most.
pub(crate) const LISTED_GROUPS: usize = 100;

/// Whether the database said a table (or, on PostgreSQL, its schema) does
/// not exist.
pub(crate) fn is_missing_table(err: &sqlx::Error) -> bool {
    let Some(db) = err.as_database_error() else {
        return false;
    };
    // PostgreSQL: undefined_table, invalid_schema_name.
    matches!(db.code().as_deref(), Some("42P01" | "3F000"))
        || db.message().starts_with("no such table")
}

/// Checks the result of reading the store's groups (`groups`, sorted, at
/// most [`LISTED_GROUPS`] + 1): `group` must be one of them. `not_a_store`
/// says what is missing when the cursor table does not exist.
pub(crate) fn check_group(
    groups: std::result::Result<Vec<String>, sqlx::Error>,
    group: &str,
    not_a_store: impl FnOnce() -> Error,
) -> Result<()> {
    match groups {
        Ok(groups) if groups.iter().any(|name| name == group) => Ok(()),
        Ok(mut groups) => {
            groups.truncate(LISTED_GROUPS);
            Err(Error::NoSuchGroup {
                group: group.to_owned(),
                groups,
            })
        }
        Err(err) if is_missing_table(&err) => Err(not_a_store()),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_group_names_the_groups_that_exist() {
        let groups = Ok(vec!["a".to_owned(), "b\u{1b}[2J".to_owned()]);
        let err = check_group(groups, "typo", || unreachable!()).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"no consumer group "typo"; groups: "a", "b\u{1b}[2J""#
        );
        let err = check_group(Ok(Vec::new()), "x", || unreachable!()).unwrap_err();
        assert_eq!(err.to_string(), r#"no consumer group "x"; groups: none"#);
        assert!(check_group(Ok(vec!["x".to_owned()]), "x", || unreachable!()).is_ok());
    }
}
