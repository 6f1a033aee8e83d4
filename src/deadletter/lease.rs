//! Leases on competing workers' parked logs (`migrations/*/0005`): a log
//! whose worker is gone (scaled in, replaced by a rolling update, killed)
//! is adopted by a live worker of the same queue instead of waiting for a
//! host of the same name that may never come back.
//!
//! The claim is one transaction that deletes the expired lease and moves
//! the rows, so two workers racing for a log cannot both take it: on
//! PostgreSQL the second's `DELETE` waits for the first's commit and then
//! finds nothing; SQLite runs one writer at a time.

use super::backend::{Args, Bind};
use super::error::StoreError;
use super::parked::ParkedGroup;
use super::store::Store;

/// Rows a worker took over from a log whose lease ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// The log they were in.
    pub from: String,
    /// Their groups as they are now named in the adopting log (see
    /// [`Store::adopt_parked_log`]).
    pub groups: Vec<ParkedGroup>,
}

impl Store {
    /// Renews `log`'s lease. Returns whether it was still held: `false` on
    /// the first renewal, and when another worker adopted the log meanwhile
    /// (the lease had run out); either way the lease is held again after.
    pub async fn renew_lease(
        &self,
        log: &str,
        queue: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const OP: &str = "renew_lease";
        let mut args = Args::new(self.pool.dialect());
        let sql = format!(
            "UPDATE parked_leases SET renewed_at_ms = {} WHERE log = {}",
            args.bind(Bind::int(now_ms)),
            args.bind(Bind::text(log)),
        );
        if self.pool.execute(OP, &sql, &args.binds).await? > 0 {
            return Ok(true);
        }
        let mut args = Args::new(self.pool.dialect());
        let sql = format!(
            "INSERT INTO parked_leases (log, queue, renewed_at_ms) VALUES ({}, {}, {}) \
             ON CONFLICT DO NOTHING",
            args.bind(Bind::text(log)),
            args.bind(Bind::text(queue)),
            args.bind(Bind::int(now_ms)),
        );
        self.pool.execute(OP, &sql, &args.binds).await?;
        Ok(false)
    }

    /// The logs of `queue`'s competing workers, other than `own`, that hold
    /// rows and whose lease was last renewed before `cutoff_ms` or is
    /// missing.
    pub async fn orphaned_parked_logs(
        &self,
        queue: &str,
        own: &str,
        cutoff_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut args = Args::new(self.pool.dialect());
        let sql = format!(
            "SELECT DISTINCT p.log FROM parked_intents p \
             LEFT JOIN parked_leases l ON l.log = p.log \
             WHERE l.log IS NULL OR (l.queue = {} AND l.renewed_at_ms < {})",
            args.bind(Bind::text(queue)),
            args.bind(Bind::int(cutoff_ms)),
        );
        let logs: Vec<(String,)> = self
            .pool
            .fetch("orphaned_parked_logs", &sql, &args.binds)
            .await?;
        Ok(logs
            .into_iter()
            .map(|(log,)| log)
            .filter(|log| log != own && is_competing_log_of(log, queue))
            .collect())
    }

    /// Takes `from` over into `into` if its lease is still out at
    /// `cutoff_ms`: deletes the lease and moves every row, each group
    /// renamed `{group}#{from}` so that it can collide with none of
    /// `into`'s groups, nor with a page read of them under way. `None` when
    /// another worker (or `from`'s own, back again) was first.
    pub async fn adopt_parked_log(
        &self,
        from: &str,
        into: &str,
        cutoff_ms: i64,
    ) -> Result<Option<Adopted>, StoreError> {
        const OP: &str = "adopt_parked_log";
        let dialect = self.pool.dialect();
        let mut tx = self.pool.begin(OP).await?;
        // A log without a lease (older workers wrote none) gets an expired
        // one first, so that the claim below is the same race either way.
        let mut args = Args::new(dialect);
        let sql = format!(
            "INSERT INTO parked_leases (log, queue, renewed_at_ms) VALUES ({}, '', 0) \
             ON CONFLICT DO NOTHING",
            args.bind(Bind::text(from)),
        );
        tx.execute(OP, &sql, &args.binds).await?;
        let mut args = Args::new(dialect);
        let sql = format!(
            "DELETE FROM parked_leases WHERE log = {} AND renewed_at_ms < {}",
            args.bind(Bind::text(from)),
            args.bind(Bind::int(cutoff_ms)),
        );
        if tx.execute(OP, &sql, &args.binds).await? == 0 {
            return Ok(None);
        }
        let suffix = format!("#{from}");
        let mut args = Args::new(dialect);
        let sql = format!(
            "UPDATE parked_intents SET log = {}, grp = grp || {} WHERE log = {}",
            args.bind(Bind::text(into)),
            args.bind(Bind::text(&suffix)),
            args.bind(Bind::text(from)),
        );
        tx.execute(OP, &sql, &args.binds).await?;
        tx.commit(OP).await?;
        let groups = self
            .parked_groups(into)
            .await?
            .into_iter()
            .filter(|g| g.group.ends_with(&suffix))
            .collect();
        Ok(Some(Adopted {
            from: from.to_string(),
            groups,
        }))
    }
}

/// Whether `log` is a competing worker's log of `queue`: `{queue}@{host}`,
/// where a host name has no `@` (so `q@x@h`, a log of queue `q@x`, is not
/// one of queue `q`).
fn is_competing_log_of(log: &str, queue: &str) -> bool {
    log.strip_prefix(queue)
        .and_then(|rest| rest.strip_prefix('@'))
        .is_some_and(|host| !host.is_empty() && !host.contains('@'))
}

#[cfg(test)]
mod tests {
    use super::is_competing_log_of;

    #[test]
    fn only_a_log_of_the_same_queue_is_adoptable() {
        assert!(is_competing_log_of("intents@pod-a", "intents"));
        assert!(!is_competing_log_of("intents", "intents"), "single-active");
        assert!(!is_competing_log_of("intents@", "intents"));
        assert!(!is_competing_log_of("intents.x@pod-a", "intents"));
        assert!(!is_competing_log_of("intents@x@pod-a", "intents"));
        assert!(is_competing_log_of("intents@x@pod-a", "intents@x"));
    }
}
