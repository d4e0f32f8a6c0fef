//! `evidence`: the operator's side of the filter's evidence records (README
//! "Evidence"). `serve` receives them as OTLP/HTTP JSON logs into a SQLite
//! file; `list` and `show` read that file.
//!
//! - `record`: the record and the OTLP request that carries it, parsed and
//!   validated;
//! - `store`: the SQLite file, bounded;
//! - `serve`: the HTTP receiver;
//! - `view`: `list` and `show` output.

pub mod record;
pub mod serve;
pub mod store;
pub mod view;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::cli::{EvidenceArgs, EvidenceCommand, EvidenceListArgs, EvidenceServeArgs, EvidenceShowArgs};
use crate::error::{Error, Kind};
use crate::{Printed, Run};

pub fn run(args: &EvidenceArgs) -> Run {
    match &args.command {
        EvidenceCommand::Serve(args) => serve(args),
        EvidenceCommand::List(args) => list(args).map(|p| (p, None)),
        EvidenceCommand::Show(args) => show(args).map(|p| (p, None)),
    }
}

fn serve(args: &EvidenceServeArgs) -> Run {
    let settings = serve::Settings {
        listen: args.listen,
        max_body_bytes: args.max_body_bytes,
        limits: record::Limits {
            records: args.max_records_per_request,
        },
        max_records: args.max_records,
    };
    let db = args.db.display().to_string();
    // Said once the signals are handled and the address bound: a SIGINT
    // right after the first line must stop it cleanly, not kill it.
    let totals = serve::serve_until_signal(&args.db, &settings, |bound| {
        if !args.listen.ip().is_loopback() {
            eprintln!(
                "evidence serve: warning: listening on {}, not loopback: records describe clients' requests; anyone who reaches this address can add records",
                args.listen
            );
        }
        eprintln!(
            "evidence serve: listening on http://{bound}{}, storing into {db} (at most {} records; bodies up to {} bytes, {} records each)",
            serve::LOGS_PATH,
            settings.max_records,
            settings.max_body_bytes,
            settings.limits.records
        );
    })
    .map_err(Error::io)?;
    Ok((
        Printed {
            lines: vec![format!(
                "evidence serve: stopped; {} requests, {} records stored, {} requests refused, {} old records pruned",
                totals.requests, totals.stored, totals.refused, totals.pruned
            )],
            json: json!({
                "db": db,
                "requests": totals.requests,
                "stored": totals.stored,
                "refused": totals.refused,
                "pruned": totals.pruned,
            }),
        },
        None,
    ))
}

fn open(db: &Path) -> Result<store::Store, Error> {
    store::Store::read(db).map_err(Error::io)
}

fn list(args: &EvidenceListArgs) -> Result<Printed, Error> {
    let store = open(&args.db)?;
    let since_unix_nano = args.since.map(|since| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        i64::try_from(now.saturating_sub(since.as_nanos())).unwrap_or(i64::MAX)
    });
    let shown = store
        .list(&store::Query {
            operations: &args.operations,
            since_unix_nano,
            limit: args.limit,
        })
        .map_err(Error::io)?;
    let counts = store.counts().map_err(Error::io)?;
    let label = args.db.display().to_string();
    Ok(Printed {
        lines: view::list_lines(&label, counts, &shown),
        json: view::list_json(&label, counts, &shown),
    })
}

fn show(args: &EvidenceShowArgs) -> Result<Printed, Error> {
    let store = open(&args.db)?;
    let label = args.db.display();
    let found = if !args.record.is_empty() && args.record.bytes().all(|b| b.is_ascii_digit()) {
        let id: i64 = args
            .record
            .parse()
            .map_err(|_| Error::io(format!("{}: not a record id", args.record)))?;
        store
            .get(id)
            .map_err(Error::io)?
            .ok_or_else(|| Error::io(format!("{label}: no record {id}")))?
    } else {
        let operations = [args.record.clone()];
        store
            .list(&store::Query {
                operations: &operations,
                since_unix_nano: None,
                limit: 1,
            })
            .map_err(Error::io)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::new(
                    Kind::UnknownOperation,
                    format!("{label}: no record of operation {:?}", args.record),
                )
            })?
    };
    Ok(Printed {
        lines: view::show_lines(&found),
        json: view::show_json(&found),
    })
}
