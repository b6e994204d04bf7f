//! Registered machines (VMs and scale-set instances) and their network interfaces.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rampart_core::{Machine, NetworkInterface, OsType, ResourceId, ResourceKind};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, conflict, parse_ts, ts};
use crate::codec::{machine_id, machine_key, parse_ip};
use crate::{InventoryStore, StoreError, StoreResult};

/// Machines joined with their network interface's private IP, then `$rest`.
macro_rules! machine_select {
    ($rest:literal) => {
        concat!(
            "SELECT m.subscription_id, m.resource_group, m.scale_set, m.name, m.os_type,
               m.nic_name, m.port_ssh, m.port_rdp, n.private_ip
             FROM machines m JOIN network_interfaces n
               ON n.subscription_id = m.subscription_id AND n.resource_group = m.resource_group
              AND n.name = m.nic_name ",
            $rest
        )
    };
}

fn machine_from_row(row: &SqliteRow) -> StoreResult<Machine> {
    let (sub, rg): (String, String) = (row.try_get("subscription_id")?, row.try_get("resource_group")?);
    let id = machine_id(&sub, &rg, row.try_get("scale_set")?, row.try_get("name")?);
    let os: String = row.try_get("os_type")?;
    let port = |col: &str| -> StoreResult<u16> {
        let v: i64 = row.try_get(col)?;
        u16::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col} {v}")))
    };
    Ok(Machine {
        os_type: OsType::from_str(&os).map_err(StoreError::Corrupt)?,
        nic: NetworkInterface {
            id: ResourceId::nic(&sub, &rg, row.try_get("nic_name")?),
            private_ip: parse_ip(row.try_get("private_ip")?)?,
            attached_to: Some(id.clone()),
        },
        id,
        port_ssh: port("port_ssh")?,
        port_rdp: port("port_rdp")?,
    })
}

#[async_trait]
impl InventoryStore for SqliteStore {
    async fn register_machines(&self, machines: &[Machine]) -> StoreResult<usize> {
        let _written = self.cache.write_guard();
        let mut tx = self.pool.begin().await?;
        let now = ts(Utc::now());
        for m in machines {
            let (scale_set, name) = machine_key(&m.id)?;
            sqlx::query(
                "INSERT INTO resource_groups (subscription_id, name, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )
            .bind(&m.id.subscription)
            .bind(&m.id.resource_group)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                    StoreError::NotFound(format!("subscription '{}'", m.id.subscription))
                }
                _ => e.into(),
            })?;
            sqlx::query(
                "INSERT INTO network_interfaces (subscription_id, resource_group, name, private_ip, attached_to, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(&m.nic.id.subscription)
            .bind(&m.nic.id.resource_group)
            .bind(&m.nic.id.name)
            .bind(m.nic.private_ip.to_string())
            .bind(m.id.to_string())
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(conflict(|| format!("network interface '{}'", m.nic.id.name)))?;
            sqlx::query(
                "INSERT INTO machines (subscription_id, resource_group, scale_set, name, os_type, nic_name,
                   port_ssh, port_rdp, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .bind(&m.id.subscription)
            .bind(&m.id.resource_group)
            .bind(&scale_set)
            .bind(&name)
            .bind(m.os_type.as_str())
            .bind(&m.nic.id.name)
            .bind(i64::from(m.port_ssh))
            .bind(i64::from(m.port_rdp))
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(conflict(|| format!("machine '{}'", m.id)))?;
        }
        tx.commit().await?;
        Ok(machines.len())
    }

    async fn machine(&self, id: &ResourceId) -> StoreResult<Option<Machine>> {
        let Ok((scale_set, name)) = machine_key(id) else { return Ok(None) };
        let key = id.to_string();
        if let Some(machine) = self.cache.get(|c| c.machines.get(&key).cloned()) {
            return Ok(machine);
        }
        let generation = self.cache.generation();
        let row = sqlx::query(machine_select!(
            "WHERE m.subscription_id = ?1 AND m.resource_group = ?2 AND m.scale_set = ?3 AND m.name = ?4"
        ))
        .bind(&id.subscription)
        .bind(&id.resource_group)
        .bind(&scale_set)
        .bind(&name)
        .fetch_optional(&self.pool)
        .await?;
        let machine = row.as_ref().map(machine_from_row).transpose()?;
        self.cache.fill(generation, |c| {
            c.machines.insert(key, machine.clone());
        });
        Ok(machine)
    }

    async fn list_machines(
        &self,
        subscription_id: &str,
        resource_group: Option<&str>,
    ) -> StoreResult<Vec<Machine>> {
        let rows = sqlx::query(machine_select!(
            "WHERE m.subscription_id = ?1 AND (?2 IS NULL OR m.resource_group = ?2)
             ORDER BY m.resource_group, m.scale_set, m.name"
        ))
        .bind(subscription_id)
        .bind(resource_group)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(machine_from_row).collect()
    }

    async fn update_machine(&self, m: &Machine) -> StoreResult<()> {
        let _written = self.cache.write_guard();
        let (scale_set, name) = machine_key(&m.id)?;
        let mut tx = self.pool.begin().await?;
        let nic: Option<String> = sqlx::query_scalar(
            "UPDATE machines SET os_type = ?5, port_ssh = ?6, port_rdp = ?7
             WHERE subscription_id = ?1 AND resource_group = ?2 AND scale_set = ?3 AND name = ?4
             RETURNING nic_name",
        )
        .bind(&m.id.subscription)
        .bind(&m.id.resource_group)
        .bind(&scale_set)
        .bind(&name)
        .bind(m.os_type.as_str())
        .bind(i64::from(m.port_ssh))
        .bind(i64::from(m.port_rdp))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(nic) = nic else {
            return Err(StoreError::NotFound(format!("machine {}", m.id)));
        };
        sqlx::query(
            "UPDATE network_interfaces SET private_ip = ?4
             WHERE subscription_id = ?1 AND resource_group = ?2 AND name = ?3",
        )
        .bind(&m.id.subscription)
        .bind(&m.id.resource_group)
        .bind(&nic)
        .bind(m.nic.private_ip.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn unregister_machine(&self, id: &ResourceId) -> StoreResult<usize> {
        let _written = self.cache.write_guard();
        // A VM, a scale-set instance, or a whole scale set.
        let (scale_set, name): (String, Option<String>) = match id.kind() {
            ResourceKind::ScaleSet => (id.name.clone(), None),
            _ => {
                let (s, n) = machine_key(id)?;
                (s, Some(n))
            }
        };
        let mut tx = self.pool.begin().await?;
        let nics: Vec<String> = sqlx::query_scalar(
            "DELETE FROM machines WHERE subscription_id = ?1 AND resource_group = ?2 AND scale_set = ?3
               AND (?4 IS NULL OR name = ?4)
             RETURNING nic_name",
        )
        .bind(&id.subscription)
        .bind(&id.resource_group)
        .bind(&scale_set)
        .bind(&name)
        .fetch_all(&mut *tx)
        .await?;
        if nics.is_empty() {
            return Err(StoreError::NotFound(format!("{id}")));
        }
        for nic in &nics {
            sqlx::query("DELETE FROM network_interfaces WHERE subscription_id = ?1 AND resource_group = ?2 AND name = ?3")
                .bind(&id.subscription)
                .bind(&id.resource_group)
                .bind(nic)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(nics.len())
    }

    async fn network_interface(&self, id: &ResourceId) -> StoreResult<Option<NetworkInterface>> {
        let row = sqlx::query(
            "SELECT * FROM network_interfaces WHERE subscription_id = ?1 AND resource_group = ?2 AND name = ?3",
        )
        .bind(&id.subscription)
        .bind(&id.resource_group)
        .bind(&id.name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(nic_from_row).transpose()
    }

    async fn list_network_interfaces(
        &self,
        subscription_id: &str,
        resource_group: Option<&str>,
    ) -> StoreResult<Vec<NetworkInterface>> {
        let rows = sqlx::query(
            "SELECT * FROM network_interfaces WHERE subscription_id = ?1 AND (?2 IS NULL OR resource_group = ?2)
             ORDER BY resource_group, name",
        )
        .bind(subscription_id)
        .bind(resource_group)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(nic_from_row).collect()
    }

    async fn pinned_host_key(&self, target: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT host_key FROM pinned_host_keys WHERE target = ?1")
            .bind(target)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn pin_host_key(&self, target: &str, host_key: &str) -> StoreResult<String> {
        // First writer wins: two sessions racing to pin cannot both succeed with different keys.
        sqlx::query(
            "INSERT INTO pinned_host_keys (target, host_key, pinned_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (target) DO NOTHING",
        )
        .bind(target)
        .bind(host_key)
        .bind(ts(Utc::now()))
        .execute(&self.pool)
        .await?;
        self.pinned_host_key(target)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("the host key pinned for {target} vanished")))
    }

    async fn forget_host_key(&self, target: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM pinned_host_keys WHERE target = ?1")
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn pinned_host_keys(&self) -> StoreResult<Vec<(String, String, DateTime<Utc>)>> {
        let rows = sqlx::query("SELECT target, host_key, pinned_at FROM pinned_host_keys ORDER BY target")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("target")?,
                    r.try_get("host_key")?,
                    parse_ts(&r.try_get::<String, _>("pinned_at")?)?,
                ))
            })
            .collect()
    }
}

fn nic_from_row(row: &SqliteRow) -> StoreResult<NetworkInterface> {
    let attached: Option<String> = row.try_get("attached_to")?;
    Ok(NetworkInterface {
        id: ResourceId::nic(
            row.try_get("subscription_id")?,
            row.try_get("resource_group")?,
            row.try_get("name")?,
        ),
        private_ip: parse_ip(row.try_get("private_ip")?)?,
        attached_to: attached.and_then(|a| a.parse().ok()),
    })
}
