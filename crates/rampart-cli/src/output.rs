//! Printing results as az does: JSON (the default), a table, tab-separated values or nothing,
//! after the `--query` (JMESPath) when one is given.

use std::sync::OnceLock;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::cli::OutputFormat;

static QUERY: OnceLock<Option<String>> = OnceLock::new();

/// The `--query` every printed result goes through (set once, from the command line).
pub fn set_query(query: Option<String>) {
    let _ = QUERY.set(query);
}

/// `value` after the `--query`, if one was given.
fn queried(value: Value) -> Result<Value> {
    let Some(Some(query)) = QUERY.get() else { return Ok(value) };
    let expression =
        jmespath::compile(query).with_context(|| format!("--query '{query}' is not JMESPath"))?;
    let result = expression.search(value).with_context(|| format!("--query '{query}' cannot be applied"))?;
    Ok(serde_json::to_value(&*result)?)
}

/// A scalar as tsv and table cells show it.
fn scalar(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One tsv line: an object's scalar fields in order, a list's items, or the scalar.
fn tsv_line(v: &Value) -> String {
    match v {
        Value::Object(map) => map
            .values()
            .filter(|v| !v.is_object() && !v.is_array())
            .map(scalar)
            .collect::<Vec<_>>()
            .join("\t"),
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join("\t"),
        other => scalar(other),
    }
}

/// Prints `value` as pretty JSON, as tab-separated values, as nothing, or as a table of
/// `columns` taken from its JSON fields (of the query's result's own fields when a `--query`
/// reshaped it).
pub fn print<T: Serialize>(value: &T, format: OutputFormat, columns: &[(&str, &str)]) -> Result<()> {
    let json = queried(serde_json::to_value(value)?)?;
    let reshaped: Vec<(String, String)>;
    let columns: Vec<(&str, &str)> = if QUERY.get().is_some_and(Option::is_some) || columns.is_empty() {
        let first = match &json {
            Value::Array(items) => items.first(),
            other => Some(other),
        };
        reshaped = match first {
            Some(Value::Object(map)) => map.keys().map(|k| (k.clone(), k.clone())).collect(),
            _ => vec![("Result".into(), String::new())],
        };
        reshaped.iter().map(|(t, f)| (t.as_str(), f.as_str())).collect()
    } else {
        columns.to_vec()
    };
    let columns = columns.as_slice();
    match format {
        OutputFormat::Json | OutputFormat::Jsonc => println!("{}", serde_json::to_string_pretty(&json)?),
        OutputFormat::None => {}
        OutputFormat::Yaml => print!("{}", serde_norway::to_string(&json)?),
        OutputFormat::Tsv => match &json {
            Value::Array(rows) => {
                for row in rows {
                    println!("{}", tsv_line(row));
                }
            }
            other => println!("{}", tsv_line(other)),
        },
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

/// A field by dotted path (`sku.name`), as text; the whole value for an empty path.
fn cell(row: &serde_json::Value, path: &str) -> String {
    if path.is_empty() {
        return scalar(row);
    }
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
