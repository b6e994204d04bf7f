//! Files in the browser terminal (web/tests/files.mjs, real Chromium, real sshd): two files,
//! one of 200 MiB, go up through the panel and come back down with the same SHA-256; the
//! audit log names each transfer with its hash; with `--file-transfer download` an upload is
//! refused and the page shows why.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rampart_e2e::{ADMIN_PASSWORD, Gateway, LocalUser, Sshd, SshdOptions};
use sha2::{Digest, Sha256};

/// `len` pseudo-random bytes (nothing on the way can compress them away).
fn write_random(path: &Path, len: usize) -> Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..len / block.len() {
        for chunk in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        file.write_all(&block)?;
    }
    file.flush()?;
    Ok(())
}

fn sha256_of(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[test]
fn files_go_up_and_down_through_the_panel_with_their_hashes_audited() -> Result<()> {
    let Some(local) = LocalUser::create("ft")? else {
        println!("SKIPPED: password sign-in to sshd needs root (to create a local user)");
        return Ok(());
    };
    let gw = Gateway::start(&[])?;
    gw.allow_loopback()?;
    gw.update_bastion("default", &["--file-transfer", "upload,download"])?;
    let sshd = Sshd::start_with(SshdOptions { password_auth: true, ..Default::default() })?;
    let out = rampart_e2e::artifacts("file-transfer")?;
    let (big, small) = (out.join("big.bin"), out.join("notes.txt"));
    write_random(&big, 200 << 20)?;
    std::fs::write(&small, "notes from the browser\n")?;
    let (big_sha, small_sha) = (sha256_of(&big)?, sha256_of(&small)?);

    let script = rampart_e2e::spawn_browser_script(
        "files.mjs",
        &[
            ("RAMPART_URL", gw.url()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("ARTIFACTS", out.display().to_string()),
            ("BASTION_ID", gw.bastion_id()?),
            ("SSH_PORT", sshd.port.to_string()),
            ("SSH_USER", local.name.clone()),
            ("SSH_PASSWORD", local.password.clone()),
            ("BIG", big.display().to_string()),
            ("SMALL", small.display().to_string()),
        ],
    )?;
    let started = Instant::now();
    let script = rampart_e2e::wait_for_flag(&out.join("transferred"), script, Duration::from_secs(240))?;
    let took = started.elapsed();
    // On the target (this machine), and back in the browser's downloads: the same bytes.
    let home = Path::new("/home").join(&local.name);
    for (name, sha) in [("big.bin", &big_sha), ("notes.txt", &small_sha)] {
        ensure!(&sha256_of(&home.join(name))? == sha, "{name} on the target differs from the one uploaded");
        ensure!(&sha256_of(&out.join(format!("downloaded-{name}")))? == sha, "{name} downloaded differs");
    }
    // The folder's archive holds what the folder held.
    let listed = std::process::Command::new("tar").arg("-tvf").arg(out.join("box.tar")).output()?;
    let listed = String::from_utf8_lossy(&listed.stdout);
    ensure!(
        listed.contains("a.txt") && listed.contains("inner/b.txt") && listed.contains("inner/"),
        "{listed}"
    );
    let inner =
        std::process::Command::new("tar").arg("-xOf").arg(out.join("box.tar")).arg("inner/b.txt").output()?;
    ensure!(inner.stdout == b"two\n", "a file in the archive has its bytes: {:?}", inner.stdout);
    let audit = gw.audit()?;
    for (verb, name, sha) in [
        ("uploaded", "big.bin", &big_sha),
        ("downloaded", "big.bin", &big_sha),
        ("uploaded", "notes.txt", &small_sha),
        ("downloaded", "notes.txt", &small_sha),
    ] {
        ensure!(
            audit.iter().any(|r| r["event"] == "file-transfer"
                && r["result"] == "allowed"
                && r["reason"].as_str().is_some_and(|t| t.starts_with(verb)
                    && t.contains(&format!("/{name}:"))
                    && t.contains(sha.as_str()))),
            "the audit log names the {verb} {name} with its SHA-256"
        );
    }
    ensure!(
        audit.iter().any(|r| r["event"] == "file-transfer"
            && r["reason"].as_str().is_some_and(|t| t.contains("209715200 bytes"))),
        "and its size"
    );
    println!("200 MiB up and down through the panel (debug build) in {:.1} s", took.as_secs_f64());

    gw.update_bastion("default", &["--file-transfer", "download"])?;
    std::fs::write(out.join("download-only"), "yes")?;
    let text = rampart_e2e::finish_browser_script(script, Duration::from_secs(90))?;
    ensure!(
        text.contains("ok - with --file-transfer download, an upload is refused with the reason shown"),
        "{text}"
    );
    ensure!(
        rampart_e2e::audit_has(&gw.audit()?, "file-transfer", "refused", Some("FileTransferOff")),
        "the refused upload is audited with its reason"
    );
    Ok(())
}
