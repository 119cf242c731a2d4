//! `htmlChecks()`: the FHIR narrative rules (txt-1, txt-2) checked on the XHTML text without building a
//! DOM: well-formed, root `<div xmlns="http://www.w3.org/1999/xhtml">`, only the basic formatting
//! elements and attributes, no scripts, event handlers, forms or `javascript:` URLs, and some
//! non-whitespace content. A single pass over the text.

/// Why a narrative failed the checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("narrative XHTML at byte {position}: {message}")]
pub struct NarrativeProblem {
    pub position: usize,
    pub message: String,
}

const XHTML_NS: &str = "http://www.w3.org/1999/xhtml";

const ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "address",
    "b",
    "bdo",
    "big",
    "blockquote",
    "br",
    "caption",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "q",
    "samp",
    "small",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "tt",
    "ul",
    "var",
];

const ATTRIBUTES: &[&str] = &[
    "abbr",
    "accesskey",
    "align",
    "alt",
    "axis",
    "bgcolor",
    "border",
    "cellhalign",
    "cellpadding",
    "cellspacing",
    "cellvalign",
    "char",
    "charoff",
    "charset",
    "cite",
    "class",
    "colspan",
    "compact",
    "coords",
    "dir",
    "frame",
    "headers",
    "height",
    "href",
    "hreflang",
    "hspace",
    "id",
    "lang",
    "longdesc",
    "name",
    "nowrap",
    "rel",
    "rev",
    "rowspan",
    "rules",
    "scope",
    "shape",
    "span",
    "src",
    "start",
    "style",
    "summary",
    "tabindex",
    "title",
    "type",
    "valign",
    "value",
    "vspace",
    "width",
    "xml:lang",
    "xmlns",
];

fn problem<T>(position: usize, message: impl Into<String>) -> Result<T, NarrativeProblem> {
    Err(NarrativeProblem {
        position,
        message: message.into(),
    })
}

/// Checks FHIR narrative XHTML (the `Narrative.div` string).
pub fn check_narrative(xhtml: &str) -> Result<(), NarrativeProblem> {
    let b = xhtml.as_bytes();
    let mut i = 0;
    let mut stack: Vec<&str> = Vec::new();
    let mut seen_root = false;
    let mut content = false;
    while i < b.len() {
        if b[i] != b'<' {
            let end = xhtml[i..].find('<').map_or(b.len(), |e| i + e);
            let text = &xhtml[i..end];
            if stack.is_empty() {
                if !text.trim().is_empty() {
                    return problem(i, "text outside the root <div>");
                }
            } else {
                check_entities(text, i)?;
                content |= !text.trim().is_empty();
            }
            i = end;
            continue;
        }
        let rest = &xhtml[i..];
        if rest.starts_with("<!--") {
            match rest.find("-->") {
                Some(e) => i += e + 3,
                None => return problem(i, "unterminated comment"),
            }
            continue;
        }
        if rest.starts_with("<![CDATA[") {
            match rest.find("]]>") {
                Some(e) => {
                    content |= !rest[9..e].trim().is_empty();
                    i += e + 3;
                }
                None => return problem(i, "unterminated CDATA section"),
            }
            continue;
        }
        if rest.starts_with("<?xml") && !seen_root {
            match rest.find("?>") {
                Some(e) => i += e + 2,
                None => return problem(i, "unterminated XML declaration"),
            }
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            return problem(i, "DOCTYPE and processing instructions are not allowed");
        }
        let Some(close) = find_tag_end(rest) else {
            return problem(i, "unterminated tag");
        };
        let tag = &rest[1..close];
        i += close + 1;
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            match stack.pop() {
                Some(open) if open == name => {}
                Some(open) => {
                    return problem(i, format!("</{name}> closes <{open}>"));
                }
                None => return problem(i, format!("unexpected </{name}>")),
            }
            continue;
        }
        let (tag, self_closing) = match tag.strip_suffix('/') {
            Some(t) => (t, true),
            None => (tag, false),
        };
        let name_end = tag
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(tag.len());
        let full_name = &tag[..name_end];
        let name = full_name.strip_prefix("xhtml:").unwrap_or(full_name);
        if stack.is_empty() {
            if seen_root {
                return problem(i, "more than one root element");
            }
            if name != "div" {
                return problem(i, format!("the root element must be <div>, found <{name}>"));
            }
            seen_root = true;
        }
        if !ELEMENTS.contains(&name) {
            return problem(i, format!("element <{name}> is not allowed in narrative"));
        }
        let mut has_ns = false;
        check_attributes(&tag[name_end..], i, &mut has_ns)?;
        if stack.is_empty() && !has_ns {
            return problem(
                i,
                format!("the root <div> must declare xmlns=\"{XHTML_NS}\""),
            );
        }
        if name == "img" {
            content = true;
        }
        if !self_closing {
            stack.push(full_name);
        }
    }
    if let Some(open) = stack.last() {
        return problem(b.len(), format!("<{open}> is not closed"));
    }
    if !seen_root {
        return problem(0, "no root <div>");
    }
    if !content {
        return problem(0, "the narrative has no non-whitespace content");
    }
    Ok(())
}

/// Index of the `>` ending a tag, skipping quoted attribute values.
fn find_tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i),
            (None, '<') => return None,
            _ => {}
        }
    }
    None
}

fn check_attributes(s: &str, pos: usize, has_ns: &mut bool) -> Result<(), NarrativeProblem> {
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let eq = match rest.find('=') {
            Some(eq) => eq,
            None => return problem(pos, format!("attribute without a value: `{}`", rest.trim())),
        };
        let name = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            return problem(pos, format!("attribute `{name}` value is not quoted"));
        };
        let Some(end) = after[1..].find(q) else {
            return problem(pos, format!("attribute `{name}` value is not terminated"));
        };
        let value = &after[1..=end];
        let lname = name.to_ascii_lowercase();
        if lname.starts_with("on") {
            return problem(
                pos,
                format!("event handler attribute `{name}` is not allowed"),
            );
        }
        if lname == "xmlns" {
            if value != XHTML_NS {
                return problem(pos, format!("xmlns must be {XHTML_NS}, found {value}"));
            }
            *has_ns = true;
        } else if !lname.starts_with("xmlns:") && !ATTRIBUTES.contains(&lname.as_str()) {
            return problem(
                pos,
                format!("attribute `{name}` is not allowed in narrative"),
            );
        }
        if matches!(lname.as_str(), "href" | "src" | "longdesc" | "cite") {
            let v = value.trim_start().to_ascii_lowercase();
            if v.starts_with("javascript:") || v.starts_with("vbscript:") {
                return problem(pos, format!("script URL in `{name}`"));
            }
        }
        check_entities(value, pos)?;
        rest = after[end + 2..].trim_start();
    }
    Ok(())
}

/// `&` must start an entity reference (`&amp;`, `&#160;`, `&nbsp;` as HTML allows it).
fn check_entities(text: &str, pos: usize) -> Result<(), NarrativeProblem> {
    let mut rest = text;
    while let Some(a) = rest.find('&') {
        let after = &rest[a + 1..];
        let end = after.find(';');
        let ok = end.is_some_and(|e| {
            let name = &after[..e];
            !name.is_empty()
                && (name.strip_prefix('#').is_some_and(|n| {
                    n.strip_prefix('x')
                        .map_or(n.bytes().all(|c| c.is_ascii_digit()), |h| {
                            h.bytes().all(|c| c.is_ascii_hexdigit())
                        })
                        && n.len() > usize::from(n.starts_with('x'))
                }) || name.bytes().all(|c| c.is_ascii_alphanumeric()))
        });
        if !ok {
            return problem(pos, "bare `&` (use &amp;)");
        }
        rest = &after[end.unwrap_or(0) + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_narrative;

    const NS: &str = "xmlns=\"http://www.w3.org/1999/xhtml\"";

    #[test]
    fn accepts_ordinary_narrative() {
        let ok = format!(
            "<div {NS}><p>Monthly <b>PQOM</b> report &amp; more</p><table border=\"1\"><tr><td>1</td></tr></table><br/></div>"
        );
        assert_eq!(check_narrative(&ok), Ok(()));
        assert_eq!(
            check_narrative(&format!("<div {NS}><img src=\"x.png\" alt=\"\"/></div>")),
            Ok(())
        );
    }

    #[test]
    fn rejects_scripts_handlers_and_bad_structure() {
        for bad in [
            format!("<div {NS}><script>alert(1)</script></div>"),
            format!("<div {NS}><p onclick=\"x()\">a</p></div>"),
            format!("<div {NS}><a href=\"javascript:x()\">a</a></div>"),
            format!("<div {NS}><form>a</form></div>"),
            "<div><p>no namespace</p></div>".to_owned(),
            format!("<p {NS}>not a div</p>"),
            format!("<div {NS}><p>unclosed</div>"),
            format!("<div {NS}>   </div>"),
            format!("<div {NS}>a & b</div>"),
            format!("<div {NS}>a</div><div {NS}>b</div>"),
        ] {
            assert!(check_narrative(&bad).is_err(), "accepted {bad}");
        }
    }
}
