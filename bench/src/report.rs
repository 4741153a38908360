//! The Markdown of `BENCHMARKS.md` (also printed to stdout): sections of paragraphs, lists and
//! tables, and the summary of targets.

/// A Markdown table. A header starting with `>` marks a right-aligned (numeric) column.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers
                .iter()
                .map(|h| h.trim_start_matches('>').to_string())
                .collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are left empty, extra ones dropped).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut r: Vec<String> = cells.into_iter().map(Into::into).collect();
        r.resize(self.headers.len(), String::new());
        self.rows.push(r);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Renders with padded columns, so the text reads well in a terminal too.
    pub fn render(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let width = |s: &str| s.chars().count();
        let mut w: Vec<usize> = self.headers.iter().map(|h| width(h).max(3)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(width(&cell(c)));
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let c = cell(c);
                    let pad = " ".repeat(w[i] - width(&c));
                    if self.right[i] {
                        format!("{pad}{c}")
                    } else {
                        format!("{c}{pad}")
                    }
                })
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let mut out = line(&self.headers);
        let rule: Vec<String> = w
            .iter()
            .zip(&self.right)
            .map(|(n, right)| {
                if *right {
                    format!("{}:", "-".repeat(n - 1))
                } else {
                    "-".repeat(*n)
                }
            })
            .collect();
        out.push_str(&format!("| {} |\n", rule.join(" | ")));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// A piece of a section.
#[derive(Debug, Clone)]
pub enum Block {
    Para(String),
    List(Vec<String>),
    Table(Table),
}

/// One scenario's part of the report.
#[derive(Debug, Clone)]
pub struct Section {
    /// The `--only` name.
    pub id: &'static str,
    pub title: String,
    /// The commands that reproduce every row of this section.
    pub reproduce: String,
    pub blocks: Vec<Block>,
}

impl Section {
    pub fn new(id: &'static str, title: &str, reproduce: String) -> Section {
        Section {
            id,
            title: title.to_string(),
            reproduce,
            blocks: Vec::new(),
        }
    }

    pub fn para(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Para(text.into()));
    }

    pub fn list(&mut self, items: Vec<String>) {
        if !items.is_empty() {
            self.blocks.push(Block::List(items));
        }
    }

    pub fn table(&mut self, t: Table) {
        if !t.is_empty() {
            self.blocks.push(Block::Table(t));
        }
    }

    pub fn render(&self) -> String {
        let mut out = format!("## {}\n\n", self.title);
        out.push_str(&format!(
            "Reproduce every row below: {}\n\n",
            self.reproduce
        ));
        for b in &self.blocks {
            match b {
                Block::Para(p) => out.push_str(&format!("{p}\n\n")),
                Block::List(items) => {
                    for i in items {
                        out.push_str(&format!("- {i}\n"));
                    }
                    out.push('\n');
                }
                Block::Table(t) => {
                    out.push_str(&t.render());
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// One project target and where we stand.
#[derive(Debug, Clone)]
pub struct TargetRow {
    pub target: String,
    pub measured: String,
    /// `None`: not measured in this run.
    pub met: Option<bool>,
    /// The command that reproduces the measurement.
    pub reproduce: String,
}

/// The summary table.
pub fn targets_table(rows: &[TargetRow]) -> Table {
    let mut t = Table::new(&["Target", "Measured", "Met", "Reproduce"]);
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        t.row([
            r.target.clone(),
            r.measured.clone(),
            met.to_string(),
            r.reproduce.clone(),
        ]);
    }
    t
}

/// `1,704,648`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// KiB as `1,234 KiB (1.21 MiB)`.
pub fn kib(kb: u64) -> String {
    format!("{} KiB ({:.2} MiB)", thousands(kb), kb as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_as_markdown() {
        let mut t = Table::new(&["Name", ">Value"]);
        t.row(["a|b", "1"]);
        t.row(["long name"]);
        assert_eq!(
            t.render(),
            "| Name      | Value |\n| --------- | ----: |\n| a\\|b      |     1 |\n| long name |       |\n"
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(thousands(1_704_648), "1,704,648");
        assert_eq!(thousands(999), "999");
        assert_eq!(kib(2048), "2,048 KiB (2.00 MiB)");
    }
}
