//! The Iceberg SQL catalog, on SQLite: the tables `iceberg_tables` and
//! `iceberg_namespace_properties` that the Iceberg JDBC catalog (Spark, Trino, Flink) and
//! pyiceberg's `SqlCatalog` read, so engines find each Iceberg view by name without a catalog
//! server. A product is the namespace `<domain>.<name>`, a view its table.
//!
//! The catalog follows the tables: each commit writes the table's next metadata file
//! create-only in the store (the commit itself), then points the table's row at it. A pointer
//! only moves forward (to a higher metadata number), so a worker that lost a product to another
//! never moves it back; after a crash between the two steps, the next commit or the table's
//! reopening moves it on.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::sync::OnceCell;

use super::super::{Error, Result};

/// How long a statement waits for another writer of the catalog file (another product's
/// commit, another worker sharing the file).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The tables of the Iceberg SQL catalog (schema version 1, as the JDBC catalog creates them).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS iceberg_tables (
    catalog_name VARCHAR(255) NOT NULL,
    table_namespace VARCHAR(255) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    metadata_location VARCHAR(1000),
    previous_metadata_location VARCHAR(1000),
    iceberg_type VARCHAR(5),
    PRIMARY KEY (catalog_name, table_namespace, table_name)
);
CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
    catalog_name VARCHAR(255) NOT NULL,
    namespace VARCHAR(255) NOT NULL,
    property_key VARCHAR(255) NOT NULL,
    property_value VARCHAR(1000),
    PRIMARY KEY (catalog_name, namespace, property_key)
);
";

/// An Iceberg SQL catalog in an SQLite file, opened (and its tables created) at first use.
#[derive(Debug, Clone)]
pub struct SqlCatalog {
    path: PathBuf,
    name: String,
    db: Arc<OnceCell<libsql::Database>>,
}

impl SqlCatalog {
    /// The catalog `name` (its `catalog_name` rows: the name engines give the catalog) in the
    /// SQLite file at `path`.
    pub fn new(path: impl Into<PathBuf>, name: &str) -> Self {
        Self {
            path: path.into(),
            name: name.to_owned(),
            db: Arc::new(OnceCell::new()),
        }
    }

    /// The catalog's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, what: &str) -> impl FnOnce(libsql::Error) -> Error + '_ {
        let what = format!("{what} in the Iceberg SQL catalog {}", self.path.display());
        move |source| Error::Store {
            what,
            source: Box::new(source),
        }
    }

    async fn connect(&self) -> Result<libsql::Connection> {
        let db = self
            .db
            .get_or_try_init(|| async {
                if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| Error::Store {
                        what: format!("creating {}", dir.display()),
                        source: Box::new(e),
                    })?;
                }
                let db = libsql::Builder::new_local(&self.path)
                    .build()
                    .await
                    .map_err(self.error("opening"))?;
                let connection = db.connect().map_err(self.error("connecting"))?;
                connection
                    .busy_timeout(BUSY_TIMEOUT)
                    .map_err(self.error("setting the busy timeout"))?;
                connection
                    .execute_batch(SCHEMA)
                    .await
                    .map_err(self.error("creating the tables"))?;
                Ok::<_, Error>(db)
            })
            .await?;
        let connection = db.connect().map_err(self.error("connecting"))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(self.error("setting the busy timeout"))?;
        Ok(connection)
    }

    /// The metadata location the catalog holds for `table` of `namespace`.
    async fn location_on(
        &self,
        connection: &libsql::Connection,
        namespace: &str,
        table: &str,
    ) -> Result<Option<String>> {
        let mut rows = connection
            .query(
                "SELECT metadata_location FROM iceberg_tables \
                 WHERE catalog_name = ?1 AND table_namespace = ?2 AND table_name = ?3",
                [self.name.as_str(), namespace, table],
            )
            .await
            .map_err(self.error("reading a table"))?;
        match rows.next().await.map_err(self.error("reading a table"))? {
            Some(row) => row
                .get::<Option<String>>(0)
                .map_err(self.error("reading a table")),
            None => Ok(None),
        }
    }

    /// Points `table` of `namespace` at the metadata file `location` (metadata number
    /// `number`), registering the namespace and the table if new, unless the catalog points at
    /// a newer metadata file of the table already.
    pub(crate) async fn point(
        &self,
        namespace: &str,
        table: &str,
        location: &str,
        number: u64,
    ) -> Result<()> {
        let connection = self.connect().await?;
        connection
            .execute(
                "INSERT OR IGNORE INTO iceberg_namespace_properties \
                 (catalog_name, namespace, property_key, property_value) \
                 VALUES (?1, ?2, 'exists', 'true')",
                [self.name.as_str(), namespace],
            )
            .await
            .map_err(self.error("registering a namespace"))?;
        loop {
            let current = self.location_on(&connection, namespace, table).await?;
            if current
                .as_deref()
                .and_then(metadata_number)
                .is_some_and(|n| n >= number)
            {
                return Ok(());
            }
            // moves the pointer only from the location just read: a concurrent move wins, and
            // is read again
            let changed =
                match &current {
                    None => connection
                        .execute(
                            "INSERT OR IGNORE INTO iceberg_tables (catalog_name, table_namespace, \
                         table_name, metadata_location, previous_metadata_location, iceberg_type) \
                         VALUES (?1, ?2, ?3, ?4, NULL, 'TABLE')",
                            [self.name.as_str(), namespace, table, location],
                        )
                        .await,
                    Some(old) => {
                        connection
                            .execute(
                                "UPDATE iceberg_tables SET metadata_location = ?4, \
                         previous_metadata_location = ?5 WHERE catalog_name = ?1 \
                         AND table_namespace = ?2 AND table_name = ?3 AND metadata_location = ?5",
                                [self.name.as_str(), namespace, table, location, old.as_str()],
                            )
                            .await
                    }
                }
                .map_err(self.error("committing a table"))?;
            if changed == 1 {
                return Ok(());
            }
        }
    }
}

/// The number `N` of a metadata file `…/v<N>.metadata.json`.
fn metadata_number(location: &str) -> Option<u64> {
    location
        .rsplit('/')
        .next()?
        .strip_prefix('v')?
        .strip_suffix(".metadata.json")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    impl SqlCatalog {
        pub(crate) async fn location(
            &self,
            namespace: &str,
            table: &str,
        ) -> Result<Option<String>> {
            self.location_on(&self.connect().await?, namespace, table)
                .await
        }
    }

    #[tokio::test]
    async fn a_table_is_registered_once_and_its_pointer_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqlCatalog::new(dir.path().join("catalog/iceberg.db"), "meshline");
        let at = |n: u64| format!("file:///s/player/play-events/plays/metadata/v{n}.metadata.json");
        assert_eq!(
            catalog
                .location("player.play-events", "plays")
                .await
                .unwrap(),
            None
        );
        catalog
            .point("player.play-events", "plays", &at(1), 1)
            .await
            .unwrap();
        catalog
            .point("player.play-events", "plays", &at(3), 3)
            .await
            .unwrap();
        // a worker that lost the product commits an older metadata file: the pointer stays
        catalog
            .point("player.play-events", "plays", &at(2), 2)
            .await
            .unwrap();
        assert_eq!(
            catalog
                .location("player.play-events", "plays")
                .await
                .unwrap(),
            Some(at(3))
        );
        // a second catalog over the same file (another worker) sees the same
        let other = SqlCatalog::new(catalog.path(), "meshline");
        assert_eq!(
            other.location("player.play-events", "plays").await.unwrap(),
            Some(at(3))
        );
        assert_eq!(
            SqlCatalog::new(catalog.path(), "another")
                .location("player.play-events", "plays")
                .await
                .unwrap(),
            None,
            "rows are per catalog name"
        );
        let connection = catalog.connect().await.unwrap();
        let mut rows = connection
            .query(
                "SELECT previous_metadata_location, iceberg_type FROM iceberg_tables",
                (),
            )
            .await
            .unwrap();
        let row = rows.next().await.unwrap().unwrap();
        assert_eq!(row.get::<String>(0).unwrap(), at(1));
        assert_eq!(row.get::<String>(1).unwrap(), "TABLE");
        let mut rows = connection
            .query(
                "SELECT namespace FROM iceberg_namespace_properties WHERE property_key = 'exists'",
                (),
            )
            .await
            .unwrap();
        let row = rows.next().await.unwrap().unwrap();
        assert_eq!(row.get::<String>(0).unwrap(), "player.play-events");
    }
}
