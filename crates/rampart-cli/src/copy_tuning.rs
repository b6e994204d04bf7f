//! Memory copies at full speed on glibc x86-64.
//!
//! glibc copies blocks from 2 KiB up with `rep movsb`. On AMD Zen (this project's benchmark
//! hosts) that instruction runs about 13 times slower when the destination lies 1 to 31 bytes
//! past the source modulo 4 KiB: 2.7-2.9 against 28-42 GB/s for 16 KiB copies, measured with a C
//! loop on the benchmark machine. The data path makes such copies at random, allocation by
//! allocation: rustls copies each record's plaintext behind a 5-byte header, out of buffers
//! that have headers of their own, and back out on the far side. The copies were 31 % of the
//! gateway's and tunnel client's CPU during a download; with glibc's vector loop instead, CPU
//! per GiB fell by a third (BENCHMARKS.md, session 7).
//!
//! The tunable is read only when a process starts, so `rampart` re-executes itself once with it
//! set (the same process ID, arguments and environment otherwise). A `GLIBC_TUNABLES` that
//! already names the tunable is left alone, so a user can set any value, including glibc's own.

/// glibc's tunable: copies of at least this many bytes use `rep movsb`.
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
const TUNABLE: &str = "glibc.cpu.x86_rep_movsb_threshold";

/// Re-executes this program with `rep movsb` off unless the environment already decides it.
/// Returns only if it did not (then nothing changed); call it first, before any thread starts.
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
pub fn tune() {
    use std::os::unix::process::CommandExt;

    let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if current.contains(TUNABLE) {
        return;
    }
    // Far above any copy the data path makes (the largest is a 1 MiB frame), so glibc's vector
    // loop handles all of them; glibc's non-temporal path for huge copies is unaffected.
    let setting = format!("{TUNABLE}=0x100000000");
    let value = if current.is_empty() { setting } else { format!("{current}:{setting}") };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "rampart".into());
    // `exec` returns only on failure (no /proc, say); the program then runs as it is.
    let _ = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", value)
        .exec();
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu")))]
pub fn tune() {}
