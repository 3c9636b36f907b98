//! The leader side of `Subscribe`: every signed event after the follower's cursors, origin by
//! origin in sequence order, then a caught-up marker, then live events as they are written,
//! with heartbeats while nothing happens. A follower starting from nothing, from another epoch
//! of a log, or from behind a compacted log's holes gets a snapshot first: the latest events
//! of each site, between `SnapshotStart` and `SnapshotEnd`. The stream's buffer is bounded: a
//! slow follower
//! slows the reader, it does not grow the leader's memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hubdir_node::status;
use hubdir_proto::convert;
use hubdir_proto::v1::subscribe_response::Message;
use hubdir_proto::v1::{
    CaughtUp, Cursor, Heartbeat, SignedEvent, SnapshotEnd, SnapshotStart, SubscribeRequest, SubscribeResponse,
};
use hubdir_store::{ChangeEvent, OriginLog, SignedBytes, Store, StoreError};
use tokio::sync::mpsc;
use tonic::Status;

/// Messages buffered per stream.
pub const STREAM_BUFFER: usize = 256;
/// Events read from the log at a time.
const EVENTS_PER_READ: u64 = 1000;
/// How often the log is polled for new events once caught up.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// A heartbeat after this long without an event.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

type Sender = mpsc::Sender<Result<SubscribeResponse, Status>>;

/// Where the follower is in each origin it wants.
struct Position {
    seq: u64,
    epoch: String,
}

/// Why a stream ended.
enum Ended {
    /// The follower went away: nothing to say.
    FollowerGone,
    /// The change log could not be read: the follower is told.
    Store(StoreError),
}

impl From<StoreError> for Ended {
    fn from(err: StoreError) -> Ended {
        Ended::Store(err)
    }
}

async fn send(tx: &Sender, message: Message) -> Result<(), Ended> {
    tx.send(Ok(SubscribeResponse { message: Some(message) })).await.map_err(|_| Ended::FollowerGone)
}

/// Sends everything after the positions that exists now; whether anything was sent.
async fn send_new(
    store: &Store,
    wanted: &[String],
    positions: &mut HashMap<String, Position>,
    tx: &Sender,
) -> Result<bool, Ended> {
    let mut sent = false;
    for log in store.origin_logs().await? {
        let name = log.origin.to_string();
        if !wanted.is_empty() && !wanted.contains(&name) {
            continue;
        }
        let position = positions.entry(name.clone()).or_insert(Position { seq: 0, epoch: log.epoch.clone() });
        if position.epoch != log.epoch {
            // The follower's cursor belongs to another incarnation of this log: start over.
            tracing::info!(origin = %name, "follower cursor from another epoch; sending a snapshot");
            *position = Position { seq: 0, epoch: log.epoch.clone() };
        }
        if position.seq < log.last_seq && (position.seq == 0 || position.seq < log.compacted_through) {
            // A follower starting out, or behind the holes of a compacted log: the latest
            // events of each site say everything, in fewer events.
            sent |= send_snapshot(store, &log, position, tx).await?;
        }
        while position.seq < log.last_seq {
            let events = store.changes_after(&log.origin, position.seq, EVENTS_PER_READ).await?;
            let Some(end) = events.last().map(|e| e.seq) else { break };
            for event in events {
                sent |= send_event(tx, &name, event).await?;
            }
            position.seq = end;
        }
    }
    Ok(sent)
}

/// A snapshot of the origin at its last seq, from the follower's position on.
async fn send_snapshot(store: &Store, log: &OriginLog, position: &mut Position, tx: &Sender) -> Result<bool, Ended> {
    let origin = log.origin.to_string();
    let through = log.last_seq;
    tracing::info!(%origin, from = position.seq, through, "sending a snapshot");
    let start = SnapshotStart { origin: origin.clone(), seq: through, epoch: log.epoch.clone() };
    send(tx, Message::SnapshotStart(start)).await?;
    let mut after = position.seq;
    loop {
        let events = store.snapshot_after(&log.origin, after, through, EVENTS_PER_READ).await?;
        let Some(end) = events.last().map(|e| e.seq) else { break };
        for event in events {
            send_event(tx, &origin, event).await?;
        }
        after = end;
    }
    send(tx, Message::SnapshotEnd(SnapshotEnd { origin, seq: through })).await?;
    position.seq = through;
    Ok(true)
}

/// Sends one event as its origin signed it; whether it was sent.
async fn send_event(tx: &Sender, origin: &str, event: ChangeEvent) -> Result<bool, Ended> {
    match event.signed {
        Some(SignedBytes { bytes, key_id, signature }) => {
            send(tx, Message::Event(SignedEvent { event: bytes, key_id, signature })).await?;
            Ok(true)
        }
        // Written without the node key (by a tool opening the database directly): no peer
        // could verify it, so it is not sent.
        None => {
            tracing::warn!(%origin, seq = event.seq, "unsigned event not sent to peers");
            Ok(false)
        }
    }
}

fn cursors(positions: &HashMap<String, Position>) -> Vec<Cursor> {
    let mut cursors: Vec<Cursor> = positions
        .iter()
        .map(|(origin, p)| Cursor { origin: origin.clone(), seq: p.seq, epoch: p.epoch.clone() })
        .collect();
    cursors.sort_by(|a, b| a.origin.cmp(&b.origin));
    cursors
}

/// Runs one follower's stream until it goes away.
pub async fn run(store: Arc<Store>, request: SubscribeRequest, tx: Sender) {
    if let Err(Ended::Store(err)) = stream(&store, request, &tx).await {
        let _ = tx.send(Err(status::from_store(err))).await;
    }
}

async fn stream(store: &Store, request: SubscribeRequest, tx: &Sender) -> Result<(), Ended> {
    let SubscribeRequest { cursors: from, origins: wanted } = request;
    let mut positions: HashMap<String, Position> =
        from.into_iter().map(|c| (c.origin, Position { seq: c.seq, epoch: c.epoch })).collect();
    let mut changes = store.watch_changes();
    send_new(store, &wanted, &mut positions, tx).await?;
    send(tx, Message::CaughtUp(CaughtUp { cursors: cursors(&positions) })).await?;
    let mut last_sent = tokio::time::Instant::now();
    loop {
        // This process's commits wake the stream at once; another process's (several
        // processes on one PostgreSQL) are seen at the next poll.
        let _ = tokio::time::timeout(POLL_INTERVAL, changes.changed()).await;
        let sent = send_new(store, &wanted, &mut positions, tx).await?;
        if sent {
            last_sent = tokio::time::Instant::now();
        } else if last_sent.elapsed() >= HEARTBEAT_INTERVAL {
            last_sent = tokio::time::Instant::now();
            send(tx, Message::Heartbeat(Heartbeat { time: Some(convert::timestamp(chrono::Utc::now())) })).await?;
        }
    }
}
