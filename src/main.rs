//! Entry point: parse settings, then hand over to `handler::run`. Exit status 2 means invalid
//! configuration (nothing was done); the daemon otherwise runs until SIGTERM.

use std::process::ExitCode;

use spot_termination_notice_handler::{config, handler, log, signal};

fn main() -> ExitCode {
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
