//! The audit log page in real Chromium (web/tests/audit.mjs): filters, the chain's state,
//! CSV and JSON exports, a Reader's read-only view on a phone-sized screen, and a record
//! edited in the store showing the chain broken.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use rampart_e2e::{ADMIN_PASSWORD, Gateway};

#[test]
fn operators_read_filter_and_export_the_audit_log_in_the_portal() -> Result<()> {
    let gw = Gateway::start(&[])?;
    // A refused sign-in to find, and a Reader at the subscription.
    let refused = gw.login_with("mallory", "not-the-password")?;
    ensure!(!refused.status.success(), "a wrong password is refused");
    drop(gw.reader("reader")?);

    let out = rampart_e2e::artifacts("portal-audit")?;
    let mut script = rampart_e2e::spawn_browser_script(
        "audit.mjs",
        &[
            ("RAMPART_URL", gw.url()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("READER", "reader".to_string()),
            ("READER_PASSWORD", "reader-Passw0rd-long".to_string()),
            ("ARTIFACTS", out.display().to_string()),
        ],
    )?;
    let t = Instant::now();
    while !out.join("read").exists() {
        if script.try_wait()?.is_some() {
            // It stopped early: its output says why.
            rampart_e2e::finish_browser_script(script, Duration::from_secs(5))?;
            anyhow::bail!("the browser script ended before reading the log");
        }
        ensure!(t.elapsed() < Duration::from_secs(90), "the browser script never finished reading");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Edit a record in the store behind the gateway's back (SQLite allows it while it runs).
    let db = gw.data_dir.join("rampart.db");
    tokio::runtime::Runtime::new()?.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
        sqlx::query("UPDATE audit_records SET reason = 'nothing to see' WHERE id = 2").execute(&pool).await?;
        pool.close().await;
        anyhow::Ok(())
    })?;
    std::fs::write(out.join("tampered"), "yes")?;
    let text = rampart_e2e::finish_browser_script(script, Duration::from_secs(90))?;
    ensure!(text.contains("ok - an edited record shows the chain broken"), "{text}");
    Ok(())
}
