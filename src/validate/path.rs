//! The FHIRPath location of the element being validated, kept as a stack of borrowed segments
//! and only turned into a string when an issue is raised.

const NO_INDEX: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Seg<'a> {
    name: &'a str,
    index: u32,
    of_type: Option<&'a str>,
}

#[derive(Default)]
pub(crate) struct PathStack<'a> {
    segs: Vec<Seg<'a>>,
}

impl<'a> PathStack<'a> {
    pub fn push(&mut self, name: &'a str, index: Option<usize>, of_type: Option<&'a str>) {
        self.segs.push(Seg {
            name,
            index: index.map_or(NO_INDEX, |i| i as u32),
            of_type,
        });
    }

    pub fn pop(&mut self) {
        self.segs.pop();
    }

    pub fn len(&self) -> usize {
        self.segs.len()
    }

    /// The element names of segments `from..len-1` (no indices, no types): with `from` where a
    /// resource starts, the path of the current element's parent inside that resource.
    pub fn names_from(&self, from: usize) -> impl Iterator<Item = &'a str> + '_ {
        let end = self.segs.len().saturating_sub(1);
        self.segs[from.min(end)..end].iter().map(|s| s.name)
    }

    /// Change the index of the top segment (walking an array).
    pub fn set_index(&mut self, i: usize) {
        if let Some(s) = self.segs.last_mut() {
            s.index = i as u32;
        }
    }

    /// The expression, e.g. `Bundle.entry[1].resource.group[2].code` or
    /// `Observation.value.ofType(Quantity)`.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.segs.len() * 12);
        for (i, s) in self.segs.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(s.name);
            if let Some(t) = s.of_type {
                out.push_str(".ofType(");
                out.push_str(t);
                out.push(')');
            }
            if s.index != NO_INDEX {
                out.push('[');
                out.push_str(&s.index.to_string());
                out.push(']');
            }
        }
        out
    }

    /// The expression with one more child segment (for issues about a missing element).
    pub fn render_child(&self, name: &str) -> String {
        let mut s = self.render();
        s.push('.');
        s.push_str(name);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_indices_and_choice_types() {
        let mut p = PathStack::default();
        p.push("Bundle", None, None);
        p.push("entry", Some(1), None);
        p.push("resource", None, None);
        p.push("group", Some(2), None);
        assert_eq!(p.render(), "Bundle.entry[1].resource.group[2]");
        p.set_index(3);
        assert_eq!(p.render(), "Bundle.entry[1].resource.group[3]");
        p.push("value", None, Some("Quantity"));
        assert_eq!(
            p.render(),
            "Bundle.entry[1].resource.group[3].value.ofType(Quantity)"
        );
        p.pop();
        assert_eq!(
            p.render_child("code"),
            "Bundle.entry[1].resource.group[3].code"
        );
    }
}
