//! TOTP secrets and recovery codes.

use async_trait::async_trait;
use chrono::Utc;
use sqlx::Row;

use super::{PostgresStore, conflict};
use crate::{MfaStore, StoreError, StoreResult, TotpRecord};

#[async_trait]
impl MfaStore for PostgresStore {
    async fn totp(&self, user_id: &str) -> StoreResult<Option<TotpRecord>> {
        let row = sqlx::query("SELECT secret, enabled, last_step FROM mfa_totp WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(TotpRecord {
                secret: r.try_get("secret")?,
                enabled: r.try_get("enabled")?,
                last_step: r.try_get("last_step")?,
            })
        })
        .transpose()
    }

    async fn put_pending_totp(&self, user_id: &str, secret: &str) -> StoreResult<()> {
        let done = sqlx::query(
            "INSERT INTO mfa_totp (user_id, secret, enabled, last_step, created_at) VALUES ($1, $2, FALSE, NULL, $3)
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at
             WHERE mfa_totp.enabled = FALSE",
        )
        .bind(user_id)
        .bind(secret)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict("an enabled authenticator".into()));
        }
        Ok(())
    }

    async fn enable_totp(&self, user_id: &str, step: i64, recovery_hashes: &[String]) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE mfa_totp SET enabled = TRUE, last_step = $2 WHERE user_id = $1 AND enabled = FALSE",
        )
        .bind(user_id)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for hash in recovery_hashes {
            sqlx::query("INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn accept_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE mfa_totp SET last_step = $2 WHERE user_id = $1 AND enabled = TRUE AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(user_id)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_recovery_code(&self, user_id: &str, code_hash: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE mfa_recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(code_hash)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn disable_totp(&self, user_id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let done =
            sqlx::query("DELETE FROM mfa_totp WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_passkey(
        &self,
        user_id: &str,
        credential_id: &str,
        name: &str,
        passkey: &str,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO passkeys (credential_id, user_id, name, passkey, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(credential_id)
            .bind(user_id)
            .bind(name)
            .bind(passkey)
            .bind(Utc::now())
            .execute(&self.pool)
            .await
            .map_err(conflict(|| "passkey".to_string()))?;
        Ok(())
    }

    async fn passkeys(&self, user_id: &str) -> StoreResult<Vec<(String, String, String)>> {
        let rows = sqlx::query(
            "SELECT credential_id, name, passkey FROM passkeys WHERE user_id = $1 ORDER BY created_at",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("credential_id")?, r.try_get("name")?, r.try_get("passkey")?)))
            .collect()
    }

    async fn update_passkey(&self, credential_id: &str, passkey: &str) -> StoreResult<()> {
        sqlx::query("UPDATE passkeys SET passkey = $2 WHERE credential_id = $1")
            .bind(credential_id)
            .bind(passkey)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_passkey(&self, user_id: &str, credential_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM passkeys WHERE user_id = $1 AND credential_id = $2")
            .bind(user_id)
            .bind(credential_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
