//! Entry point: parse settings, then hand over to `handler::run`. Exit status 2 means invalid
//! configuration (nothing was done); the daemon otherwise runs until SIGTERM.

use std::process::ExitCode;

use spot_termination_notice_handler::{config, handler, log, metadata, signal};

/// Runs before Rust's runtime starts (an `.init_array` entry, as C constructors do): gives
/// SIGSEGV and SIGBUS a handler of our own, so the runtime installs none and gives no thread an
/// alternate signal stack. minreq runs every metadata request on a new thread; without the
/// per-thread signal stack each thread costs two `mmap`s, `mprotect`s and `munmap`s and three
/// `sigaltstack` calls fewer (BENCHMARKS.md, idle cost). The handler returns at once with the
/// default restored (`SA_RESETHAND`), so a fault repeats and kills the process as it would
/// have; only the runtime's "has overflowed its stack" line is lost (`panic = "abort"`).
#[used]
#[link_section = ".init_array"]
static NO_ALTSTACK: extern "C" fn() = no_altstack;

extern "C" fn no_altstack() {
    extern "C" fn once(_: libc::c_int) {}
    // SAFETY: sigaction with a zeroed struct, a valid handler and no old action to read.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = once as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESETHAND | libc::SA_NODEFER;
        libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

fn main() -> ExitCode {
    metadata::small_default_stacks();
    signal::install();
    let env = |k: &str| std::env::var(k).ok();
    // Even a configuration error is logged in the format asked for.
    log::set_json(env("LOG_FORMAT").is_some_and(|f| f.trim().eq_ignore_ascii_case("json")));
    let result =
        config::parse(std::env::args_os().skip(1).collect(), &env).and_then(|mode| match mode {
            config::Mode::Help => {
                print!("{}", config::help());
                Ok(())
            }
            config::Mode::Version => {
                println!("{}", config::version_line());
                Ok(())
            }
            config::Mode::Run(cfg) => handler::run(*cfg),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::log(log::Level::Error, &e.to_string(), &[]);
            // Kubernetes shows this file in `kubectl describe pod` (it exists only in a pod).
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/termination-log")
                .and_then(|mut f| std::io::Write::write_all(&mut f, e.to_string().as_bytes()));
            ExitCode::from(2)
        }
    }
}
