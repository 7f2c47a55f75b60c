//! JSON helpers shared by every role: a serializer that writes the Go
//! reference's exact bytes, and a scanner that finds the top-level members of
//! a received object so a signature can be verified by raw blanking
//! (PROTOCOL §6).

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};
use std::io;
use std::ops::Range;

/// Maximum nesting depth the scanner accepts before refusing a document.
pub const MAX_DEPTH: usize = 64;

/// A `serde_json` formatter that escapes strings the way Go's `encoding/json`
/// does: `<`, `>`, `&`, U+2028 and U+2029 become `\u003c`, `\u003e`,
/// `\u0026`, `\u2028`, `\u2029`, and backspace / form feed use `\u0008` and
/// `\u000c` instead of `\b` / `\f`. Output is compact.
#[derive(Debug, Default, Clone, Copy)]
pub struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            let esc: Option<&[u8]> = match ch {
                '<' => Some(b"\\u003c"),
                '>' => Some(b"\\u003e"),
                '&' => Some(b"\\u0026"),
                '\u{2028}' => Some(b"\\u2028"),
                '\u{2029}' => Some(b"\\u2029"),
                _ => None,
            };
            if let Some(esc) = esc {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                writer.write_all(esc)?;
                start = i + ch.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        let s: Vec<u8> = match char_escape {
            CharEscape::Quote => b"\\\"".to_vec(),
            CharEscape::ReverseSolidus => b"\\\\".to_vec(),
            CharEscape::Solidus => b"\\/".to_vec(),
            CharEscape::Backspace => b"\\u0008".to_vec(),
            CharEscape::FormFeed => b"\\u000c".to_vec(),
            CharEscape::LineFeed => b"\\n".to_vec(),
            CharEscape::CarriageReturn => b"\\r".to_vec(),
            CharEscape::Tab => b"\\t".to_vec(),
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                vec![
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(byte >> 4) as usize],
                    HEX[(byte & 0xf) as usize],
                ]
            }
        };
        writer.write_all(&s)
    }
}

/// Serialises `value` compactly with Go's escaping rules.
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    // Serialising our own plain structs into a Vec cannot fail.
    if value.serialize(&mut ser).is_err() {
        out.clear();
    }
    out
}

/// Serialises ordered members as a compact object with Go's escaping.
pub fn encode_members(members: &[(&str, serde_json::Value)]) -> Vec<u8> {
    let mut out = b"{".to_vec();
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend(to_go_json(k));
        out.push(b':');
        out.extend(to_go_json(v));
    }
    out.push(b'}');
    out
}

/// Why a document could not be scanned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The bytes are not UTF-8.
    #[error("body is not valid UTF-8")]
    NotUtf8,
    /// The bytes are not one JSON value.
    #[error("invalid JSON at byte {0}")]
    Syntax(usize),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("JSON nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The top-level value is not an object.
    #[error("top-level JSON value is not an object")]
    NotAnObject,
}

/// One member of the top-level object: decoded key and byte spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The key after JSON unescaping.
    pub key: String,
    /// Byte range of the member's value in the scanned document.
    pub value: Range<usize>,
}

/// Scans `doc`, validating all of it as JSON, and returns the members of its
/// top-level object in document order.
pub fn top_level_members(doc: &[u8]) -> Result<Vec<Member>, ScanError> {
    scan_top_level(doc, None)
}

/// Like [`top_level_members`] (the whole document is validated) but returns
/// only the members named `name`, without decoding the other names.
pub fn find_top_level(doc: &[u8], name: &str) -> Result<Vec<Member>, ScanError> {
    scan_top_level(doc, Some(name))
}

fn scan_top_level(doc: &[u8], find: Option<&str>) -> Result<Vec<Member>, ScanError> {
    std::str::from_utf8(doc).map_err(|_| ScanError::NotUtf8)?;
    let mut s = Scanner { b: doc, i: 0, find };
    s.ws();
    if s.peek() != Some(b'{') {
        // Still validate so the error says which is wrong.
        s.value(0)?;
        return Err(ScanError::NotAnObject);
    }
    let members = s.object(0, true)?;
    s.ws();
    if s.i != doc.len() {
        return Err(ScanError::Syntax(s.i));
    }
    Ok(members)
}

/// Decodes the JSON string literal at `span` (including its quotes).
pub fn decode_string(doc: &[u8], span: Range<usize>) -> Option<String> {
    let raw = doc.get(span)?;
    // Fast path: no escapes, so the text between the quotes is the value.
    if raw.len() >= 2 && !raw.contains(&b'\\') {
        return std::str::from_utf8(&raw[1..raw.len() - 1])
            .ok()
            .map(str::to_string);
    }
    let text = std::str::from_utf8(raw).ok()?;
    serde_json::from_str::<String>(text).ok()
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    find: Option<&'a str>,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn err<T>(&self) -> Result<T, ScanError> {
        Err(ScanError::Syntax(self.i))
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), ScanError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err()
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return Err(ScanError::TooDeep);
        }
        match self.peek() {
            Some(b'{') => self.object(depth, false).map(|_| ()),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.err(),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), ScanError> {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            self.err()
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), ScanError> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err(),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return self.err();
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.err();
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, ScanError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c) if c.is_ascii_hexdigit() => (c as char).to_digit(16).unwrap_or(0),
                _ => return self.err(),
            };
            v = v * 16 + d;
            self.i += 1;
        }
        Ok(v)
    }

    /// Scans a string literal and returns its byte span (with quotes).
    fn string(&mut self) -> Result<Range<usize>, ScanError> {
        let start = self.i;
        self.expect(b'"')?;
        loop {
            match self.peek() {
                None => return self.err(),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(start..self.i);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            self.i += 1;
                            let unit = self.hex4()?;
                            if (0xDC00..0xE000).contains(&unit) {
                                return self.err(); // lone trailing surrogate
                            }
                            if (0xD800..0xDC00).contains(&unit) {
                                // A leading surrogate must be followed by a trailing one.
                                if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return self.err();
                                }
                                self.i += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return self.err();
                                }
                            }
                        }
                        _ => return self.err(),
                    }
                }
                Some(c) if c < 0x20 => return self.err(),
                Some(_) => self.i += 1,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), ScanError> {
        self.expect(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            self.value(depth + 1)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.err(),
            }
        }
    }

    fn object(&mut self, depth: usize, record: bool) -> Result<Vec<Member>, ScanError> {
        if depth > MAX_DEPTH {
            return Err(ScanError::TooDeep);
        }
        let mut members = Vec::new();
        self.expect(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(members);
        }
        loop {
            self.ws();
            let key_span = self.string()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            let vstart = self.i;
            self.value(depth + 1)?;
            if record {
                if let Some(name) = self.find {
                    let raw = &self.b[key_span.clone()];
                    let plain =
                        raw.len() == name.len() + 2 && &raw[1..raw.len() - 1] == name.as_bytes();
                    let escaped = !plain
                        && raw.contains(&b'\\')
                        && decode_string(self.b, key_span).as_deref() == Some(name);
                    if plain || escaped {
                        members.push(Member {
                            key: name.to_string(),
                            value: vstart..self.i,
                        });
                    }
                } else {
                    let key = match decode_string(self.b, key_span) {
                        Some(k) => k,
                        // Lone surrogate escapes decode to nothing usable; keep a
                        // placeholder that can never equal a protocol field name.
                        None => String::from("\u{fffd}"),
                    };
                    members.push(Member {
                        key,
                        value: vstart..self.i,
                    });
                }
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(members);
                }
                _ => return self.err(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escaping_matches_go_encoder() {
        let v = serde_json::json!("a<b>&c\u{2028}\u{2029}\u{8}\u{c}\n\u{1}é/");
        assert_eq!(
            String::from_utf8(to_go_json(&v)).unwrap(),
            r#""a\u003cb\u003e\u0026c\u2028\u2029\u0008\u000c\n\u0001é/""#
        );
    }

    #[test]
    fn scanner_finds_only_top_level_members() {
        let doc = br#" {"a":{"signature":"x"},"b":"\"signature\":\"y\"","signature":"z"} "#;
        let m = top_level_members(doc).unwrap();
        let keys: Vec<_> = m.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "signature"]);
        assert_eq!(&doc[m[2].value.clone()], br#""z""#);
    }

    #[test]
    fn scanner_rejects_bad_documents() {
        for bad in [
            &b"{"[..],
            b"{\"a\":1,}",
            b"[1]",
            b"{\"a\":01}",
            b"{\"a\":\"\x01\"}",
            b"{} x",
            b"{\"a\":tru}",
            b"\xff",
        ] {
            assert!(top_level_members(bad).is_err(), "{bad:?}");
        }
        assert!(top_level_members(br#"{"a":"\ud800"}"#).is_err());
        assert!(top_level_members(br#"{"a":"\udc00"}"#).is_err());
        assert!(top_level_members(br#"{"a":"\ud83d\ude00"}"#).is_ok());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(top_level_members(deep.as_bytes()), Err(ScanError::TooDeep));
    }

    #[test]
    fn escaped_key_is_decoded() {
        let m = top_level_members(br#"{"sig\u006eature":"q"}"#).unwrap();
        assert_eq!(m[0].key, "signature");
    }
}
