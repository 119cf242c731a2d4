//! The compiled form of an expression: a tree whose function calls are already resolved to [`Func`]
//! and whose constant regexes and type specifiers are prepared, so evaluation does no name lookups.

use super::decimal::Decimal;
use super::temporal::Temporal;

/// A literal value.
#[derive(Debug, Clone)]
pub(crate) enum Lit {
    Bool(bool),
    Str(Box<str>),
    Int(i64),
    Dec(Decimal),
    Temporal(Temporal),
    Quantity(Decimal, Box<str>),
}

/// `%name` environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Var {
    Resource,
    RootResource,
    Context,
    Ucum,
    Sct,
    Loinc,
    /// `%"vs-name"` / `%"ext-name"` style and any other constant: looked up in the context.
    Other(Box<str>),
}

/// A type specifier such as `Quantity`, `FHIR.string` or `System.Integer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeSpec {
    pub namespace: Option<Box<str>>,
    pub name: Box<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Union,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

/// Constant data a call needs, prepared at compile time.
#[derive(Debug)]
pub(crate) enum Extra {
    Type(TypeSpec),
    Regex(regex::Regex),
}

#[derive(Debug)]
pub(crate) enum Ast {
    /// `{}`
    Empty,
    Lit(Lit),
    This,
    Index,
    Total,
    Var(Var),
    /// Navigation to a child element; `base: None` navigates from the focus.
    Member {
        base: Option<Box<Ast>>,
        name: Box<str>,
    },
    Call {
        base: Option<Box<Ast>>,
        func: Func,
        args: Vec<Ast>,
        extra: Option<Box<Extra>>,
    },
    Indexer(Box<Ast>, Box<Ast>),
    Neg(Box<Ast>),
    Bin(BinOp, Box<Ast>, Box<Ast>),
    Is(Box<Ast>, TypeSpec),
    As(Box<Ast>, TypeSpec),
}

macro_rules! funcs {
    ($($variant:ident = $name:literal ($min:literal, $max:literal)),* $(,)?) => {
        /// A function the evaluator knows, or `Unknown` (parsed, reported at evaluation).
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub(crate) enum Func {
            $($variant,)*
            Unknown(Box<str>),
        }

        impl Func {
            pub(crate) fn lookup(name: &str) -> Func {
                match name {
                    $($name => Func::$variant,)*
                    other => Func::Unknown(other.into()),
                }
            }

            /// Inclusive bounds on the number of arguments.
            pub(crate) fn arity(&self) -> (usize, usize) {
                match self {
                    $(Func::$variant => ($min, $max),)*
                    Func::Unknown(_) => (0, usize::MAX),
                }
            }

            pub(crate) fn name(&self) -> &str {
                match self {
                    $(Func::$variant => $name,)*
                    Func::Unknown(n) => n,
                }
            }
        }
    };
}

funcs! {
    Empty = "empty"(0, 0),
    Exists = "exists"(0, 1),
    All = "all"(1, 1),
    AllTrue = "allTrue"(0, 0),
    AnyTrue = "anyTrue"(0, 0),
    AllFalse = "allFalse"(0, 0),
    AnyFalse = "anyFalse"(0, 0),
    SubsetOf = "subsetOf"(1, 1),
    SupersetOf = "supersetOf"(1, 1),
    Count = "count"(0, 0),
    Distinct = "distinct"(0, 0),
    IsDistinct = "isDistinct"(0, 0),
    Where = "where"(1, 1),
    Select = "select"(1, 1),
    Repeat = "repeat"(1, 1),
    OfType = "ofType"(1, 1),
    Single = "single"(0, 0),
    First = "first"(0, 0),
    Last = "last"(0, 0),
    Tail = "tail"(0, 0),
    Skip = "skip"(1, 1),
    Take = "take"(1, 1),
    Intersect = "intersect"(1, 1),
    Exclude = "exclude"(1, 1),
    Union = "union"(1, 1),
    Combine = "combine"(1, 1),
    Iif = "iif"(2, 3),
    ToBoolean = "toBoolean"(0, 0),
    ConvertsToBoolean = "convertsToBoolean"(0, 0),
    ToInteger = "toInteger"(0, 0),
    ConvertsToInteger = "convertsToInteger"(0, 0),
    ToDecimal = "toDecimal"(0, 0),
    ConvertsToDecimal = "convertsToDecimal"(0, 0),
    ToStr = "toString"(0, 0),
    ConvertsToString = "convertsToString"(0, 0),
    ToDate = "toDate"(0, 0),
    ConvertsToDate = "convertsToDate"(0, 0),
    ToDateTime = "toDateTime"(0, 0),
    ConvertsToDateTime = "convertsToDateTime"(0, 0),
    ToTime = "toTime"(0, 0),
    ConvertsToTime = "convertsToTime"(0, 0),
    ToQuantity = "toQuantity"(0, 1),
    ConvertsToQuantity = "convertsToQuantity"(0, 1),
    IndexOf = "indexOf"(1, 1),
    Substring = "substring"(1, 2),
    StartsWith = "startsWith"(1, 1),
    EndsWith = "endsWith"(1, 1),
    Contains = "contains"(1, 1),
    Upper = "upper"(0, 0),
    Lower = "lower"(0, 0),
    Replace = "replace"(2, 2),
    Matches = "matches"(1, 1),
    MatchesFull = "matchesFull"(1, 1),
    ReplaceMatches = "replaceMatches"(2, 2),
    Length = "length"(0, 0),
    ToChars = "toChars"(0, 0),
    Split = "split"(1, 1),
    Join = "join"(0, 1),
    Trim = "trim"(0, 0),
    Abs = "abs"(0, 0),
    Ceiling = "ceiling"(0, 0),
    Floor = "floor"(0, 0),
    Truncate = "truncate"(0, 0),
    Round = "round"(0, 1),
    Sqrt = "sqrt"(0, 0),
    Ln = "ln"(0, 0),
    Exp = "exp"(0, 0),
    Log = "log"(1, 1),
    Power = "power"(1, 1),
    Children = "children"(0, 0),
    Descendants = "descendants"(0, 0),
    Trace = "trace"(1, 2),
    Now = "now"(0, 0),
    Today = "today"(0, 0),
    TimeOfDay = "timeOfDay"(0, 0),
    Not = "not"(0, 0),
    HasValue = "hasValue"(0, 0),
    GetValue = "getValue"(0, 0),
    Extension = "extension"(1, 1),
    MemberOf = "memberOf"(1, 1),
    ConformsTo = "conformsTo"(1, 1),
    Resolve = "resolve"(0, 0),
    HtmlChecks = "htmlChecks"(0, 0),
    Is = "is"(1, 1),
    As = "as"(1, 1),
    Aggregate = "aggregate"(1, 2),
    LowBoundary = "lowBoundary"(0, 1),
    HighBoundary = "highBoundary"(0, 1),
}
