//! The BENCH lines the guests print (see `tests/programs/bench.h`), read
//! back from the cluster runner's output, where each guest line appears as
//! `  nodeN| LINE`.

use serde::Serialize;
use std::collections::BTreeMap;

/// One BENCH line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// Figure name, e.g. `sem_op`.
    pub name: String,
    /// The node that printed it (0 for the host).
    pub node: u32,
    /// `us`, `MB/s`, `ops/s`, `ops`.
    pub unit: String,
    /// The figure: a median for a latency, else a rate or a count.
    pub value: f64,
    /// Percentiles p0..p100 of a latency distribution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<Vec<f64>>,
    /// Every other `key=value` word.
    pub fields: BTreeMap<String, String>,
}

impl Record {
    /// A numeric field.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.fields.get(key)?.parse().ok()
    }

    /// A field's text.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }
}

/// Parses one line of runner output (or a bare BENCH line, node 0).
pub fn parse_line(line: &str) -> Option<Record> {
    let (node, rest) = match line.trim_start().strip_prefix("node") {
        Some(r) => {
            let (n, l) = r.split_once("| ")?;
            (n.parse().ok()?, l)
        }
        None => (0, line.trim_start()),
    };
    let mut words = rest.strip_prefix("BENCH ")?.split_whitespace();
    let name = words.next()?.to_string();
    let mut fields = BTreeMap::new();
    for w in words {
        let (k, v) = w.split_once('=')?;
        fields.insert(k.to_string(), v.to_string());
    }
    let unit = fields.remove("unit")?;
    let value = fields.remove("value")?.parse().ok()?;
    let q = match fields.remove("q") {
        Some(q) => {
            let v: Vec<f64> = q
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?;
            if v.len() != 101 {
                return None;
            }
            Some(v)
        }
        None => None,
    };
    Some(Record {
        name,
        node,
        unit,
        value,
        q,
        fields,
    })
}

/// Every record in `text`.
pub fn parse(text: &str) -> Vec<Record> {
    text.lines().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_guest_line() {
        let q: Vec<String> = (0..=100).map(|i| format!("{i}.5")).collect();
        let line = format!(
            "  node2| BENCH sem_op unit=us value=700.1 n=4000 mean=710.0 p99=900.0 q={} pair=2-1",
            q.join(",")
        );
        let r = parse_line(&line).expect("parses");
        assert_eq!(r.name, "sem_op");
        assert_eq!(r.node, 2);
        assert_eq!(r.unit, "us");
        assert_eq!(r.value, 700.1);
        assert_eq!(r.q.as_ref().map(Vec::len), Some(101));
        assert_eq!(r.q.as_ref().map(|q| q[100]), Some(100.5));
        assert_eq!(r.num("p99"), Some(900.0));
        assert_eq!(r.field("pair"), Some("2-1"));
    }

    #[test]
    fn ignores_other_lines_and_bad_ones() {
        assert!(parse_line("[2] $ dipcbench sem-op 0x5100 4000").is_none());
        assert!(parse_line("  node2| hello").is_none());
        assert!(parse_line("  node2| BENCH x unit=us").is_none());
        assert!(parse_line("  node2| BENCH x unit=us value=abc").is_none());
        assert!(parse_line("  node2| BENCH x unit=us value=1 q=1,2,3").is_none());
        let r = parse_line("BENCH local_msg unit=ops/s value=123.5 module=loaded").expect("bare");
        assert_eq!((r.node, r.value), (0, 123.5));
        assert_eq!(parse("a\n  node1| BENCH y unit=MB/s value=2\nb").len(), 1);
    }
}
