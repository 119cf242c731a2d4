//! Lexer and precedence-climbing parser for FHIRPath (N1 grammar), producing the [`Ast`]. Function
//! names are resolved, argument counts checked, type arguments and constant regexes prepared here, so
//! that a malformed invariant is reported once, when it is loaded, with its position.

use super::ast::{Ast, BinOp, Extra, Func, Lit, TypeSpec, Var};
use super::decimal::Decimal;
use super::temporal::Temporal;

/// A syntax error, naming the expression and the byte offset where parsing stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("FHIRPath syntax error at {position} in `{expression}`: {message}")]
pub struct ParseError {
    pub expression: String,
    pub position: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An identifier; `true` when it was written `delimited` (never a keyword then).
    Ident(String, bool),
    Str(String),
    Num(String),
    /// `@...` date or date-time literal text (without `@`).
    DateTime(String),
    /// `@T...` time literal text (without `@T`).
    Time(String),
    /// `%name`
    Ext(String),
    /// `$this`, `$index`, `$total`
    Special(String),
    Sym(&'static str),
    Eof,
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

const SYMBOLS: &[&str] = &[
    "<=", ">=", "!=", "!~", "(", ")", "[", "]", "{", "}", ".", ",", "=", "~", "<", ">", "+", "-",
    "*", "/", "&", "|",
];

impl<'s> Lexer<'s> {
    fn err(&self, pos: usize, msg: impl Into<String>) -> ParseError {
        ParseError {
            expression: self.src.to_owned(),
            position: pos,
            message: msg.into(),
        }
    }

    fn tokens(mut self) -> Result<Vec<(Tok, usize)>, ParseError> {
        let mut out = Vec::new();
        loop {
            self.skip_trivia()?;
            let start = self.pos;
            let Some(c) = self.src[self.pos..].chars().next() else {
                out.push((Tok::Eof, start));
                return Ok(out);
            };
            let tok = if c == '\'' {
                Tok::Str(self.quoted('\'')?)
            } else if c == '`' {
                Tok::Ident(self.quoted('`')?, true)
            } else if c.is_ascii_digit() {
                Tok::Num(self.number())
            } else if c.is_ascii_alphabetic() || c == '_' {
                Tok::Ident(self.word().to_owned(), false)
            } else if c == '%' {
                self.pos += 1;
                let name = match self.src[self.pos..].chars().next() {
                    Some('`') => self.quoted('`')?,
                    Some('\'') => self.quoted('\'')?,
                    Some(c) if c.is_ascii_alphabetic() || c == '_' => self.word().to_owned(),
                    _ => return Err(self.err(start, "expected a name after `%`")),
                };
                Tok::Ext(name)
            } else if c == '$' {
                self.pos += 1;
                let w = self.word();
                if !matches!(w, "this" | "index" | "total") {
                    return Err(self.err(start, format!("unknown special variable `${w}`")));
                }
                Tok::Special(w.to_owned())
            } else if c == '@' {
                self.pos += 1;
                let rest = &self.src[self.pos..];
                // A `.` belongs to the literal only as a fraction of seconds (`@2015.is(Date)`).
                let bytes = rest.as_bytes();
                let mut len = 0;
                while let Some(&ch) = bytes.get(len) {
                    let fraction = ch == b'.' && bytes.get(len + 1).is_some_and(u8::is_ascii_digit);
                    if ch.is_ascii_digit()
                        || matches!(ch, b'-' | b':' | b'T' | b'Z' | b'+')
                        || fraction
                    {
                        len += 1;
                    } else {
                        break;
                    }
                }
                let text = &rest[..len];
                self.pos += len;
                match text.strip_prefix('T') {
                    Some(t) => Tok::Time(t.to_owned()),
                    None => Tok::DateTime(text.to_owned()),
                }
            } else if let Some(sym) = SYMBOLS
                .iter()
                .find(|s| self.src[self.pos..].starts_with(**s))
            {
                self.pos += sym.len();
                Tok::Sym(sym)
            } else {
                return Err(self.err(start, format!("unexpected character `{c}`")));
            };
            out.push((tok, start));
        }
    }

    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            let rest = &self.src[self.pos..];
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("//") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if let Some(body) = trimmed.strip_prefix("/*") {
                match body.find("*/") {
                    Some(end) => self.pos += end + 4,
                    None => return Err(self.err(self.pos, "unterminated comment")),
                }
            } else {
                return Ok(());
            }
        }
    }

    fn word(&mut self) -> &'s str {
        let rest = &self.src[self.pos..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn number(&mut self) -> String {
        let rest = &self.src[self.pos..];
        let mut len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        // A fraction only when a digit follows the dot (`1.toString()` is a call on 1).
        if rest[len..].starts_with('.') && rest[len + 1..].starts_with(|c: char| c.is_ascii_digit())
        {
            len += 1;
            len += rest[len..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - len);
        }
        self.pos += len;
        rest[..len].to_owned()
    }

    fn quoted(&mut self, q: char) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.src[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            if c == q {
                self.pos += i + 1;
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((_, e)) = chars.next() else { break };
            match e {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).map(|(_, c)| c).collect();
                    let ch = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| self.err(start, "bad \\u escape"))?;
                    out.push(ch);
                }
                // `\'`, `\"`, `` \` ``, `\\`, `\/` and (leniently) any other escaped character.
                other => out.push(other),
            }
        }
        Err(self.err(start, "unterminated string or identifier"))
    }
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<(Tok, usize)>,
    i: usize,
}

/// Binary operator precedence, higher binds tighter.
fn binop(tok: &Tok) -> Option<(BinOp, u8)> {
    Some(match tok {
        Tok::Sym("*") => (BinOp::Mul, 10),
        Tok::Sym("/") => (BinOp::Div, 10),
        Tok::Ident(w, false) if w == "div" => (BinOp::IntDiv, 10),
        Tok::Ident(w, false) if w == "mod" => (BinOp::Mod, 10),
        Tok::Sym("+") => (BinOp::Add, 9),
        Tok::Sym("-") => (BinOp::Sub, 9),
        Tok::Sym("&") => (BinOp::Concat, 9),
        Tok::Sym("|") => (BinOp::Union, 7),
        Tok::Sym("<") => (BinOp::Lt, 6),
        Tok::Sym(">") => (BinOp::Gt, 6),
        Tok::Sym("<=") => (BinOp::Le, 6),
        Tok::Sym(">=") => (BinOp::Ge, 6),
        Tok::Sym("=") => (BinOp::Eq, 5),
        Tok::Sym("!=") => (BinOp::Ne, 5),
        Tok::Sym("~") => (BinOp::Equiv, 5),
        Tok::Sym("!~") => (BinOp::NotEquiv, 5),
        Tok::Ident(w, false) if w == "in" => (BinOp::In, 4),
        Tok::Ident(w, false) if w == "contains" => (BinOp::Contains, 4),
        Tok::Ident(w, false) if w == "and" => (BinOp::And, 3),
        Tok::Ident(w, false) if w == "or" => (BinOp::Or, 2),
        Tok::Ident(w, false) if w == "xor" => (BinOp::Xor, 2),
        Tok::Ident(w, false) if w == "implies" => (BinOp::Implies, 1),
        _ => return None,
    })
}

/// Precedence of `is` / `as` (between additive and union).
const TYPE_OP_PREC: u8 = 8;
/// Deepest nesting accepted, so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 200;

const CALENDAR_UNITS: &[&str] = &[
    "year",
    "years",
    "month",
    "months",
    "week",
    "weeks",
    "day",
    "days",
    "hour",
    "hours",
    "minute",
    "minutes",
    "second",
    "seconds",
    "millisecond",
    "milliseconds",
];

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].0
    }
    fn pos(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].1
    }
    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }
    fn err(&self, msg: impl Into<String>) -> ParseError {
        ParseError {
            expression: self.src.to_owned(),
            position: self.pos(),
            message: msg.into(),
        }
    }
    fn expect(&mut self, sym: &'static str) -> Result<(), ParseError> {
        if *self.peek() == Tok::Sym(sym) {
            self.next();
            Ok(())
        } else {
            Err(self.err(format!("expected `{sym}`, found {}", describe(self.peek()))))
        }
    }

    fn expr(&mut self, min_prec: u8, depth: usize) -> Result<Ast, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("expression nested too deeply"));
        }
        let mut lhs = self.unary(depth + 1)?;
        loop {
            let tok = self.peek().clone();
            if let Tok::Ident(w, false) = &tok
                && (w == "is" || w == "as")
                && TYPE_OP_PREC >= min_prec
            {
                self.next();
                let ty = self.type_spec()?;
                lhs = if w == "is" {
                    Ast::Is(Box::new(lhs), ty)
                } else {
                    Ast::As(Box::new(lhs), ty)
                };
                continue;
            }
            let Some((op, prec)) = binop(&tok) else { break };
            if prec < min_prec {
                break;
            }
            self.next();
            let rhs = self.expr(prec + 1, depth + 1)?;
            lhs = Ast::Bin(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn unary(&mut self, depth: usize) -> Result<Ast, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("expression nested too deeply"));
        }
        match self.peek() {
            Tok::Sym("-") => {
                self.next();
                let inner = self.unary(depth + 1)?;
                Ok(match inner {
                    Ast::Lit(Lit::Int(i)) => Ast::Lit(Lit::Int(-i)),
                    Ast::Lit(Lit::Dec(d)) => Ast::Lit(Lit::Dec(d.neg())),
                    Ast::Lit(Lit::Quantity(d, u)) => Ast::Lit(Lit::Quantity(d.neg(), u)),
                    other => Ast::Neg(Box::new(other)),
                })
            }
            Tok::Sym("+") => {
                self.next();
                self.unary(depth + 1)
            }
            _ => self.postfix(depth + 1),
        }
    }

    fn postfix(&mut self, depth: usize) -> Result<Ast, ParseError> {
        let mut node = self.term(depth)?;
        loop {
            match self.peek() {
                Tok::Sym(".") => {
                    self.next();
                    let name = match self.next() {
                        Tok::Ident(n, _) => n,
                        other => {
                            return Err(self.err(format!(
                                "expected a name after `.`, found {}",
                                describe(&other)
                            )));
                        }
                    };
                    node = self.invocation(Some(node), name, depth)?;
                }
                Tok::Sym("[") => {
                    self.next();
                    let idx = self.expr(0, depth + 1)?;
                    self.expect("]")?;
                    node = Ast::Indexer(Box::new(node), Box::new(idx));
                }
                _ => return Ok(node),
            }
        }
    }

    fn invocation(
        &mut self,
        base: Option<Ast>,
        name: String,
        depth: usize,
    ) -> Result<Ast, ParseError> {
        let base = base.map(Box::new);
        if *self.peek() != Tok::Sym("(") {
            return Ok(Ast::Member {
                base,
                name: name.into(),
            });
        }
        let call_pos = self.pos();
        self.next();
        let mut args = Vec::new();
        if *self.peek() != Tok::Sym(")") {
            loop {
                args.push(self.expr(0, depth + 1)?);
                if *self.peek() == Tok::Sym(",") {
                    self.next();
                } else {
                    break;
                }
            }
        }
        self.expect(")")?;
        let func = Func::lookup(&name);
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            return Err(ParseError {
                expression: self.src.to_owned(),
                position: call_pos,
                message: format!(
                    "{name}() takes {}, given {}",
                    if min == max {
                        format!("{min} argument(s)")
                    } else {
                        format!("{min} to {max} arguments")
                    },
                    args.len()
                ),
            });
        }
        let mut extra = None;
        match func {
            Func::OfType | Func::Is | Func::As => {
                let ty = type_of_arg(&args[0]).ok_or_else(|| ParseError {
                    expression: self.src.to_owned(),
                    position: call_pos,
                    message: format!("{name}() needs a type name"),
                })?;
                args.clear();
                extra = Some(Box::new(Extra::Type(ty)));
            }
            Func::Matches | Func::MatchesFull | Func::ReplaceMatches => {
                if let Ast::Lit(Lit::Str(pattern)) = &args[0] {
                    let re = compile_regex(pattern, func == Func::MatchesFull).map_err(|e| {
                        ParseError {
                            expression: self.src.to_owned(),
                            position: call_pos,
                            message: format!("invalid regular expression: {e}"),
                        }
                    })?;
                    extra = Some(Box::new(Extra::Regex(re)));
                }
            }
            _ => {}
        }
        Ok(Ast::Call {
            base,
            func,
            args,
            extra,
        })
    }

    fn term(&mut self, depth: usize) -> Result<Ast, ParseError> {
        let pos = self.pos();
        match self.next() {
            Tok::Ident(w, delimited) => {
                if !delimited {
                    match w.as_str() {
                        "true" => return Ok(Ast::Lit(Lit::Bool(true))),
                        "false" => return Ok(Ast::Lit(Lit::Bool(false))),
                        _ => {}
                    }
                }
                self.invocation(None, w, depth)
            }
            Tok::Str(s) => Ok(Ast::Lit(Lit::Str(s.into()))),
            Tok::Num(text) => self.number(&text, pos),
            Tok::DateTime(text) => Temporal::parse_date_time(&text, true)
                .map(|t| Ast::Lit(Lit::Temporal(t)))
                .ok_or_else(|| self.err_at(pos, format!("invalid date/time literal `@{text}`"))),
            Tok::Time(text) => Temporal::parse_time(&text, true)
                .map(|t| Ast::Lit(Lit::Temporal(t)))
                .ok_or_else(|| self.err_at(pos, format!("invalid time literal `@T{text}`"))),
            Tok::Ext(name) => Ok(Ast::Var(match name.as_str() {
                "resource" => Var::Resource,
                "rootResource" => Var::RootResource,
                "context" => Var::Context,
                "ucum" => Var::Ucum,
                "sct" => Var::Sct,
                "loinc" => Var::Loinc,
                _ => Var::Other(name.into()),
            })),
            Tok::Special(s) => Ok(match s.as_str() {
                "this" => Ast::This,
                "index" => Ast::Index,
                _ => Ast::Total,
            }),
            Tok::Sym("(") => {
                let e = self.expr(0, depth + 1)?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Sym("{") => {
                self.expect("}")?;
                Ok(Ast::Empty)
            }
            other => Err(self.err_at(pos, format!("unexpected {}", describe(&other)))),
        }
    }

    fn number(&mut self, text: &str, pos: usize) -> Result<Ast, ParseError> {
        let value = if text.contains('.') {
            Lit::Dec(Decimal::parse(text).ok_or_else(|| self.err_at(pos, "number out of range"))?)
        } else {
            match text.parse::<i64>() {
                Ok(i) => Lit::Int(i),
                Err(_) => Lit::Dec(
                    Decimal::parse(text).ok_or_else(|| self.err_at(pos, "number out of range"))?,
                ),
            }
        };
        // `10 'mg'`, `4 days`: a quantity literal.
        let unit = match self.peek() {
            Tok::Str(u) => Some(u.clone()),
            Tok::Ident(w, false) if CALENDAR_UNITS.contains(&w.as_str()) => Some(w.clone()),
            Tok::Ident(w, false) if w == "L" => {
                self.next();
                return Ok(Ast::Lit(value));
            }
            _ => None,
        };
        let Some(unit) = unit else {
            return Ok(Ast::Lit(value));
        };
        self.next();
        let d = match value {
            Lit::Int(i) => Decimal::from_i64(i),
            Lit::Dec(d) => d,
            _ => return Err(self.err_at(pos, "bad quantity")),
        };
        Ok(Ast::Lit(Lit::Quantity(d, unit.into())))
    }

    fn type_spec(&mut self) -> Result<TypeSpec, ParseError> {
        let first = match self.next() {
            Tok::Ident(n, _) => n,
            other => {
                return Err(self.err(format!("expected a type name, found {}", describe(&other))));
            }
        };
        if *self.peek() == Tok::Sym(".")
            && let Some((Tok::Ident(second, _), _)) = self.toks.get(self.i + 1)
        {
            let second = second.clone();
            self.next();
            self.next();
            return Ok(TypeSpec {
                namespace: Some(first.into()),
                name: second.into(),
            });
        }
        Ok(TypeSpec {
            namespace: None,
            name: first.into(),
        })
    }

    fn err_at(&self, pos: usize, msg: impl Into<String>) -> ParseError {
        ParseError {
            expression: self.src.to_owned(),
            position: pos,
            message: msg.into(),
        }
    }
}

/// `ofType(FHIR.Quantity)` parses its argument as a path; turn it back into a type name.
fn type_of_arg(arg: &Ast) -> Option<TypeSpec> {
    match arg {
        Ast::Member { base: None, name } => Some(TypeSpec {
            namespace: None,
            name: name.clone(),
        }),
        Ast::Member {
            base: Some(b),
            name,
        } => match &**b {
            Ast::Member {
                base: None,
                name: ns,
            } => Some(TypeSpec {
                namespace: Some(ns.clone()),
                name: name.clone(),
            }),
            _ => None,
        },
        _ => None,
    }
}

/// The spec asks for "single line" mode: `.` matches a newline too. `full` anchors the pattern at
/// both ends (`matchesFull()`).
pub(crate) fn compile_regex(pattern: &str, full: bool) -> Result<regex::Regex, regex::Error> {
    let anchored;
    let pattern = if full {
        anchored = format!("^(?:{pattern})$");
        &anchored
    } else {
        pattern
    };
    regex::RegexBuilder::new(pattern)
        .dot_matches_new_line(true)
        .size_limit(1 << 20)
        .build()
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(n, _) => format!("`{n}`"),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Num(n) => format!("number {n}"),
        Tok::DateTime(d) => format!("@{d}"),
        Tok::Time(d) => format!("@T{d}"),
        Tok::Ext(n) => format!("%{n}"),
        Tok::Special(s) => format!("${s}"),
        Tok::Sym(s) => format!("`{s}`"),
        Tok::Eof => "end of expression".to_owned(),
    }
}

/// Parses an expression into its compiled tree.
pub(crate) fn parse(src: &str) -> Result<Ast, ParseError> {
    let toks = Lexer { src, pos: 0 }.tokens()?;
    let mut p = Parser { src, toks, i: 0 };
    let ast = p.expr(0, 0)?;
    if *p.peek() != Tok::Eof {
        return Err(p.err(format!("unexpected {}", describe(p.peek()))));
    }
    Ok(ast)
}
