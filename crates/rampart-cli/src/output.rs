//! Printing results as JSON (the default, like az) or as a table.

use anyhow::Result;
use serde::Serialize;

use crate::cli::OutputFormat;

/// Prints `value` as pretty JSON, or as a table of `columns` taken from its JSON fields.
pub fn print<T: Serialize>(value: &T, format: OutputFormat, columns: &[(&str, &str)]) -> Result<()> {
    let json = serde_json::to_value(value)?;
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&json)?),
        OutputFormat::Table => {
            let rows: Vec<&serde_json::Value> = match &json {
                serde_json::Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            let cells: Vec<Vec<String>> =
                rows.iter().map(|row| columns.iter().map(|(_, field)| cell(row, field)).collect()).collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, (title, _))| {
                    cells.iter().map(|r| r[i].len()).chain([title.len()]).max().unwrap_or(0)
                })
                .collect();
            let line = |values: Vec<String>| {
                let padded: Vec<String> =
                    values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
                println!("{}", padded.join("  ").trim_end());
            };
            line(columns.iter().map(|(t, _)| t.to_string()).collect());
            line(widths.iter().map(|w| "-".repeat(*w)).collect());
            for row in cells {
                line(row);
            }
        }
    }
    Ok(())
}

/// A field by dotted path (`sku.name`), as text.
fn cell(row: &serde_json::Value, path: &str) -> String {
    let mut v = row;
    for key in path.split('.') {
        match v.get(key) {
            Some(next) => v = next,
            None => return String::new(),
        }
    }
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string()))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}
