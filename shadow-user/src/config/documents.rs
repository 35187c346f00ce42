//! Splits YAML text into its documents, each parsed on its own so every error can name the
//! document and the line in the file where it happened.

use serde_yaml_ng::Value;

/// One parsed document of a YAML stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// Index among the stream's non-empty documents, from 1.
    pub number: usize,
    /// Line (from 1) of the document's first line within the whole text.
    pub first_line: usize,
    /// The document's own text.
    pub text: String,
    pub value: Value,
}

/// A document that is not valid YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub document: usize,
    /// Line within the whole text.
    pub line: usize,
    pub message: String,
}

/// Parses every non-empty document of `text`. Lines are numbered from `line_offset + 1`.
pub fn split(text: &str, line_offset: usize) -> Result<Vec<Document>, SyntaxError> {
    let mut documents = Vec::new();
    for (start, segment) in segments(text) {
        let number = documents.len() + 1;
        let first_line = line_offset + start + 1;
        let value: Value = serde_yaml_ng::from_str(&segment).map_err(|err| SyntaxError {
            document: number,
            line: err
                .location()
                .map_or(first_line, |l| first_line + l.line().saturating_sub(1)),
            message: err.to_string(),
        })?;
        documents.push(Document {
            number,
            first_line,
            text: segment,
            value,
        });
    }
    Ok(documents)
}

/// (index of the first line, text) of each document that holds more than comments.
fn segments(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut current = String::new();
    let flush = |start: usize, current: &mut String, out: &mut Vec<(usize, String)>| {
        let meaningful = current.lines().any(|line| {
            !line.trim().is_empty() && !line.trim_start().starts_with('#') && line.trim() != "..."
        });
        if meaningful {
            out.push((start, std::mem::take(current)));
        }
        current.clear();
    };
    for (index, line) in text.lines().enumerate() {
        // Only a marker at column 0 separates documents; indented ones are block content.
        let marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if marker {
            flush(start, &mut current, &mut out);
            start = index + 1;
            // Content after the marker on the same line belongs to the new document.
            let rest = line[3..].trim();
            if !rest.is_empty() && !rest.starts_with('#') {
                start = index;
                current.push_str(rest);
                current.push('\n');
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    flush(start, &mut current, &mut out);
    out
}

/// Line (within the whole text) of the first `field:` key in a document, for error messages;
/// the document's first line when the field is not written in it.
pub fn field_line(document: &Document, field: &str) -> usize {
    document
        .text
        .lines()
        .position(|line| {
            let trimmed = line.trim_start().trim_start_matches("- ");
            trimmed
                .strip_prefix(field)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map_or(document.first_line, |offset| document.first_line + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_their_numbers_and_lines() {
        let text = "# header comment\n---\na: 1\n---\n\nb: 2\nc:\n  - x\n---\n# only a comment\n";
        let docs = split(text, 0).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[0].number, docs[0].first_line), (1, 3));
        assert_eq!((docs[1].number, docs[1].first_line), (2, 5));
        assert_eq!(field_line(&docs[1], "c"), 7);
        assert_eq!(field_line(&docs[1], "missing"), 5);
    }

    #[test]
    fn indented_markers_are_content() {
        let text = "kind: Service\nannotations:\n  config: |\n    ---\n    kind: Mapping\n";
        let docs = split(text, 0).unwrap();
        assert_eq!(docs.len(), 1);
        let config = docs[0].value["annotations"]["config"].as_str().unwrap();
        assert!(config.starts_with("---\nkind: Mapping"));
    }

    #[test]
    fn syntax_errors_name_document_and_line() {
        let text = "a: 1\n---\nb: [unclosed\nc: 2\n";
        let err = split(text, 10).unwrap_err();
        assert_eq!(err.document, 2);
        assert!(err.line >= 13, "{err:?}");
    }
}
