//! Schema migrations. Each migration names its tables and columns with local, frozen
//! `DeriveIden` enums, never with the live entities, so later entity changes cannot rewrite
//! history.
//!
//! Times are stored as microseconds since the Unix epoch (`BIGINT`): one representation that
//! orders and compares the same way on SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_search_keys::Migration),
            Box::new(m0003_connectivity_status::Migration),
            Box::new(m0004_signed_events::Migration),
            Box::new(m0005_log_horizon::Migration),
            Box::new(m0006_origin_sides::Migration),
            Box::new(m0007_lookup_keys::Migration),
            Box::new(m0008_population::Migration),
        ]
    }
}

/// Sets columns of every stored site from its body: `values` gives them for a site. Pages by
/// name, so an upgrade of a million sites holds one page in memory. The `sites` table, its
/// `name` and `body` columns are frozen here as in any migration.
async fn backfill_sites(
    m: &SchemaManager<'_>,
    values: impl Fn(&hubdir_core::Site) -> Vec<(DynIden, Expr)>,
) -> Result<(), DbErr> {
    use sea_orm::ConnectionTrait;
    let (table, name_column, body) = (Alias::new("sites"), Alias::new("name"), Alias::new("body"));
    let db = m.get_connection();
    let mut after = String::new();
    loop {
        let select = Query::select()
            .columns([name_column.clone(), body.clone()])
            .from(table.clone())
            .and_where(Expr::col(name_column.clone()).gt(after.clone()))
            .order_by(name_column.clone(), Order::Asc)
            .limit(m0002_search_keys::BACKFILL_PAGE)
            .to_owned();
        let rows = db.query_all(&select).await?;
        let Some(last) = rows.last() else { return Ok(()) };
        after = last.try_get("", "name")?;
        for row in rows {
            let name: String = row.try_get("", "name")?;
            let text: String = row.try_get("", "body")?;
            let site: hubdir_core::Site = serde_json::from_str(&text)
                .map_err(|e| DbErr::Migration(format!("site {name} has an unreadable body: {e}")))?;
            let update = Query::update()
                .table(table.clone())
                .values(values(&site))
                .and_where(Expr::col(name_column.clone()).eq(name))
                .to_owned();
            db.execute(&update).await?;
        }
    }
}

mod m0001_initial {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::*;

    // Recorded in existing databases as "migration" (the derive takes the file's name); later
    // migrations name themselves explicitly.
    #[derive(DeriveMigrationName, Debug)]
    pub struct Migration;

    #[derive(DeriveIden)]
    enum Sites {
        Table,
        Name,
        Origin,
        SiteId,
        DisplayName,
        Kind,
        Operator,
        CountryCode,
        Latitude,
        Longitude,
        H3Cell,
        Status,
        Body,
        Etag,
        UpdateTimeUs,
        OriginSeq,
    }

    #[derive(DeriveIden)]
    enum SiteServices {
        Table,
        SiteName,
        Service,
    }

    #[derive(DeriveIden)]
    enum ChangeLog {
        Table,
        Origin,
        Seq,
        SiteName,
        Op,
        Payload,
        EventTimeUs,
        KeyId,
        Signature,
    }

    #[derive(DeriveIden)]
    enum OriginSequences {
        Table,
        Origin,
        LastSeq,
        Epoch,
    }

    #[derive(DeriveIden)]
    enum ConnectivityLatest {
        Table,
        SiteName,
        Online,
        DownloadMbps,
        UploadMbps,
        LatencyMs,
        Technology,
        PublicWifiAccessPoints,
        PublicComputers,
        PowerBackup,
        Source,
        ObservedAtUs,
        ReceivedAtUs,
    }

    #[derive(DeriveIden)]
    enum ConnectivityHistory {
        Table,
        Id,
        SiteName,
        IdempotencyKey,
        Online,
        DownloadMbps,
        UploadMbps,
        LatencyMs,
        JitterMs,
        PacketLossRatio,
        Technology,
        Source,
        ObservedAtUs,
        ReceivedAtUs,
    }

    #[derive(DeriveIden)]
    enum Peers {
        Table,
        NodeId,
        Endpoint,
        PublicKey,
        AllowedOrigins,
        CreatedAtUs,
    }

    #[derive(DeriveIden)]
    enum PeerCursors {
        Table,
        PeerId,
        Origin,
        Seq,
        Epoch,
        UpdatedAtUs,
    }

    #[derive(DeriveIden)]
    enum NodeKeys {
        Table,
        KeyId,
        PublicKey,
        ValidFromUs,
        ValidUntilUs,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        /// All or nothing, on SQLite too: a crash mid-migration must not leave half a schema.
        fn use_transaction(&self) -> Option<bool> {
            Some(true)
        }

        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            m.create_table(
                Table::create()
                    .table(Sites::Table)
                    .col(string(Sites::Name).primary_key())
                    .col(string(Sites::Origin))
                    .col(string(Sites::SiteId))
                    .col(string(Sites::DisplayName))
                    .col(string(Sites::Kind))
                    .col(string(Sites::Operator))
                    .col(string(Sites::CountryCode))
                    .col(double(Sites::Latitude))
                    .col(double(Sites::Longitude))
                    .col(big_integer(Sites::H3Cell))
                    .col(string(Sites::Status))
                    .col(text(Sites::Body))
                    .col(string(Sites::Etag))
                    .col(big_integer(Sites::UpdateTimeUs))
                    .col(big_integer(Sites::OriginSeq))
                    .to_owned(),
            )
            .await?;
            for (name, col) in [
                ("idx_sites_origin", Sites::Origin),
                ("idx_sites_country", Sites::CountryCode),
                ("idx_sites_h3_cell", Sites::H3Cell),
                ("idx_sites_update_time", Sites::UpdateTimeUs),
            ] {
                m.create_index(Index::create().name(name).table(Sites::Table).col(col).to_owned()).await?;
            }

            m.create_table(
                Table::create()
                    .table(SiteServices::Table)
                    .col(string(SiteServices::SiteName))
                    .col(string(SiteServices::Service))
                    .primary_key(Index::create().col(SiteServices::SiteName).col(SiteServices::Service))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SiteServices::Table, SiteServices::SiteName)
                            .to(Sites::Table, Sites::Name)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
            m.create_index(
                Index::create()
                    .name("idx_site_services_service")
                    .table(SiteServices::Table)
                    .col(SiteServices::Service)
                    .to_owned(),
            )
            .await?;

            m.create_table(
                Table::create()
                    .table(ChangeLog::Table)
                    .col(string(ChangeLog::Origin))
                    .col(big_integer(ChangeLog::Seq))
                    .col(string(ChangeLog::SiteName))
                    .col(string(ChangeLog::Op))
                    .col(blob_null(ChangeLog::Payload))
                    .col(big_integer(ChangeLog::EventTimeUs))
                    .col(string_null(ChangeLog::KeyId))
                    .col(blob_null(ChangeLog::Signature))
                    .primary_key(Index::create().col(ChangeLog::Origin).col(ChangeLog::Seq))
                    .to_owned(),
            )
            .await?;
            m.create_index(
                Index::create().name("idx_change_log_site").table(ChangeLog::Table).col(ChangeLog::SiteName).to_owned(),
            )
            .await?;

            m.create_table(
                Table::create()
                    .table(OriginSequences::Table)
                    .col(string(OriginSequences::Origin).primary_key())
                    .col(big_integer(OriginSequences::LastSeq))
                    .col(string(OriginSequences::Epoch))
                    .to_owned(),
            )
            .await?;

            m.create_table(
                Table::create()
                    .table(ConnectivityLatest::Table)
                    .col(string(ConnectivityLatest::SiteName).primary_key())
                    .col(boolean(ConnectivityLatest::Online))
                    .col(double_null(ConnectivityLatest::DownloadMbps))
                    .col(double_null(ConnectivityLatest::UploadMbps))
                    .col(double_null(ConnectivityLatest::LatencyMs))
                    .col(string(ConnectivityLatest::Technology))
                    .col(integer_null(ConnectivityLatest::PublicWifiAccessPoints))
                    .col(integer_null(ConnectivityLatest::PublicComputers))
                    .col(boolean_null(ConnectivityLatest::PowerBackup))
                    .col(string(ConnectivityLatest::Source))
                    .col(big_integer(ConnectivityLatest::ObservedAtUs))
                    .col(big_integer(ConnectivityLatest::ReceivedAtUs))
                    .to_owned(),
            )
            .await?;

            m.create_table(
                Table::create()
                    .table(ConnectivityHistory::Table)
                    .col(big_pk_auto(ConnectivityHistory::Id))
                    .col(string(ConnectivityHistory::SiteName))
                    .col(string(ConnectivityHistory::IdempotencyKey))
                    .col(boolean(ConnectivityHistory::Online))
                    .col(double_null(ConnectivityHistory::DownloadMbps))
                    .col(double_null(ConnectivityHistory::UploadMbps))
                    .col(double_null(ConnectivityHistory::LatencyMs))
                    .col(double_null(ConnectivityHistory::JitterMs))
                    .col(double_null(ConnectivityHistory::PacketLossRatio))
                    .col(string(ConnectivityHistory::Technology))
                    .col(string(ConnectivityHistory::Source))
                    .col(big_integer(ConnectivityHistory::ObservedAtUs))
                    .col(big_integer(ConnectivityHistory::ReceivedAtUs))
                    .to_owned(),
            )
            .await?;
            m.create_index(
                Index::create()
                    .name("idx_connectivity_history_key")
                    .table(ConnectivityHistory::Table)
                    .col(ConnectivityHistory::SiteName)
                    .col(ConnectivityHistory::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
            m.create_index(
                Index::create()
                    .name("idx_connectivity_history_time")
                    .table(ConnectivityHistory::Table)
                    .col(ConnectivityHistory::SiteName)
                    .col(ConnectivityHistory::ObservedAtUs)
                    .to_owned(),
            )
            .await?;

            m.create_table(
                Table::create()
                    .table(Peers::Table)
                    .col(string(Peers::NodeId).primary_key())
                    .col(string(Peers::Endpoint))
                    .col(blob(Peers::PublicKey))
                    .col(text(Peers::AllowedOrigins))
                    .col(big_integer(Peers::CreatedAtUs))
                    .to_owned(),
            )
            .await?;

            m.create_table(
                Table::create()
                    .table(PeerCursors::Table)
                    .col(string(PeerCursors::PeerId))
                    .col(string(PeerCursors::Origin))
                    .col(big_integer(PeerCursors::Seq))
                    .col(string(PeerCursors::Epoch))
                    .col(big_integer(PeerCursors::UpdatedAtUs))
                    .primary_key(Index::create().col(PeerCursors::PeerId).col(PeerCursors::Origin))
                    .to_owned(),
            )
            .await?;

            m.create_table(
                Table::create()
                    .table(NodeKeys::Table)
                    .col(string(NodeKeys::KeyId).primary_key())
                    .col(blob(NodeKeys::PublicKey))
                    .col(big_integer(NodeKeys::ValidFromUs))
                    .col(big_integer_null(NodeKeys::ValidUntilUs))
                    .to_owned(),
            )
            .await
        }
    }
}

/// Text search keys on `sites` (see `hubdir_core::search`), filled in for sites stored before.
mod m0002_search_keys {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::*;

    #[derive(Debug)]
    pub struct Migration;

    /// Sites read at once while filling in the keys.
    pub(crate) const BACKFILL_PAGE: u64 = 1000;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m0002_search_keys"
        }
    }

    #[derive(DeriveIden)]
    enum Sites {
        Table,
        SearchName,
        SearchText,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        fn use_transaction(&self) -> Option<bool> {
            Some(true)
        }

        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            // SQLite adds one column per ALTER TABLE.
            for column in [Sites::SearchName, Sites::SearchText] {
                m.alter_table(Table::alter().table(Sites::Table).add_column(text(column).default("")).to_owned())
                    .await?;
            }
            super::backfill_sites(m, |site| {
                let (search_name, search_text) = hubdir_core::search::site_keys(site);
                vec![
                    (Sites::SearchName.into_iden(), Expr::val(search_name)),
                    (Sites::SearchText.into_iden(), Expr::val(search_text)),
                ]
            })
            .await
        }
    }
}

/// The latest measurement and status of a site as JSON beside its typed columns, the status
/// last announced in the change log, the quarantine of refused measurements, and the daily
/// roll-ups that outlive raw measurements.
mod m0003_connectivity_status {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::*;

    #[derive(Debug)]
    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m0003_connectivity_status"
        }
    }

    #[derive(DeriveIden)]
    enum ConnectivityLatest {
        Table,
        Measurement,
        Summary,
        LoggedSummary,
    }

    #[derive(DeriveIden)]
    enum ConnectivityDaily {
        Table,
        SiteName,
        Day,
        Measurements,
        OnlineCount,
        DownloadCount,
        DownloadMedian,
        DownloadP10,
        UploadCount,
        UploadMedian,
        UploadP10,
        LatencyCount,
        LatencyMedian,
    }

    #[derive(DeriveIden)]
    enum ConnectivityQuarantine {
        Table,
        Id,
        SiteName,
        IdempotencyKey,
        Reason,
        Body,
        ReceivedAtUs,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        fn use_transaction(&self) -> Option<bool> {
            Some(true)
        }

        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            for column in
                [ConnectivityLatest::Measurement, ConnectivityLatest::Summary, ConnectivityLatest::LoggedSummary]
            {
                m.alter_table(Table::alter().table(ConnectivityLatest::Table).add_column(text_null(column)).to_owned())
                    .await?;
            }
            m.create_table(
                Table::create()
                    .table(ConnectivityQuarantine::Table)
                    .col(big_pk_auto(ConnectivityQuarantine::Id))
                    .col(string(ConnectivityQuarantine::SiteName))
                    .col(string(ConnectivityQuarantine::IdempotencyKey))
                    .col(string(ConnectivityQuarantine::Reason))
                    .col(text(ConnectivityQuarantine::Body))
                    .col(big_integer(ConnectivityQuarantine::ReceivedAtUs))
                    .to_owned(),
            )
            .await?;
            m.create_table(
                Table::create()
                    .table(ConnectivityDaily::Table)
                    .col(string(ConnectivityDaily::SiteName))
                    .col(big_integer(ConnectivityDaily::Day))
                    .col(big_integer(ConnectivityDaily::Measurements))
                    .col(big_integer(ConnectivityDaily::OnlineCount))
                    .col(big_integer(ConnectivityDaily::DownloadCount))
                    .col(double_null(ConnectivityDaily::DownloadMedian))
                    .col(double_null(ConnectivityDaily::DownloadP10))
                    .col(big_integer(ConnectivityDaily::UploadCount))
                    .col(double_null(ConnectivityDaily::UploadMedian))
                    .col(double_null(ConnectivityDaily::UploadP10))
                    .col(big_integer(ConnectivityDaily::LatencyCount))
                    .col(double_null(ConnectivityDaily::LatencyMedian))
                    .primary_key(Index::create().col(ConnectivityDaily::SiteName).col(ConnectivityDaily::Day))
                    .to_owned(),
            )
            .await?;
            m.create_index(
                Index::create()
                    .name("idx_connectivity_quarantine_site")
                    .table(ConnectivityQuarantine::Table)
                    .col(ConnectivityQuarantine::SiteName)
                    .to_owned(),
            )
            .await
        }
    }
}

/// The exact bytes each change-log event was signed over.
mod m0004_signed_events {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::*;

    #[derive(Debug)]
    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m0004_signed_events"
        }
    }

    #[derive(DeriveIden)]
    enum ChangeLog {
        Table,
        EventBytes,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        fn use_transaction(&self) -> Option<bool> {
            Some(true)
        }

        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            m.alter_table(
                Table::alter().table(ChangeLog::Table).add_column(blob_null(ChangeLog::EventBytes)).to_owned(),
            )
            .await
        }
    }
}

/// Snapshots and compaction: each origin's log records the seq up to which it may have holes
/// (events superseded by later ones, removed by compaction or never received because a
/// snapshot skipped them), and events are found by site in sequence order.
mod m0005_log_horizon {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::*;

    #[derive(Debug)]
    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m0005_log_horizon"
        }
    }

    #[derive(DeriveIden)]
    enum OriginSequences {
        Table,
        CompactedThrough,
    }

    #[derive(DeriveIden)]
    enum ChangeLog {
        Table,
        SiteName,
        Seq,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        fn use_transaction(&self) -> Option<bool> {
            Some(true)
        }

        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            m.alter_table(
                Table::alter()
                    .table(OriginSequences::Table)
                    .add_column(big_integer(OriginSequences::CompactedThrough).default(0))
                    .to_owned(),
            )
            .await?;
            m.drop_index(Index::drop().name("idx_change_log_site").table(ChangeLog::Table).to_owned()).await?;
            m.create_index(
                Index::create()
                    .name("idx_change_log_site_seq")
                    .table(ChangeLog::Table)
                    .col(ChangeLog::SiteName)
                    .col(ChangeLog::Seq)
                    .to_owned(),
            )
            .await
        }
    }
}

mod m0006_origin_sides {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::*;

    #[derive(Debug)]
    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m0006_origin_sides"
        }
    }

    #[derive(DeriveIden)]
    enum OriginSequences {
        Table,
        Origin,
        Remote,
    }

    #[derive(DeriveIden)]
    enum PeerCursors {
        Table,
        Origin,
    }

    #[derive(DeriveIden)]
    enum ConnectivityQuarantine {
        Table,
        Principal,
        ReceivedAtUs,
    }

    #[derive(DeriveIden)]
    enum FederationQuarantine {
        Table,
        Id,
        Peer,
        Origin,
        Seq,
        SiteName,
        Reason,
        ReceivedAtUs,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        fn use_transaction(&self) -> Option<bool> {
            Some(true)
        }

        /// Each origin's log is written here or applied from peers (an existing one is applied
        /// from peers if some peer's cursor follows it); refused measurements are filed under
        /// who sent them; peers' events this node could not apply are kept for the operator.
        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            m.alter_table(
                Table::alter()
                    .table(ConnectivityQuarantine::Table)
                    .add_column(string(ConnectivityQuarantine::Principal).default(""))
                    .to_owned(),
            )
            .await?;
            m.create_index(
                Index::create()
                    .name("idx_connectivity_quarantine_received")
                    .table(ConnectivityQuarantine::Table)
                    .col(ConnectivityQuarantine::ReceivedAtUs)
                    .to_owned(),
            )
            .await?;
            m.create_table(
                Table::create()
                    .table(FederationQuarantine::Table)
                    .col(big_pk_auto(FederationQuarantine::Id))
                    .col(string(FederationQuarantine::Peer))
                    .col(string(FederationQuarantine::Origin))
                    .col(big_integer(FederationQuarantine::Seq))
                    .col(string(FederationQuarantine::SiteName))
                    .col(string(FederationQuarantine::Reason))
                    .col(big_integer(FederationQuarantine::ReceivedAtUs))
                    .to_owned(),
            )
            .await?;
            m.alter_table(
                Table::alter()
                    .table(OriginSequences::Table)
                    .add_column(boolean(OriginSequences::Remote).default(false))
                    .to_owned(),
            )
            .await?;
            let followed = Query::select().distinct().column(PeerCursors::Origin).from(PeerCursors::Table).to_owned();
            let backfill = Query::update()
                .table(OriginSequences::Table)
                .value(OriginSequences::Remote, true)
                .and_where(Expr::col(OriginSequences::Origin).in_subquery(followed))
                .to_owned();
            m.exec_stmt(backfill).await
        }
    }
}

/// Each site's lookup keys (`hubdir_core::lookup`), by which an HSDS id finds its site or
/// its operator with one indexed read, and its postcode key (`hubdir_core::search`), by
/// which HSDS's `postcode` finds sites. Filled in for sites stored before, a page at a time.
mod m0007_lookup_keys {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::*;

    #[derive(Debug)]
    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m0007_lookup_keys"
        }
    }

    #[derive(DeriveIden)]
    enum Sites {
        Table,
        Postcode,
        SiteKey,
        OperatorKey,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        fn use_transaction(&self) -> Option<bool> {
            Some(true)
        }

        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            // SQLite adds one column per ALTER TABLE.
            m.alter_table(
                Table::alter().table(Sites::Table).add_column(string(Sites::Postcode).default("")).to_owned(),
            )
            .await?;
            for column in [Sites::SiteKey, Sites::OperatorKey] {
                m.alter_table(Table::alter().table(Sites::Table).add_column(big_integer(column).default(0)).to_owned())
                    .await?;
            }
            super::backfill_sites(m, |site| {
                let site_key = hubdir_core::lookup::key(&hubdir_core::lookup::site_subject(&site.name));
                let operator_key = hubdir_core::lookup::key(&hubdir_core::lookup::operator_subject(&site.operator));
                vec![
                    (
                        Sites::Postcode.into_iden(),
                        Expr::val(hubdir_core::search::postcode_key(&site.address.postal_code)),
                    ),
                    (Sites::SiteKey.into_iden(), Expr::val(site_key)),
                    (Sites::OperatorKey.into_iden(), Expr::val(operator_key)),
                ]
            })
            .await?;
            for (name, column) in [
                ("idx_sites_postcode", Sites::Postcode),
                ("idx_sites_site_key", Sites::SiteKey),
                ("idx_sites_operator_key", Sites::OperatorKey),
            ] {
                m.create_index(Index::create().name(name).table(Sites::Table).col(column).to_owned()).await?;
            }
            Ok(())
        }
    }
}

/// Population layers and their places (`hubdir population import`), for coverage.
mod m0008_population {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::*;

    #[derive(Debug)]
    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m0008_population"
        }
    }

    #[derive(DeriveIden)]
    enum PopulationLayers {
        Table,
        Name,
        Source,
        Year,
        Places,
        People,
        ImportedAtUs,
    }

    #[derive(DeriveIden)]
    enum PopulationPlaces {
        Table,
        Layer,
        Id,
        Name,
        CountryCode,
        Latitude,
        Longitude,
        H3Cell,
        People,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        fn use_transaction(&self) -> Option<bool> {
            Some(true)
        }

        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            m.create_table(
                Table::create()
                    .table(PopulationLayers::Table)
                    .col(string(PopulationLayers::Name).primary_key())
                    .col(string(PopulationLayers::Source))
                    .col(integer(PopulationLayers::Year))
                    .col(big_integer(PopulationLayers::Places))
                    .col(big_integer(PopulationLayers::People))
                    .col(big_integer(PopulationLayers::ImportedAtUs))
                    .to_owned(),
            )
            .await?;
            m.create_table(
                Table::create()
                    .table(PopulationPlaces::Table)
                    .col(string(PopulationPlaces::Layer))
                    .col(string(PopulationPlaces::Id))
                    .col(string(PopulationPlaces::Name))
                    .col(string(PopulationPlaces::CountryCode))
                    .col(double(PopulationPlaces::Latitude))
                    .col(double(PopulationPlaces::Longitude))
                    .col(big_integer(PopulationPlaces::H3Cell))
                    .col(big_integer(PopulationPlaces::People))
                    .primary_key(Index::create().col(PopulationPlaces::Layer).col(PopulationPlaces::Id))
                    .to_owned(),
            )
            .await?;
            for (name, column) in [
                ("idx_population_places_country", PopulationPlaces::CountryCode),
                ("idx_population_places_h3_cell", PopulationPlaces::H3Cell),
            ] {
                m.create_index(
                    Index::create()
                        .name(name)
                        .table(PopulationPlaces::Table)
                        .col(PopulationPlaces::Layer)
                        .col(column)
                        .to_owned(),
                )
                .await?;
            }
            Ok(())
        }
    }
}
