//! Reading and writing YAML. Input is parsed with budgets (bytes, depth, alias expansion) into `Node`s
//! that remember where every value came from, so later steps can point at the line a problem
//! is on; output is written so that every consumer reads each string as a string.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::error::{Diagnostic, Location, Result};

pub use crate::fsio::MAX_FILE_BYTES;
/// Deepest nesting accepted. Kubernetes objects stay far below this.
pub const MAX_DEPTH: usize = 128;

/// An input file held in memory, for locating errors and showing the offending line.
#[derive(Debug)]
pub struct Source {
    pub path: Arc<PathBuf>,
    pub text: String,
}

impl Source {
    /// Reads a file inside `root` (see `fsio`), refusing what is too large or not UTF-8.
    pub fn read(path: &Path, root: &crate::fsio::Root) -> Result<Arc<Source>> {
        let bytes = root.read(path)?;
        Source::from_bytes(path, bytes)
    }

    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Arc<Source>> {
        let text = String::from_utf8(bytes).map_err(|e| {
            let before = e
                .as_bytes()
                .get(..e.utf8_error().valid_up_to())
                .unwrap_or(&[]);
            let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
            let column = before.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
            Diagnostic::new("file is not valid UTF-8")
                .at(Some(Location {
                    file: Arc::new(path.to_path_buf()),
                    line,
                    column,
                }))
                .hint("save the file as UTF-8")
        })?;
        Ok(Arc::new(Source {
            path: Arc::new(path.to_path_buf()),
            text,
        }))
    }

    pub fn from_text(path: &Path, text: String) -> Arc<Source> {
        Arc::new(Source {
            path: Arc::new(path.to_path_buf()),
            text,
        })
    }

    /// A diagnostic at `at` in this file, with the line it points at.
    pub fn error(&self, at: Pos, message: impl Into<String>) -> Diagnostic {
        let mut d = Diagnostic::new(message);
        if at.line == 0 {
            return d.in_file(&self.path);
        }
        d.location = Some(Location::new(&self.path, at.line, at.column));
        d.source_line = self
            .text
            .lines()
            .nth(at.line.saturating_sub(1) as usize)
            .map(|l| l.trim_end_matches('\r').to_string());
        d
    }

    /// Turns a YAML parser error into a located diagnostic.
    pub fn parse_error(&self, err: &serde_saphyr::Error) -> Diagnostic {
        let plain = err.without_snippet().to_string();
        let at = err
            .location()
            .map(|l| Pos {
                line: l.line(),
                column: l.column(),
            })
            .unwrap_or_default();
        let (message, hint) = explain(&plain);
        let d = self.error(at, message);
        match hint {
            Some(h) => d.hint(h),
            None => d,
        }
    }
}

/// The parser's message without its position (we print our own), and a hint where one helps.
/// Limit breaches get a plain-words message instead of the parser's internal one.
fn explain(plain: &str) -> (String, Option<&'static str>) {
    let deep = format!("the YAML nests deeper than {MAX_DEPTH} levels");
    let limits: [(&str, String, &'static str); 5] = [
        (
            "alias replay limit",
            "the YAML expands aliases into too many nodes (an alias bomb?)".into(),
            "write the values out, or use fewer aliases",
        ),
        (
            "Depth",
            deep.clone(),
            "flatten the structure; Kubernetes objects never nest this deep",
        ),
        (
            "recursion limit",
            deep,
            "flatten the structure; Kubernetes objects never nest this deep",
        ),
        (
            "RecordedAnchor",
            "the YAML expands aliases into too many nodes (an alias bomb?)".into(),
            "write the values out, or use fewer aliases",
        ),
        (
            "budget breached",
            "the YAML is larger than canaryplan reads".into(),
            "split it into several files",
        ),
    ];
    if let Some((_, m, h)) = limits.iter().find(|(needle, _, _)| plain.contains(needle)) {
        return (m.clone(), Some(h));
    }
    if let Some(key) = plain
        .split("non-string mapping key `")
        .nth(1)
        .and_then(|r| r.split('`').next())
    {
        return (
            format!("this mapping key is read as a number, boolean or null (`{key}`), not as text"),
            Some("kustomize refuses such keys: quote the key (e.g. `\"0755\": ...`)"),
        );
    }
    // The parser's words for things a user writes, said in ours (never its API's names).
    let ours: [(&str, &str, &'static str); 4] = [
        (
            "multiple YAML documents",
            "the file holds more than one YAML document",
            "keep one plan per file: remove the `---` line and what follows it (a trailing `---` too)",
        ),
        (
            "deserialize null into",
            "this is empty (null) where text is expected",
            "`null`, `~` and an empty value are not text: write a name or value here, quoted if it looks like null",
        ),
        (
            "non-finite float",
            "this number is too large to be a number canaryplan reads",
            "write a whole number, e.g. a weight from 0 to 100",
        ),
        (
            "invalid type: floating point",
            "this is a fractional number where a whole number or text is expected",
            "write a whole number (e.g. `weight: 5`), or quote it if you mean text",
        ),
    ];
    if let Some((_, m, h)) = ours.iter().find(|(needle, _, _)| plain.contains(needle)) {
        return (m.to_string(), Some(h));
    }
    let message = plain
        .find(" at line ")
        .and_then(|i| plain.get(..i))
        .unwrap_or(plain);
    // Advice addressed to the parser's callers ("use Option<String>", "use from_str_...") is
    // not for users.
    let message = message.split("; use ").next().unwrap_or(message);
    let hint = if message.contains("unknown field") {
        Some("check the spelling; the plan format is listed by `canaryplan schema`")
    } else if message.contains("duplicate mapping key") {
        Some("remove one of the two entries")
    } else if message.contains("tabs disallowed") {
        Some("indent YAML with spaces, not tabs")
    } else if message.contains("missing field") {
        Some("add the field; `canaryplan schema` lists what each object needs")
    } else if message.contains("invalid") || message.contains("expected") {
        Some("check the value's type; `canaryplan schema` lists each field's type")
    } else {
        Some(
            "this is not valid YAML: check brackets, quotes and indentation at or just before this point",
        )
    };
    (
        message.replace(", set DuplicateKeyPolicy in Options if acceptable", ""),
        hint,
    )
}

/// A line and column, from 1; line 0 means unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl Pos {
    pub fn of<T>(s: &Spanned<T>) -> Pos {
        Pos {
            line: s.referenced.line(),
            column: s.referenced.column(),
        }
    }
}

/// Events that aliases may replay into a document of `bytes` bytes: as many as the file has
/// bytes (its own size again, at most), and never fewer than `MIN_ALIAS_REPLAY`. A file using
/// anchors for repeated blocks stays far below; an alias bomb (each level repeating the one
/// before) goes past it after a few thousand events.
pub fn alias_replay_budget(bytes: usize) -> usize {
    bytes.max(MIN_ALIAS_REPLAY)
}

/// Replayed events allowed in any file, however small.
pub const MIN_ALIAS_REPLAY: usize = 64 * 1024;

/// Parser options shared by every input: duplicate keys are errors, and the budgets bound the
/// work a hostile file can cause: by its bytes (`MAX_FILE_BYTES`, when it is read), its nesting
/// (`MAX_DEPTH`) and its alias expansion (`alias_replay_budget`). Without the text's size at
/// hand, aliases get the smallest budget (`options_for` gives a text its own).
///
/// Nothing counts nodes, documents, anchors or aliases: each costs at least a byte of input,
/// so the byte limit bounds them, and a real file (10,000 ConfigMaps in one base file, an
/// anchor referenced hundreds of times) must read as kustomize reads it.
pub fn options() -> serde_saphyr::Options {
    options_for(0)
}

/// `options()` for a text of `bytes` bytes.
pub fn options_for(bytes: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_events = usize::MAX;
    budget.max_nodes = usize::MAX;
    budget.max_documents = usize::MAX;
    budget.max_aliases = usize::MAX;
    budget.max_anchors = usize::MAX;
    budget.max_merge_keys = usize::MAX;
    // A count heuristic (aliases against anchors) that refuses one anchor used 10 times per
    // 1 other: the replay budget bounds what aliases expand to instead.
    budget.enforce_alias_anchor_ratio = false;
    let mut opts = serde_saphyr::Options::default();
    opts.budget = Some(budget);
    opts.alias_limits.max_total_replayed_events = alias_replay_budget(bytes);
    opts.with_snippet = false;
    opts
}

/// A YAML value with the position it came from.
#[derive(Debug, Clone)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Spanned<String>, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = Spanned::<Kind>::deserialize(d)?;
        Ok(Node {
            pos: Pos::of(&s),
            kind: s.value,
        })
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Kind, E> {
        Ok(Kind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Kind, E> {
        Ok(Kind::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Kind, E> {
        Ok(Kind::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Kind, E> {
        serde_json::Number::from_f64(v)
            .map(Kind::Number)
            .ok_or_else(|| E::custom("infinite or NaN numbers are not supported"))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Kind, E> {
        Ok(Kind::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Kind, E> {
        Ok(Kind::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Kind, D::Error> {
        Kind::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(x) = a.next_element()? {
            items.push(x);
        }
        Ok(Kind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = a.next_entry()? {
            entries.push((k, v));
        }
        Ok(Kind::Map(entries))
    }
}

impl Node {
    /// The value without positions.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Number(n) => Value::Number(n.clone()),
            Kind::String(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.value.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Where the value at `path` (keys and indices) starts, or the nearest parent that exists.
    pub fn pos_of(&self, path: &[&str]) -> Pos {
        let mut node = self;
        let mut key_pos = self.pos;
        for part in path {
            let next = match &node.kind {
                Kind::Map(entries) => {
                    entries
                        .iter()
                        .find(|(k, _)| k.value == *part)
                        .map(|(k, v)| {
                            key_pos = Pos::of(k);
                            v
                        })
                }
                Kind::Seq(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return key_pos,
            }
        }
        // A null value (`key:`) has no position of its own; point at its key.
        if node.pos.line == 0 {
            key_pos
        } else {
            node.pos
        }
    }
}

/// Parses every document of a YAML stream.
pub fn parse_documents(source: &Source) -> Result<Vec<Node>> {
    serde_saphyr::from_multiple_with_options::<Node>(&source.text, options_for(source.text.len()))
        .map_err(|e| source.parse_error(&e).into())
}

/// Parses every document of a YAML stream into plain values: the fast path, without
/// positions (see `Node` for those). Mapping keys must be strings, as kustomize requires: a
/// plain `0755:`, `1:`, `true:` or `null:` key is refused (kustomize fails on it, and a JSON
/// value would silently turn it into text).
pub fn parse_values(source: &Source) -> Result<Vec<Value>> {
    serde_saphyr::from_multiple_with_options::<Manifest>(
        &source.text,
        options_for(source.text.len()),
    )
    .map(|docs| docs.into_iter().map(|m| m.0).collect())
    .map_err(|e| source.parse_error(&e).into())
}

/// A JSON value read from YAML whose mapping keys are all strings.
struct Manifest(Value);

impl<'de> Deserialize<'de> for Manifest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ManifestVisitor).map(Manifest)
    }
}

struct ManifestVisitor;

impl<'de> Visitor<'de> for ManifestVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite float"))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(ManifestVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::with_capacity(a.size_hint().unwrap_or(0));
        while let Some(Manifest(x)) = a.next_element()? {
            items.push(x);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<Value, A::Error> {
        let mut map = serde_json::Map::new();
        while let Some(StringKey(k)) = a.next_key()? {
            let Manifest(v) = a.next_value()?;
            map.insert(k, v);
        }
        Ok(Value::Object(map))
    }
}

/// A mapping key that YAML reads as a string (not a number, boolean or null).
struct StringKey(String);

impl<'de> Deserialize<'de> for StringKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StringKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<StringKey, E> {
                Ok(StringKey(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<StringKey, E> {
                Ok(StringKey(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<StringKey, E> {
                Err(E::custom(format!("non-string mapping key `{v}`")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<StringKey, E> {
                Err(E::custom(format!("non-string mapping key `{v}`")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<StringKey, E> {
                Err(E::custom(format!("non-string mapping key `{v}`")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<StringKey, E> {
                Err(E::custom(format!("non-string mapping key `{v}`")))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<StringKey, E> {
                Err(E::custom("non-string mapping key `null`"))
            }
            fn visit_none<E: de::Error>(self) -> std::result::Result<StringKey, E> {
                Err(E::custom("non-string mapping key `null`"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a single document into `T`.
pub fn parse_one<T: serde::de::DeserializeOwned>(source: &Source) -> Result<T> {
    serde_saphyr::from_str_with_options::<T>(&source.text, options_for(source.text.len()))
        .map_err(|e| source.parse_error(&e).into())
}

/// Writes one value as a YAML document (without `---`), quoting every string a YAML 1.1
/// reader could take for something else (`yes`, `on`, `0755`, dates...).
pub fn to_yaml(value: &Value) -> String {
    let mut opts = serde_saphyr::SerializerOptions::default();
    // Long single-line strings (image digests, URLs) stay on one line; only strings that
    // contain newlines become `|` blocks.
    opts.folded_wrap_chars = usize::MAX / 2;
    // A `serde_json::Value` always serialises; keep the error visible rather than panic.
    serde_saphyr::to_string_with_options(value, opts)
        .unwrap_or_else(|e| format!("# cannot serialise: {e}\n"))
}

/// Writes objects as one YAML stream.
pub fn to_stream<'a>(values: impl IntoIterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(v));
    }
    out
}

/// A value from the plan with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T: Clone> At<T> {
    pub fn of(s: &Spanned<T>) -> At<T> {
        At {
            value: s.value.clone(),
            pos: Pos::of(s),
        }
    }
}
