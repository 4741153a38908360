//! Scenario 1, size: the static binaries (amd64, and arm64 where built), their `gzip -9 -n` size,
//! and the images where podman has them.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use super::{Ctx, Outcome};
use crate::report::{thousands, Section, Table, TargetRow};

const BINARY_TARGET: u64 = 1_800_000;
const IMAGE_GZ_TARGET: u64 = 1_000_000;
const PODMAN: [&str; 2] = ["podman", "--storage-driver=vfs"];

/// What the ELF headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Elf {
    machine: u16,
    /// No `.symtab` section.
    stripped: bool,
    /// No `PT_INTERP` program header (no dynamic loader).
    static_: bool,
}

/// Reads an ELF64 little-endian file's machine, symbol table and interpreter.
fn elf(bytes: &[u8]) -> Option<Elf> {
    if bytes.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
    let machine = u16_at(0x12)?;
    let (phoff, shoff) = (u64_at(0x20)? as usize, u64_at(0x28)? as usize);
    let (phentsize, phnum) = (u16_at(0x36)? as usize, u16_at(0x38)? as usize);
    let (shentsize, shnum) = (u16_at(0x3a)? as usize, u16_at(0x3c)? as usize);
    const PT_INTERP: u32 = 3;
    const SHT_SYMTAB: u32 = 2;
    let mut static_ = true;
    for i in 0..phnum {
        if u32_at(phoff + i * phentsize)? == PT_INTERP {
            static_ = false;
        }
    }
    let mut stripped = true;
    for i in 0..shnum {
        if u32_at(shoff + i * shentsize + 4)? == SHT_SYMTAB {
            stripped = false;
        }
    }
    Some(Elf {
        machine,
        stripped,
        static_,
    })
}

/// Bytes of `gzip -9 -n` of a file.
fn gzip_size(path: &Path) -> Result<u64, String> {
    let out = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(path)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("gzip: {e}"))?;
    Ok(out.stdout.len() as u64)
}

struct Binary {
    bytes: u64,
    gz: u64,
    elf: Option<Elf>,
}

fn binary(path: &Path) -> Result<Option<Binary>, String> {
    let Ok(data) = std::fs::read(path) else {
        return Ok(None);
    };
    Ok(Some(Binary {
        bytes: data.len() as u64,
        gz: gzip_size(path)?,
        elf: elf(&data),
    }))
}

struct Image {
    bytes: u64,
    save_gz: u64,
    arch: String,
    created: String,
}

fn podman(args: &[&str]) -> Option<String> {
    let o = Command::new(PODMAN[0])
        .args(&PODMAN[1..])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// `podman image inspect` and `podman save | gzip -9 -n | wc -c`, if podman has the image.
fn image(reference: &str) -> Option<Image> {
    let info = podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Size}} {{.Architecture}} {{.Created}}",
        reference,
    ])?;
    let mut it = info.splitn(3, ' ');
    let bytes = it.next()?.parse().ok()?;
    let arch = it.next()?.to_string();
    let created = it.next().unwrap_or("").to_string();
    let mut save = Command::new(PODMAN[0])
        .args(&PODMAN[1..])
        .args(["save", reference])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut gzip = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(save.stdout.take()?)
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut compressed = Vec::new();
    gzip.stdout.take()?.read_to_end(&mut compressed).ok()?;
    let saved = save.wait().ok()?.success();
    let _ = gzip.wait();
    saved.then_some(Image {
        bytes,
        save_gz: compressed.len() as u64,
        arch,
        created: created.chars().take(19).collect(),
    })
}

fn mb(bytes: u64) -> String {
    format!("{} ({:.2} MB)", thousands(bytes), bytes as f64 / 1e6)
}

pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let mut s = Section::new("size", "1. Size", ctx.reproduce("size"));
    s.para("The release binaries as `make build` / `make build-arm64` leave them; `gzip -9 -n` of each; the `FROM scratch` images where podman has them (`podman --storage-driver=vfs image inspect` for the size, `podman save | gzip -9 -n | wc -c` for the compressed size). MB = 10⁶ bytes.");
    let mut t = Table::new(&["Artifact", ">Bytes", ">gzip -9 -n", "Notes"]);
    let mut raw = json!({});
    let mut targets = Vec::new();

    let amd64 = binary(&ctx.bin)?
        .ok_or_else(|| format!("{} not found: run `make build`", ctx.bin.display()))?;
    let arm64 = binary(&ctx.arm64_bin)?;
    for (arch, path, b) in [
        ("amd64", &ctx.bin, Some(&amd64)),
        ("arm64", &ctx.arm64_bin, arm64.as_ref()),
    ] {
        match b {
            Some(b) => {
                let notes = match b.elf {
                    Some(e) => format!(
                        "ELF machine {}, {}, {}",
                        match e.machine {
                            62 => "x86-64".to_string(),
                            183 => "aarch64".to_string(),
                            m => m.to_string(),
                        },
                        if e.static_ {
                            "static (no interpreter)"
                        } else {
                            "DYNAMIC"
                        },
                        if e.stripped {
                            "stripped"
                        } else {
                            "NOT stripped"
                        }
                    ),
                    None => "not an ELF64 file".to_string(),
                };
                t.row([
                    format!("binary {arch} (`{}`)", path.display()),
                    mb(b.bytes),
                    mb(b.gz),
                    notes,
                ]);
                raw[format!("binary_{arch}")] = json!({"bytes": b.bytes, "gzip": b.gz,
                    "stripped": b.elf.map(|e| e.stripped), "static": b.elf.map(|e| e.static_)});
            }
            None => t.row([
                format!("binary {arch}"),
                "not built".to_string(),
                String::new(),
                "`make build-arm64` (needs clang and llvm)".to_string(),
            ]),
        }
    }
    let stripped_static = amd64.elf.is_some_and(|e| e.stripped && e.static_);
    targets.push(TargetRow {
        target: "Static binary ≤ 1.8 MB (amd64, stripped)".into(),
        measured: format!(
            "{:.2} MB ({} bytes{})",
            amd64.bytes as f64 / 1e6,
            thousands(amd64.bytes),
            if stripped_static {
                ""
            } else {
                "; NOT static+stripped"
            }
        ),
        met: Some(amd64.bytes <= BINARY_TARGET && stripped_static),
        reproduce: ctx.reproduce("size"),
    });

    let bin_mtime = std::fs::metadata(&ctx.bin).and_then(|m| m.modified()).ok();
    let mut amd64_image_gz = None;
    for (arch, reference) in [
        ("amd64", ctx.image.clone()),
        ("arm64", format!("{}-arm64", ctx.image)),
    ] {
        match image(&reference) {
            Some(img) => {
                if arch == "amd64" {
                    amd64_image_gz = Some(img.save_gz);
                }
                t.row([
                    format!("image {arch} (`{reference}`)"),
                    mb(img.bytes),
                    mb(img.save_gz),
                    format!("{}, created {}", img.arch, img.created),
                ]);
                raw[format!("image_{arch}")] = json!({"ref": reference, "bytes": img.bytes,
                    "save_gzip": img.save_gz, "created": img.created});
            }
            None => t.row([
                format!("image {arch} (`{reference}`)"),
                "not built".to_string(),
                String::new(),
                if arch == "amd64" {
                    "`make image CONTAINER_TOOL=podman PODMAN_FLAGS=--storage-driver=vfs PODMAN_BUILD_FLAGS=--isolation=chroot`"
                } else {
                    "`make image-arm64 CONTAINER_TOOL=podman PODMAN_FLAGS=--storage-driver=vfs PODMAN_BUILD_FLAGS=--isolation=chroot`"
                }
                .to_string(),
            ]),
        }
    }
    s.table(t);
    if let Some(m) = bin_mtime {
        s.para(format!(
            "The amd64 binary was last built at {} (UTC); an image created before that may hold an older binary (rebuild it with `make image`).",
            stnh_sim::util::rfc3339(m)
        ));
    }
    targets.push(TargetRow {
        target: "Image ≤ 1.0 MB compressed (amd64)".into(),
        measured: match amd64_image_gz {
            Some(gz) => format!(
                "{:.2} MB ({} bytes, gzip -9 of `podman save`)",
                gz as f64 / 1e6,
                thousands(gz)
            ),
            None => "image not built".into(),
        },
        met: amd64_image_gz.map(|gz| gz <= IMAGE_GZ_TARGET),
        reproduce: ctx.reproduce("size"),
    });
    Ok(Outcome {
        section: s,
        targets,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_elf() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let e = elf(&exe).unwrap();
        assert!(e.machine == 62 || e.machine == 183);
        assert!(elf(b"#!/bin/sh\n").is_none());
    }
}
