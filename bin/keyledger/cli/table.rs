//! A tiny aligned-columns formatter for human output.
//!
//! Cells are padded to the widest cell of their column (counted in characters), columns are
//! separated by two spaces, and lines carry no trailing spaces. Control characters in cells
//! are shown as spaces: names and descriptions come from other users, and an escape sequence
//! in one must not drive the reader's terminal.

use std::io::{self, Write};

/// Rows of text cells, with an optional header row.
#[derive(Debug, Default)]
pub(crate) struct Table {
    header: Option<Vec<String>>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose first line is `header`.
    pub(crate) fn with_header(header: &[&str]) -> Table {
        Table { header: Some(header.iter().map(|h| h.to_string()).collect()), rows: Vec::new() }
    }

    /// A table without a header, e.g. field/value pairs.
    pub(crate) fn new() -> Table {
        Table::default()
    }

    /// Appends one row; rows may be shorter than others.
    pub(crate) fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(|c| clean(&c.into())).collect());
    }

    /// Writes the table, one line per row.
    pub(crate) fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let lines: Vec<&Vec<String>> = self.header.iter().chain(self.rows.iter()).collect();
        let columns = lines.iter().map(|cells| cells.len()).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for cells in &lines {
            for (width, cell) in widths.iter_mut().zip(cells.iter()) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for cells in lines {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if i + 1 < cells.len() {
                    let pad = widths[i] - cell.chars().count();
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// The cell as one line with no control characters.
fn clean(cell: &str) -> String {
    cell.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(table: &Table) -> String {
        let mut out = Vec::new();
        table.write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn columns_align() {
        let mut table = Table::with_header(&["ID", "NAME", "STATE"]);
        table.row(["key_1", "deploy", "enabled"]);
        table.row(["key_22", "ci-bot-é", "disabled"]);
        assert_eq!(
            render(&table),
            "ID      NAME      STATE\n\
             key_1   deploy    enabled\n\
             key_22  ci-bot-é  disabled\n"
        );
    }

    #[test]
    fn no_trailing_spaces_and_ragged_rows() {
        let mut table = Table::new();
        table.row(["DESCRIPTION", ""]);
        table.row(["ID"]);
        assert_eq!(render(&table), "DESCRIPTION\nID\n");
    }

    #[test]
    fn control_characters_are_neutralized() {
        let mut table = Table::new();
        table.row(["a\nb", "\u{1b}[31mred"]);
        assert_eq!(render(&table), "a b   [31mred\n");
    }

    #[test]
    fn empty_table_prints_nothing() {
        assert_eq!(render(&Table::new()), "");
    }
}
