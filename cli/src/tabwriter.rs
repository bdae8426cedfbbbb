//! Column alignment as Go's `text/tabwriter` does it, so tables line up exactly like
//! docker's: docker's formatter writes its tables through
//! `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)` (minimum width 10, padding 3), and
//! `docker top` through one with minimum width 20.
//!
//! The rules: a cell is text terminated by a tab; the text after a line's last tab is
//! not a cell and is never padded. A column is a block of consecutive lines that all
//! have a cell at that index; its width is the widest cell plus the padding, but at
//! least the minimum width. Widths count characters (runes), as Go does.

/// docker's table writer settings.
pub const DOCKER_TABLE: Settings = Settings {
    min_width: 10,
    padding: 3,
};

/// `docker top`'s writer settings.
pub const DOCKER_TOP: Settings = Settings {
    min_width: 20,
    padding: 3,
};

/// The minimum cell width and the padding added to the widest cell of a column.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub min_width: usize,
    pub padding: usize,
}

/// Aligns `text` (lines of tab-separated cells) and returns it with spaces instead of
/// tabs. A last line without a newline stays without one.
pub fn format(text: &str, settings: Settings) -> String {
    let mut lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    // `split` yields a last, empty piece after a final newline: it is no line.
    let ends_with_newline = text.ends_with('\n');
    if ends_with_newline {
        lines.pop();
    }
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, settings, &mut out);
    if !ends_with_newline && out.ends_with('\n') {
        out.pop();
    }
    out
}

fn width(cell: &str) -> usize {
    cell.chars().count()
}

/// Go's `Writer.format`: lays out lines `line0..line1`, whose first `widths.len()`
/// columns are already sized, finding the blocks of the next column recursively.
fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    settings: Settings,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        // A block of this column starts here: print the lines before it as they are.
        write_lines(&lines[line0..this], widths, out);
        line0 = this;
        let mut w = settings.min_width;
        while this < line1 && column + 1 < lines[this].len() {
            w = w.max(width(lines[this][column]) + settings.padding);
            this += 1;
        }
        widths.push(w);
        format_block(lines, line0, this, widths, settings, out);
        widths.pop();
        line0 = this;
    }
    write_lines(&lines[line0..line1], widths, out);
}

fn write_lines(lines: &[Vec<&str>], widths: &[usize], out: &mut String) {
    for line in lines {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() {
                if let Some(w) = widths.get(j) {
                    out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(cell))));
                }
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_take_the_widest_cell_plus_padding_but_at_least_the_minimum() {
        let t = "CONTAINER ID\tIMAGE\tPORTS\tNAMES\n0123456789ab\tbusybox\t\tweb\n";
        assert_eq!(
            format(t, DOCKER_TABLE),
            "CONTAINER ID   IMAGE     PORTS     NAMES\n\
             0123456789ab   busybox             web\n"
        );
    }

    #[test]
    fn the_last_cell_is_never_padded_and_counts_characters() {
        assert_eq!(
            format(
                "a\tb\nccc…\td\n",
                Settings {
                    min_width: 0,
                    padding: 1
                }
            ),
            "a    b\nccc… d\n"
        );
        // An empty last cell leaves the padding of the cell before it, as Go does.
        assert_eq!(
            format(
                "a\t\nbb\tc",
                Settings {
                    min_width: 0,
                    padding: 1
                }
            ),
            "a  \nbb c"
        );
    }

    #[test]
    fn a_line_without_the_column_ends_its_block() {
        // Go: the block of column 0 is broken by the line with a single cell.
        let t = "a\tb\nxxxxxxxx\nlonger cell\tc\n";
        assert_eq!(
            format(
                t,
                Settings {
                    min_width: 0,
                    padding: 2
                }
            ),
            "a  b\nxxxxxxxx\nlonger cell  c\n"
        );
        // Nested blocks: column 1 is sized over the lines that have it.
        let t = "a\tb\tc\nd\te\nf\tgggg\th\n";
        assert_eq!(
            format(
                t,
                Settings {
                    min_width: 0,
                    padding: 1
                }
            ),
            "a b c\nd e\nf gggg h\n"
        );
    }
}
