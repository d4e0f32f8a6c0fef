//! The evidence database: one SQLite file, one table of records.
//!
//! Schema (created when absent; `user_version` 1):
//! - `records(id INTEGER PRIMARY KEY AUTOINCREMENT, received_unix_ms,
//!   time_unix_nano, operation, revision, request_id, event, outcome,
//!   record)`: the columns a query selects on, indexed (`operation` with
//!   time, time alone, `revision`), and `record`, the whole record as JSON
//!   (the [`Record`] serialisation, which `evidence show -o json` prints).
//!   Fields live inside that JSON: they are read with their record, never
//!   queried alone, so a child table would only add joins.
//! - `meta(key PRIMARY KEY, value)`: `pruned`, the records deleted to keep
//!   the bound.
//!
//! Bounded by a record count: past `max_records` the oldest (lowest id) are
//! deleted in the same transaction as the insert, and counted in `pruned`.
//! A request's records are stored in one transaction: all or none.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::record::Record;

pub struct Store {
    connection: Connection,
    max_records: u64,
}

/// One stored record with its row id.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: i64,
    pub received_unix_ms: i64,
    pub record: Record,
}

/// What a `list` asks for.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    pub operations: &'a [String],
    /// Records whose `time_unix_nano` is at least this.
    pub since_unix_nano: Option<i64>,
    /// At most this many, newest first (0: all).
    pub limit: usize,
}

/// How many records the file holds, and how many were pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub records: u64,
    pub pruned: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_unix_ms INTEGER NOT NULL,
    time_unix_nano INTEGER NOT NULL,
    operation TEXT NOT NULL,
    revision TEXT NOT NULL,
    request_id TEXT NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_operation_time ON records(operation, time_unix_nano);
CREATE INDEX IF NOT EXISTS records_time ON records(time_unix_nano);
CREATE INDEX IF NOT EXISTS records_revision ON records(revision);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
PRAGMA user_version = 1;
";

/// A wait on a locked file (a `list` reading while `serve` writes) before
/// giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> String + '_ {
    move |err| format!("{}: {err}", path.display())
}

impl Store {
    /// Opens (creating when absent) the database for writing.
    pub fn open(path: &Path, max_records: u64) -> Result<Store, String> {
        let at = sql(path);
        let connection = Connection::open(path).map_err(&at)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(&at)?;
        // WAL: readers (`list`, `show`, `suggest`) do not block the receiver.
        connection
            .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(&at)?;
        // In WAL mode NORMAL still never corrupts the file; a power cut may
        // lose the last transactions, which is fine for a sample. FULL (an
        // fsync per request) made a 10-record request take 17 ms.
        connection.execute_batch("PRAGMA synchronous = NORMAL").map_err(&at)?;
        connection.execute_batch(SCHEMA).map_err(&at)?;
        Ok(Store {
            connection,
            max_records,
        })
    }

    /// Opens an existing database for reading; a missing file is an error
    /// (not a new empty database).
    pub fn read(path: &Path) -> Result<Store, String> {
        if !path.exists() {
            return Err(format!("{}: no such file (see `evidence serve --db`)", path.display()));
        }
        let at = sql(path);
        let connection = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(&at)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(&at)?;
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(&at)?;
        if version != 1 {
            return Err(format!(
                "{}: not an evidence database (schema version {version}, expected 1)",
                path.display()
            ));
        }
        Ok(Store {
            connection,
            max_records: u64::MAX,
        })
    }

    /// Stores every record, or none; prunes the oldest past the bound.
    /// Returns how many were pruned.
    pub fn insert(&mut self, records: &[Record], received_unix_ms: i64) -> Result<u64, String> {
        let err = |e: rusqlite::Error| e.to_string();
        let transaction = self.connection.transaction().map_err(err)?;
        {
            let mut statement = transaction
                .prepare_cached(
                    "INSERT INTO records (received_unix_ms, time_unix_nano, operation, revision, request_id, event, outcome, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(err)?;
            for record in records {
                let json = serde_json::to_string(record).map_err(|e| e.to_string())?;
                statement
                    .execute(params![
                        received_unix_ms,
                        record.time_unix_nano,
                        record.operation,
                        record.revision,
                        record.request_id,
                        record.event,
                        record.outcome,
                        json
                    ])
                    .map_err(err)?;
            }
        }
        // Everything older than the newest `max_records`: found through the
        // primary key, so an insert costs the same with 10 or 100,000 rows.
        let keep = i64::try_from(self.max_records).unwrap_or(i64::MAX);
        let excess = transaction
            .execute(
                "DELETE FROM records WHERE id <= (SELECT id FROM records ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                params![keep],
            )
            .map_err(err)? as u64;
        if excess > 0 {
            transaction
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('pruned', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
                    params![i64::try_from(excess).unwrap_or(i64::MAX)],
                )
                .map_err(err)?;
        }
        transaction.commit().map_err(err)?;
        Ok(excess)
    }

    pub fn counts(&self) -> Result<Counts, String> {
        let err = |e: rusqlite::Error| e.to_string();
        let records: i64 = self
            .connection
            .query_row("SELECT COUNT(*) FROM records", [], |row| row.get(0))
            .map_err(err)?;
        let pruned: Option<i64> = self
            .connection
            .query_row("SELECT value FROM meta WHERE key = 'pruned'", [], |row| row.get(0))
            .optional()
            .map_err(err)?;
        Ok(Counts {
            records: u64::try_from(records).unwrap_or(0),
            pruned: pruned.and_then(|p| u64::try_from(p).ok()).unwrap_or(0),
        })
    }

    /// Records, newest first.
    pub fn list(&self, query: &Query) -> Result<Vec<Stored>, String> {
        let mut sql = String::from("SELECT id, received_unix_ms, record FROM records WHERE 1 = 1");
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        if !query.operations.is_empty() {
            let marks = vec!["?"; query.operations.len()].join(", ");
            sql.push_str(&format!(" AND operation IN ({marks})"));
            values.extend(
                query
                    .operations
                    .iter()
                    .map(|op| rusqlite::types::Value::Text(op.clone())),
            );
        }
        if let Some(since) = query.since_unix_nano {
            sql.push_str(" AND time_unix_nano >= ?");
            values.push(rusqlite::types::Value::Integer(since));
        }
        sql.push_str(" ORDER BY time_unix_nano DESC, id DESC");
        if query.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", query.limit));
        }
        self.select(&sql, rusqlite::params_from_iter(values))
    }

    /// The record with this id.
    pub fn get(&self, id: i64) -> Result<Option<Stored>, String> {
        let found = self.select(
            "SELECT id, received_unix_ms, record FROM records WHERE id = ?1",
            params![id],
        )?;
        Ok(found.into_iter().next())
    }

    fn select(&self, sql: &str, values: impl rusqlite::Params) -> Result<Vec<Stored>, String> {
        let err = |e: rusqlite::Error| e.to_string();
        let mut statement = self.connection.prepare(sql).map_err(err)?;
        let rows = statement
            .query_map(values, |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?))
            })
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, received_unix_ms, json) = row.map_err(err)?;
            let record: Record = serde_json::from_str(&json).map_err(|e| format!("record {id}: unreadable: {e}"))?;
            out.push(Stored {
                id,
                received_unix_ms,
                record,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn record(operation: &str, time: i64) -> Record {
        Record {
            time_unix_nano: time,
            event: "parallel_run.unmatched".into(),
            operation: operation.into(),
            revision: "r1".into(),
            request_id: format!("req-{time}"),
            outcome: "unmatched".into(),
            ..Record::default()
        }
    }

    #[test]
    fn records_are_stored_listed_newest_first_and_read_back() {
        let dir = TempDir::new("store");
        let path = dir.path.join("e.db");
        let mut store = Store::open(&path, 100).unwrap();
        store
            .insert(
                &[
                    record("getReturn", 10),
                    record("listReturns", 20),
                    record("getReturn", 30),
                ],
                5,
            )
            .unwrap();
        let reader = Store::read(&path).unwrap();
        let all = reader.list(&Query::default()).unwrap();
        let times: Vec<i64> = all.iter().map(|s| s.record.time_unix_nano).collect();
        assert_eq!(times, [30, 20, 10]);
        let ops = ["getReturn".to_string()];
        let some = reader
            .list(&Query {
                operations: &ops,
                since_unix_nano: Some(15),
                limit: 0,
            })
            .unwrap();
        assert_eq!(some.len(), 1);
        assert_eq!(some[0].record, record("getReturn", 30));
        let one = reader
            .list(&Query {
                limit: 1,
                ..Query::default()
            })
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(reader.get(one[0].id).unwrap().unwrap().record.time_unix_nano, 30);
        assert_eq!(reader.get(999).unwrap(), None);
        assert_eq!(reader.counts().unwrap(), Counts { records: 3, pruned: 0 });
    }

    #[test]
    fn the_oldest_are_pruned_and_counted() {
        let dir = TempDir::new("prune");
        let path = dir.path.join("e.db");
        let mut store = Store::open(&path, 3).unwrap();
        store.insert(&[record("a", 1), record("a", 2)], 0).unwrap();
        let pruned = store
            .insert(&[record("a", 3), record("a", 4), record("a", 5)], 0)
            .unwrap();
        assert_eq!(pruned, 2);
        assert_eq!(store.counts().unwrap(), Counts { records: 3, pruned: 2 });
        let times: Vec<i64> = store
            .list(&Query::default())
            .unwrap()
            .iter()
            .map(|s| s.record.time_unix_nano)
            .collect();
        assert_eq!(times, [5, 4, 3]);
        // Reopened, the count of pruned records survives.
        drop(store);
        let mut store = Store::open(&path, 3).unwrap();
        store.insert(&[record("a", 6)], 0).unwrap();
        assert_eq!(store.counts().unwrap(), Counts { records: 3, pruned: 3 });
    }

    #[test]
    fn reading_needs_an_evidence_database() {
        let dir = TempDir::new("read");
        let err = Store::read(&dir.path.join("missing.db")).err().unwrap();
        assert!(err.ends_with("no such file (see `evidence serve --db`)"), "{err}");
        let other = dir.path.join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let err = Store::read(&other).err().unwrap();
        assert!(err.contains("not an evidence database"), "{err}");
    }
}
