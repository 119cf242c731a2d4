use super::*;

fn tree(j: &str) -> Tree<'_> {
    Tree::parse(j.as_bytes()).unwrap_or_else(|e| panic!("{j}: {e}"))
}

fn err(j: &str) -> ParseError {
    err_bytes(j.as_bytes())
}

fn err_bytes(j: &[u8]) -> ParseError {
    match Tree::parse(j) {
        Ok(_) => panic!("{} parsed", String::from_utf8_lossy(j)),
        Err(e) => e,
    }
}

/// The tree read back as a `serde_json::Value` (numbers through their text).
fn to_serde(n: N<'_>) -> serde_json::Value {
    use serde_json::Value as V;
    match n.kind() {
        Kind::Null => V::Null,
        Kind::True => V::Bool(true),
        Kind::False => V::Bool(false),
        Kind::Number => serde_json::from_str(n.raw_number().unwrap()).unwrap(),
        Kind::String => V::String(n.as_str().unwrap().to_owned()),
        Kind::Array => V::Array(n.items().map(to_serde).collect()),
        Kind::Object => V::Object(
            n.members()
                .map(|(k, v)| (k.to_owned(), to_serde(v)))
                .collect(),
        ),
    }
}

#[test]
fn lays_out_members_in_document_order() {
    let t = tree(r#" {"a":[1,{"b":"x"},null],"c":true,"d":1.50, "e": -0.0e+5} "#);
    let r = t.root();
    let keys: Vec<_> = r.members().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a", "c", "d", "e"]);
    let a = r.get("a").unwrap();
    assert!(a.is_array());
    assert_eq!(a.len(), 3);
    let kinds: Vec<_> = a.items().map(|x| x.kind()).collect();
    assert_eq!(kinds, [Kind::Number, Kind::Object, Kind::Null]);
    assert_eq!(
        a.items().nth(1).unwrap().get("b").unwrap().as_str(),
        Some("x")
    );
    assert_eq!(r.get("c").unwrap().as_bool(), Some(true));
    assert_eq!(r.get("d").unwrap().raw_number(), Some("1.50"));
    assert_eq!(r.get("e").unwrap().raw_number(), Some("-0.0e+5"));
    assert_eq!(r.get("d").unwrap().source(), "1.50");
    assert!(r.get("zz").is_none());
    assert!(a.get("a").is_none());
    assert_eq!(a.items().nth(1).unwrap().source(), r#"{"b":"x"}"#);
}

#[test]
fn escapes_are_decoded() {
    let t = tree(r#"{"a\"b":"x\\y\/z\n\t\u00e9\ud83d\ude00 end","plain":"caf\u00e9"}"#);
    let r = t.root();
    let (k, v) = r.members().next().unwrap();
    assert_eq!(k, "a\"b");
    assert_eq!(v.as_str(), Some("x\\y/z\n\té😀 end"));
    assert_eq!(r.get("plain").unwrap().as_str(), Some("café"));
    // Raw UTF-8 stays as it is.
    assert_eq!(tree("\"Zoë\"").root().as_str(), Some("Zoë"));
}

#[test]
fn long_strings_cross_the_word_scan() {
    let s = format!("\"{}\\\"{}\"", "a".repeat(37), "b".repeat(29));
    assert_eq!(
        tree(&s).root().as_str().unwrap(),
        format!("{}\"{}", "a".repeat(37), "b".repeat(29))
    );
}

#[test]
fn invalid_json_is_refused_with_its_position() {
    for (j, what, line, column) in [
        ("{\"a\":1,}", "property name", 1, 8),
        ("{\"a\" 1}", "':'", 1, 6),
        ("[1 2]", "',' or ']'", 1, 4),
        ("{\"a\":01}", "leading zeros", 1, 7),
        ("{\"a\":1.}", "decimal point", 1, 8),
        ("{\"a\":1e}", "exponent", 1, 8),
        ("{\"a\":tru}", "bare words", 1, 6),
        ("{\"a\":\"x\ny\"}", "control character", 1, 8),
        ("{\"a\":\"\\x\"}", "invalid escape", 1, 7),
        ("{\"a\":\"\\ud800\"}", "low surrogate", 1, 7),
        ("{\"a\":\"\\u+041\"}", "four hex digits", 1, 7),
        ("{\"a\":\"x", "inside a string", 1, 8),
        ("{\n  \"a\": 1\n} x", "after the JSON value", 3, 3),
        ("", "value was expected", 1, 1),
        ("{\"a\":-}", "digit", 1, 7),
    ] {
        let e = err(j);
        assert!(e.message.contains(what), "{j}: {e}");
        assert_eq!((e.line, e.column), (line, column), "{j}: {e}");
    }
    assert!(err_bytes(b"\"\xff\"").message.contains("UTF-8"));
    let deep = "[".repeat(300) + &"]".repeat(300);
    assert!(err(&deep).message.contains("nests deeper"));
    let ok = "[".repeat(200) + &"]".repeat(200);
    assert!(Tree::parse(ok.as_bytes()).is_ok());
}

#[test]
fn agrees_with_serde_json_on_every_conformance_resource() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = 0;
    for dir in ["profiles", "definitions/r4", "../shared/conformance"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "json") {
                    let bytes = std::fs::read(&p).unwrap();
                    let theirs = serde_json::from_slice::<serde_json::Value>(&bytes);
                    let ours = Tree::parse(&bytes);
                    match (theirs, ours) {
                        (Ok(a), Ok(t)) => {
                            assert_eq!(to_serde(t.root()), a, "{}", p.display());
                            files += 1;
                        }
                        (Err(_), Err(_)) => {}
                        (a, b) => panic!(
                            "{}: serde_json {:?}, tree {:?}",
                            p.display(),
                            a.err(),
                            b.err().map(|e| e.to_string())
                        ),
                    }
                }
            }
        }
    }
    assert!(files > 100, "only {files} files compared");
}

#[test]
fn equal_subtrees_compare_same() {
    let t = tree(
        r#"[{"coding":[{"system":"s","code":"c"}]},{"coding":[{"system":"s","code":"c"}]},
            {"coding":[{"system":"s","code":"d"}]},{"coding":[{"code":"c","system":"s"}]},
            {"coding":[{"system":"s","code":"c"}],"text":"t"},{"coding":[{"system":"s","code":"c","n":1.0}]},
            {"coding":[{"system":"s","code":"c","n":1.00}]}]"#,
    );
    let x: Vec<_> = t.root().items().collect();
    assert!(x[0].same(&x[1]));
    for other in &x[2..] {
        assert!(!x[0].same(other));
    }
    assert!(!x[5].same(&x[6]), "1.0 and 1.00 are different decimals");
    // The memo reuses only the same text: the same string written another way is walked again.
    let escaped = tree(r#"[{"code":"é"},{"code":"\u00e9"},{"code":"é"}]"#);
    let y: Vec<_> = escaped.root().items().collect();
    assert!(!y[0].same(&y[1]));
    assert!(y[0].same(&y[2]));
}

#[test]
fn values_with_extensions_or_companions_are_not_extension_free() {
    let t = tree(
        r#"[{"extension":[{"url":"u","valueString":"x"}]},{"code":"c","_code":{"id":"x"}},
            {"coding":[{"modifierExtension":[]}]},{"code":"c"}]"#,
    );
    let x: Vec<_> = t.root().items().collect();
    assert!(!x[0].extension_free());
    assert!(!x[1].extension_free());
    assert!(!x[2].extension_free());
    assert!(x[3].extension_free());
}

#[test]
fn to_value_is_the_received_text() {
    let t = tree(r#"{"period":{"start":"2026-10-01","end":"2026-10-31"},"n":1.50}"#);
    let v = t.root().get("period").unwrap().to_value();
    assert_eq!(
        sonic_rs::to_string(&v).unwrap(),
        r#"{"start":"2026-10-01","end":"2026-10-31"}"#
    );
    let n = t.root().get("n").unwrap().to_value();
    assert_eq!(sonic_rs::to_string(&n).unwrap(), "1.50");
}

#[test]
fn strings_of_every_length_around_the_scan_widths() {
    // The scan reads 16 bytes (8 on other targets, and at the end of the input) at a time: a
    // quote, escape, control character or end of input at every offset in and across them.
    for n in 0..50 {
        let a = "a".repeat(n);
        assert_eq!(tree(&format!("\"{a}\"")).root().as_str(), Some(a.as_str()));
        let j = format!("[\"{a}\",\"é{a}\u{7f}\",{}]", "1".repeat(20));
        let t = tree(&j);
        let items: Vec<_> = t.root().items().collect();
        assert_eq!(items[0].as_str(), Some(a.as_str()));
        assert_eq!(items[1].as_str(), Some(format!("é{a}\u{7f}").as_str()));
        assert_eq!(
            tree(&format!("\"{a}\\n{a}\\\"\"")).root().as_str(),
            Some(format!("{a}\n{a}\"").as_str())
        );
        let e = err(&format!("[\"{a}\u{1f}{a}\"]"));
        assert!(e.message.contains("control character"), "{n}: {e}");
        assert_eq!((e.line, e.column), (1, n + 3), "{n}");
        let e = err(&format!("\"{a}"));
        assert!(e.message.contains("inside a string"), "{n}: {e}");
        assert_eq!((e.line, e.column), (1, n + 2), "{n}");
    }
}

#[test]
fn nodes_and_spans_after_the_one_pass_parse() {
    let j = r#"{"a":{},"b":[],"c":[{}, [ ] ,"x"],"d":{"e":null}}"#;
    let t = tree(j);
    assert_eq!(t.len(), 9);
    let r = t.root();
    assert_eq!(r.source(), j);
    assert_eq!(r.len(), 4);
    let c = r.get("c").unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(c.source(), r#"[{}, [ ] ,"x"]"#);
    let spans: Vec<_> = c.items().map(|x| (x.source(), x.len())).collect();
    assert_eq!(spans, [("{}", 0), ("[ ]", 0), ("\"x\"", 0)]);
    assert_eq!(r.get("a").unwrap().len(), 0);
    assert!(r.get("d").unwrap().get("e").unwrap().is_null());
    assert_eq!(r.get("d").unwrap().source(), r#"{"e":null}"#);
}
