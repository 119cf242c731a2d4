//! Unit suite, one section per feature. Expected results come from the examples in the FHIRPath N1
//! specification (hl7.org/fhirpath) unless a test says otherwise.

use serde_json::{Value, json};

use super::*;

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "example",
        "active": true,
        "name": [
            {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
            {"use": "usual", "given": ["Jim"]},
            {"use": "maiden", "family": "Windsor", "given": ["Peter", "James"],
             "period": {"end": "2002"}}
        ],
        "telecom": [
            {"use": "home"},
            {"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1}
        ],
        "gender": "male",
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
            "valueDateTime": "1974-12-25T14:35:45-05:00"
        }]},
        "deceasedBoolean": false,
        "contact": [{"name": {"family": "du Marché", "_family": {"extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix",
            "valueString": "VV"}]}, "given": ["Bénédicte"]}}]
    })
}

fn eval_on(expr: &str, node: &Value) -> Result<Vec<String>, EvalError> {
    let e = Expr::parse(expr).unwrap_or_else(|err| panic!("{err}"));
    let ctx = EvalContext::new().with_resource(node);
    e.evaluate(&ctx, node).map(|c| c.to_strings())
}

fn ev(expr: &str) -> Vec<String> {
    eval_on(expr, &patient()).unwrap_or_else(|err| panic!("{expr}: {err}"))
}

fn b(expr: &str) -> Option<bool> {
    let p = patient();
    let e = Expr::parse(expr).unwrap();
    let ctx = EvalContext::new().with_resource(&p);
    e.evaluate(&ctx, &p)
        .unwrap_or_else(|err| panic!("{expr}: {err}"))
        .as_boolean()
        .unwrap()
}

fn t(expr: &str) {
    assert_eq!(b(expr), Some(true), "{expr}");
}
fn f(expr: &str) {
    assert_eq!(b(expr), Some(false), "{expr}");
}
fn empty(expr: &str) {
    assert_eq!(ev(expr), Vec::<String>::new(), "{expr}");
}

mod parsing {
    use super::*;

    #[test]
    fn reports_position_and_expression() {
        let err = Expr::parse("name.where(use = 'official'").unwrap_err();
        assert_eq!(err.expression, "name.where(use = 'official'");
        assert_eq!(err.position, 27);
        let err = Expr::parse("name.given ! 'x'").unwrap_err();
        assert_eq!(err.position, 11);
        assert!(Expr::parse("count(1)").is_err(), "arity is checked");
        assert!(
            Expr::parse("matches('[')").is_err(),
            "constant regex is checked"
        );
        assert!(Expr::parse("@2024-13-01").is_err());
        assert!(Expr::parse("'unterminated").is_err());
        assert!(Expr::parse("").is_err());
    }

    #[test]
    fn unknown_functions_parse_and_are_listed() {
        let e = Expr::parse("name.frobnicate().exists() and x.sort()").unwrap();
        assert_eq!(e.unsupported_functions(), vec!["frobnicate", "sort"]);
        let p = patient();
        let ctx = EvalContext::new();
        assert!(matches!(
            e.evaluate(&ctx, &p),
            Err(EvalError::UnsupportedFunction { name }) if name == "frobnicate"
        ));
    }

    #[test]
    fn comments_delimited_identifiers_and_escapes() {
        assert_eq!(ev("name.`given` // trailing comment").len(), 5);
        assert_eq!(ev("/* c */ 'a\\'b\\u0041'"), vec!["a'bA"]);
        assert_eq!(ev("Patient.gender"), vec!["male"]);
    }

    #[test]
    fn precedence() {
        assert_eq!(ev("1 + 2 * 3"), vec!["7"]);
        assert_eq!(ev("(1 + 2) * 3"), vec!["9"]);
        assert_eq!(ev("-2 + 5"), vec!["3"]);
        t("1 + 1 = 2 and 2 > 1");
        t("true or false and false");
        t("false implies false or true");
        t("'a' | 'b' = 'a' | 'b'");
        t("5 is Integer");
        t("name.first().given.first() is string");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "(".repeat(5000) + "1" + &")".repeat(5000);
        assert!(Expr::parse(&deep).is_err());
        let deep = "-".repeat(5000) + "1";
        assert!(Expr::parse(&deep).is_err());
    }
}

mod paths {
    use super::*;

    #[test]
    fn navigation_flattens_arrays() {
        assert_eq!(
            ev("Patient.name.given"),
            vec!["Peter", "James", "Jim", "Peter", "James"]
        );
        assert_eq!(ev("name.family"), vec!["Chalmers", "Windsor"]);
        empty("Observation.value");
        empty("name.nothing");
        assert_eq!(ev("telecom.rank"), vec!["1"]);
    }

    #[test]
    fn indexer_and_this() {
        assert_eq!(ev("name[0].given[1]"), vec!["James"]);
        empty("name[5]");
        assert_eq!(ev("name.given.where($this = 'Jim')"), vec!["Jim"]);
        assert_eq!(
            ev("name.select(given.first() + ':' + $index.toString())"),
            vec!["Peter:0", "Jim:1", "Peter:2"]
        );
    }

    #[test]
    fn choice_elements_by_name_and_type() {
        let obs = json!({"resourceType": "Observation", "status": "final",
            "valueQuantity": {"value": 185, "unit": "lbs", "code": "[lb_av]"},
            "effectiveDateTime": "2024-03-01T10:00:00Z"});
        assert_eq!(
            eval_on("Observation.value.value", &obs).unwrap(),
            vec!["185"]
        );
        assert_eq!(
            eval_on("value.ofType(Quantity).unit", &obs).unwrap(),
            vec!["lbs"]
        );
        assert!(
            eval_on("value.ofType(CodeableConcept)", &obs)
                .unwrap()
                .is_empty()
        );
        assert_eq!(eval_on("value is Quantity", &obs).unwrap(), vec!["true"]);
        assert_eq!(
            eval_on("(value as Quantity).code", &obs).unwrap(),
            vec!["[lb_av]"]
        );
        assert_eq!(
            eval_on("effective is dateTime", &obs).unwrap(),
            vec!["true"]
        );
        assert_eq!(
            eval_on("effective > @2024-01-01", &obs).unwrap(),
            vec!["true"]
        );
        // `status` is not a choice of `stat` + a type.
        assert!(eval_on("stat", &obs).unwrap().is_empty());
    }

    #[test]
    fn primitive_extensions() {
        assert_eq!(
            ev("birthDate.extension.value"),
            vec!["1974-12-25T14:35:45-05:00"]
        );
        assert_eq!(
            ev(
                "birthDate.extension('http://hl7.org/fhir/StructureDefinition/patient-birthTime').exists()"
            ),
            vec!["true"]
        );
        assert_eq!(ev("contact.name.family.extension.value"), vec!["VV"]);
        t("birthDate.hasValue()");
        f("name.hasValue()");
    }

    #[test]
    fn extension_only_primitives_in_arrays() {
        let p = json!({"resourceType": "Patient",
            "name": [{"given": ["A", null, "C"],
                      "_given": [null, {"extension": [{"url": "u", "valueString": "x"}]}, null]}]});
        assert_eq!(eval_on("name.given.count()", &p).unwrap(), vec!["3"]);
        assert_eq!(
            eval_on("name.given.where(hasValue().not()).extension.url", &p).unwrap(),
            vec!["u"]
        );
        assert_eq!(eval_on("name.given[2]", &p).unwrap(), vec!["C"]);
    }

    #[test]
    fn environment_variables() {
        assert_eq!(ev("%ucum"), vec!["http://unitsofmeasure.org"]);
        assert_eq!(ev("%resource.id"), vec!["example"]);
        assert_eq!(ev("%rootResource.id"), vec!["example"]);
        assert_eq!(ev("name.where(%context.id = 'example').count()"), vec!["3"]);
        assert_eq!(
            ev("%`vs-administrative-gender`"),
            vec!["http://hl7.org/fhir/ValueSet/administrative-gender"]
        );
        let p = patient();
        let e = Expr::parse("%unknown").unwrap();
        assert!(matches!(
            e.evaluate(&EvalContext::new(), &p),
            Err(EvalError::UndefinedVariable(_))
        ));
    }

    #[test]
    fn children_and_descendants() {
        // id, active, name x3, telecom x2, gender, birthDate, deceased, contact
        assert_eq!(ev("children().count()"), vec!["11"]);
        assert_eq!(
            ev("descendants().where($this is string and $this = 'Jim').count()"),
            vec!["1"]
        );
        assert_eq!(ev("descendants().ofType(HumanName).count()"), vec!["0"]);
        assert_eq!(ev("name.children().count()"), vec!["11"]);
    }
}

mod literals {
    use super::*;

    #[test]
    fn scalar_literals() {
        assert_eq!(ev("'text'"), vec!["text"]);
        assert_eq!(ev("42"), vec!["42"]);
        assert_eq!(ev("3.140"), vec!["3.140"]);
        assert_eq!(ev("@2015-02-04T14:34:28Z"), vec!["2015-02-04T14:34:28Z"]);
        assert_eq!(ev("@T14:34:28"), vec!["14:34:28"]);
        assert_eq!(ev("@2015"), vec!["2015"]);
        t("@2015.is(Date)");
        t("@2015T.is(DateTime)");
        t("@2015-02-04T14:34:28.123.is(DateTime)");
        t("@T14:34:28.123.is(Time)");
        t("@2015-02-04T14:34:28+10:00.is(DateTime)");
        assert_eq!(ev("@2015-02-04T14"), vec!["2015-02-04T14"]);
        assert_eq!(ev("2 // comment\n/ 2"), vec!["1"]);
        assert!(eval_on("-1.convertsToInteger()", &patient()).is_err());
        assert_eq!(ev("4.5 'mg'"), vec!["4.5 'mg'"]);
        assert_eq!(ev("3 days"), vec!["3 days"]);
        assert_eq!(ev("1 'wk'.toString()"), vec!["1 'wk'"]);
        empty("{}");
        t("true");
    }
}

mod equality {
    use super::*;

    #[test]
    fn equals_per_spec() {
        t("1 = 1");
        t("1 = 1.0");
        f("'a' = 'b'");
        t("1.2 / 1.8 ~ 0.67");
        assert_eq!(ev("1 / 3"), vec!["0.3333333333333333"]);
        empty("{} = 1");
        empty("1 = {}");
        f("(1 | 2) = (1 | 2 | 3)");
        t("@2012-04-15 = @2012-04-15");
        f("@2012-04-15 = @2012-04-16");
        empty("@2012-04-15 = @2012-04-15T10:00:00");
        empty("@2012-04-15T10:00:00 = @2012-04-15T10:00");
        t("@2012-04-15T15:00:00Z = @2012-04-15T10:00:00-05:00");
        t("name[0] = name[0]");
        f("name[0] = name[1]");
        t("4 'g' = 4000 'mg'");
        t("185 '[lb_av]' != 185 'kg'");
        empty("@2012-04-15T15:00:00Z = @2012-04-15T10:00:00");
        t("@2012-04-15T15:00:00Z > @2012-04-13T10:00:00");
        t("@2012-04-15T15:30:31 = @2012-04-15T15:30:31.0");
        f("@2012-04-15T15:30:31 = @2012-04-15T15:30:31.1");
        t("7 days = 1 'wk'");
        t("1 != 2");
        empty("1 != {}");
    }

    #[test]
    fn equivalence_per_spec() {
        t("'Abc  def' ~ 'abc def'");
        t("1.2 ~ 1.21"); // compared at the lesser precision (1 digit): 1.2 ~ 1.2
        t("{} ~ {}");
        f("{} ~ 1");
        f("@2012 ~ @2012-01");
        t("(1 | 2) ~ (2 | 1)");
        t("'a' !~ 'b'");
    }

    #[test]
    fn ordering_per_spec() {
        t("10 > 5");
        t("10 < 5.5 = false");
        t("'abc' < 'abd'");
        t("@2014 < @2015-01");
        empty("@2015 < @2015-01");
        t("@2018-03-01T10:30:00Z > @2018-03-01T10:29:59.999Z");
        t("@T10:30 < @T10:31");
        t("5 'mg' < 1 'g'");
        empty("5 'mg' < 1 'm'");
        empty("{} > 1");
        t("birthDate < @2000-01-01");
        let p = patient();
        let e = Expr::parse("1 < 'a'").unwrap();
        assert!(matches!(
            e.evaluate(&EvalContext::new(), &p),
            Err(EvalError::Type { .. })
        ));
    }
}

mod logic {
    use super::*;

    // The truth tables of the spec, with {} as unknown.
    #[test]
    fn three_valued_tables() {
        let cases: &[(&str, &str, [Option<bool>; 5])] = &[
            // lhs values: true, false, {} against rhs true/false/{} per row
            ("and", "true", [Some(true), Some(false), None, None, None]),
            ("or", "false", [Some(true), Some(false), None, None, None]),
        ];
        let _ = cases;
        let v = |s: &str| b(s);
        assert_eq!(v("true and true"), Some(true));
        assert_eq!(v("true and false"), Some(false));
        assert_eq!(v("true and {}"), None);
        assert_eq!(v("false and {}"), Some(false));
        assert_eq!(v("{} and false"), Some(false));
        assert_eq!(v("{} and {}"), None);
        assert_eq!(v("true or {}"), Some(true));
        assert_eq!(v("{} or true"), Some(true));
        assert_eq!(v("false or {}"), None);
        assert_eq!(v("false or false"), Some(false));
        assert_eq!(v("true xor false"), Some(true));
        assert_eq!(v("true xor true"), Some(false));
        assert_eq!(v("true xor {}"), None);
        assert_eq!(v("true implies false"), Some(false));
        assert_eq!(v("true implies {}"), None);
        assert_eq!(v("false implies {}"), Some(true));
        assert_eq!(v("{} implies true"), Some(true));
        assert_eq!(v("{} implies false"), None);
        assert_eq!(v("{} implies {}"), None);
        assert_eq!(v("true.not()"), Some(false));
        assert_eq!(v("{}.not()"), None);
    }

    #[test]
    fn singleton_evaluation() {
        // A single non-boolean item is true in a boolean context.
        t("name.first().family and true");
        let p = patient();
        let e = Expr::parse("name.given and true").unwrap();
        assert!(matches!(
            e.evaluate(&EvalContext::new(), &p),
            Err(EvalError::NotSingleton { .. })
        ));
    }
}

mod collections {
    use super::*;

    #[test]
    fn existence() {
        t("name.exists()");
        f("photo.exists()");
        t("photo.empty()");
        t("name.exists(use = 'usual')");
        f("name.exists(use = 'nickname')");
        t("name.all(given.exists())");
        f("name.all(family.exists())");
        t("photo.all(false)");
        t("(true | true).allTrue()");
        t("(true | false).anyTrue()");
        t("(false | false).allFalse()");
        t("(true | false).anyFalse()");
        t("{}.allTrue()");
        assert_eq!(ev("name.given.count()"), vec!["5"]);
        assert_eq!(ev("name.given.distinct()"), vec!["Peter", "James", "Jim"]);
        f("name.given.isDistinct()");
        t("name.first().given.isDistinct()");
        t("(1 | 2).subsetOf(1 | 2 | 3)");
        t("(1 | 2 | 3).supersetOf(2)");
        f("(1 | 4).subsetOf(1 | 2 | 3)");
        t("{}.subsetOf(1)");
    }

    #[test]
    fn filtering_and_projection() {
        assert_eq!(ev("name.where(use = 'official').family"), vec!["Chalmers"]);
        assert_eq!(ev("name.select(family)"), vec!["Chalmers", "Windsor"]);
        assert_eq!(ev("telecom.where(rank.exists()).system"), vec!["phone"]);
        assert_eq!(ev("(1 | 2 | 'a').ofType(Integer).count()"), vec!["2"]);
        let q = json!({"resourceType": "Questionnaire", "item": [
            {"linkId": "1", "item": [{"linkId": "1.1"}, {"linkId": "1.2", "item": [{"linkId": "1.2.1"}]}]},
            {"linkId": "2"}]});
        assert_eq!(
            eval_on("repeat(item).linkId", &q).unwrap(),
            vec!["1", "2", "1.1", "1.2", "1.2.1"]
        );
        assert_eq!(eval_on("repeat('a')", &q).unwrap(), vec!["a"]);
    }

    #[test]
    fn subsetting() {
        assert_eq!(ev("name.given.first()"), vec!["Peter"]);
        assert_eq!(ev("name.given.last()"), vec!["James"]);
        assert_eq!(ev("name.given.tail().count()"), vec!["4"]);
        assert_eq!(ev("name.given.skip(3)"), vec!["Peter", "James"]);
        assert_eq!(ev("name.given.take(2)"), vec!["Peter", "James"]);
        empty("name.given.take(0)");
        assert_eq!(ev("name[1].given.single()"), vec!["Jim"]);
        let p = patient();
        let e = Expr::parse("name.given.single()").unwrap();
        assert!(e.evaluate(&EvalContext::new(), &p).is_err());
    }

    #[test]
    fn combining() {
        assert_eq!(ev("(1 | 1 | 2)"), vec!["1", "2"]);
        assert_eq!(ev("(1 | 2).union(2 | 3)"), vec!["1", "2", "3"]);
        assert_eq!(ev("(1 | 2).combine(2 | 3)"), vec!["1", "2", "2", "3"]);
        assert_eq!(ev("(1 | 2 | 3).intersect(2 | 3 | 4)"), vec!["2", "3"]);
        assert_eq!(ev("(1 | 2 | 3).exclude(2)"), vec!["1", "3"]);
        t("'Jim' in name.given");
        f("'Bob' in name.given");
        t("name.given contains 'Jim'");
        f("'a' in {}");
        empty("{} in name.given");
        assert_eq!(ev("iif(active, 'yes', 'no')"), vec!["yes"]);
        assert_eq!(ev("iif(photo.exists(), 'yes', 'no')"), vec!["no"]);
        empty("iif(false, 'yes')");
        assert_eq!(
            ev("('context').iif(true, select($this), 'no')"),
            vec!["context"]
        );
        assert_eq!(ev("{}.iif(true, 'yes', 'no')"), vec!["yes"]);
        assert!(eval_on("('a' | 'b').iif(true, 1, 2)", &patient()).is_err());
        assert_eq!(ev("(1 | 2 | 3).aggregate($this + $total, 0)"), vec!["6"]);
        // Large collections take the hashed path; same answers.
        let many: Vec<String> = (0..40).map(|i| format!("v{}", i % 10)).collect();
        let doc = json!({"a": many, "n": (0..40).map(|i| i % 7).collect::<Vec<_>>()});
        assert_eq!(eval_on("a.distinct().count()", &doc).unwrap(), vec!["10"]);
        assert_eq!(eval_on("(a | a).count()", &doc).unwrap(), vec!["10"]);
        assert_eq!(eval_on("a.isDistinct()", &doc).unwrap(), vec!["false"]);
        assert_eq!(eval_on("a.distinct().first()", &doc).unwrap(), vec!["v0"]);
        assert_eq!(eval_on("(n | a).count()", &doc).unwrap(), vec!["17"]);
    }
}

mod functions {
    use super::*;

    #[test]
    fn strings() {
        assert_eq!(ev("'abcdefg'.indexOf('bc')"), vec!["1"]);
        assert_eq!(ev("'abcdefg'.indexOf('x')"), vec!["-1"]);
        assert_eq!(ev("'abcdefg'.substring(3)"), vec!["defg"]);
        assert_eq!(ev("'abcdefg'.substring(1, 2)"), vec!["bc"]);
        empty("'abcdefg'.substring(7, 1)");
        t("'abcdefg'.startsWith('abc')");
        t("'abcdefg'.endsWith('efg')");
        t("'abc'.contains('b')");
        assert_eq!(ev("'AbC'.upper()"), vec!["ABC"]);
        assert_eq!(ev("'AbC'.lower()"), vec!["abc"]);
        assert_eq!(ev("'abcdefg'.replace('cde', '123')"), vec!["ab123fg"]);
        assert_eq!(ev("'abc'.replace('', 'x')"), vec!["xaxbxcx"]);
        t("'http://x/a'.matches('^http://')");
        t("'abc'.matches('b')");
        f("'abc'.matches('^b')");
        t("'A\n B'.matches('A.*B')");
        f("'a/Library/b'.matchesFull('Library')");
        t("'a/Library/b'.matchesFull('.*Library.*')");
        assert_eq!(ev("'abc'.replaceMatches('', 'x')"), vec!["abc"]);
        assert_eq!(ev("'abc123'.replaceMatches('[0-9]', '-')"), vec!["abc---"]);
        empty("'123'.replaceMatches('2', {})");
        assert_eq!(ev("'a.b.c'.replaceMatches('\\\\..*', '')"), vec!["a"]);
        assert_eq!(ev("'abc'.length()"), vec!["3"]);
        assert_eq!(ev("'a,b,c'.split(',')"), vec!["a", "b", "c"]);
        assert_eq!(ev("('a' | 'b').join('-')"), vec!["a-b"]);
        assert_eq!(ev("' a '.trim()"), vec!["a"]);
        assert_eq!(ev("'abc'.toChars()"), vec!["a", "b", "c"]);
        empty("{}.length()");
        assert_eq!(ev("'a' & {} & 'b'"), vec!["ab"]);
        empty("'a' + {}");
        let p = patient();
        let ctx = EvalContext::new();
        let e = Expr::parse("'a'.matches('(' + 'x')").unwrap();
        assert!(matches!(e.evaluate(&ctx, &p), Err(EvalError::Regex { .. })));
    }

    #[test]
    fn conversions() {
        assert_eq!(ev("'12'.toInteger()"), vec!["12"]);
        empty("'1.2'.toInteger()");
        t("'12'.convertsToInteger()");
        f("'x'.convertsToInteger()");
        assert_eq!(ev("'1.50'.toDecimal()"), vec!["1.50"]);
        assert_eq!(ev("1.toString()"), vec!["1"]);
        assert_eq!(ev("true.toString()"), vec!["true"]);
        assert_eq!(ev("'yes'.toBoolean()"), vec!["true"]);
        assert_eq!(ev("'2024-01-02'.toDate()"), vec!["2024-01-02"]);
        t("'2024-01-02T10:00:00Z'.convertsToDateTime()");
        f("'2024-13-02'.convertsToDate()");
        assert_eq!(ev("'5 \\'mg\\''.toQuantity()"), vec!["5 'mg'"]);
        t("'1 day'.toQuantity() = 1 'd'");
        t("'1 wk'.convertsToQuantity().not()");
        empty("'1 \\'mo\\''.toQuantity() = 1 month");
        t("7 days = 1 week");
        t("6 days < 1 week");
        assert_eq!(ev("1000 'mg'.toQuantity('g')"), vec!["1 'g'"]);
        t("'10:00:00'.convertsToTime()");
        t("'2015-02-04T14'.convertsToDateTime()");
        t("'14'.convertsToTime()");
        t("birthDate != @T12:14:15");
        empty("birthDate != @1974-12-25T12:34:00");
    }

    #[test]
    fn math() {
        assert_eq!(ev("5 div 2"), vec!["2"]);
        assert_eq!(ev("5 mod 2"), vec!["1"]);
        assert_eq!(ev("5 / 2"), vec!["2.5"]);
        empty("5 / 0");
        empty("5 div 0");
        assert_eq!(ev("0.1 + 0.2"), vec!["0.3"]);
        assert_eq!(ev("'a' + 'b'"), vec!["ab"]);
        assert_eq!(ev("(-5).abs()"), vec!["5"]);
        assert_eq!(ev("1.1.ceiling()"), vec!["2"]);
        assert_eq!(ev("(-1.1).floor()"), vec!["-2"]);
        assert_eq!(ev("3.14159.round(2)"), vec!["3.14"]);
        assert_eq!(ev("2.power(10)"), vec!["1024"]);
        assert_eq!(ev("16.sqrt()"), vec!["4"]);
        empty("9223372036854775807 + 1");
        assert_eq!(ev("3 'mg' + 2 'mg'"), vec!["5 'mg'"]);
        assert_eq!(ev("@2024-01-31 + 1 month"), vec!["2024-02-29"]);
        assert_eq!(ev("@2024-03-01 - 1 day"), vec!["2024-02-29"]);
        assert_eq!(
            ev("@2024-03-01T23:30:00Z + 1 hour"),
            vec!["2024-03-02T00:30:00Z"]
        );
    }

    #[test]
    fn time_functions_use_the_context_instant() {
        let p = patient();
        let now = Temporal::parse_date_time("2026-11-23T10:00:00Z", false).unwrap();
        let ctx = EvalContext::new().with_now(now);
        let e = Expr::parse("today()").unwrap();
        assert_eq!(
            e.evaluate(&ctx, &p).unwrap().to_strings(),
            vec!["2026-11-23"]
        );
        let e = Expr::parse("now() > @2026-01-01T00:00:00Z and birthDate < today()").unwrap();
        assert_eq!(
            e.evaluate(&ctx, &p).unwrap().as_boolean().unwrap(),
            Some(true)
        );
    }

    #[test]
    fn types() {
        t("1 is Integer");
        t("1 is System.Integer");
        f("1 is Decimal");
        t("'a' is String");
        t("active is boolean");
        t("active is FHIR.boolean");
        t("gender is code");
        t("deceased is boolean");
        t("%resource is Patient");
        t("%resource is DomainResource");
        t("%resource.is(Resource)");
        f("%resource is Observation");
        assert_eq!(ev("name.given.as(string).count()"), vec!["5"]);
        t("birthDate is date");
    }
}

mod callbacks {
    use super::*;

    struct Vs;
    impl Terminology for Vs {
        fn member_of(&self, codes: &[Coded<'_>], value_set: &str) -> Option<bool> {
            (value_set == "http://example.org/vs").then(|| {
                codes
                    .iter()
                    .any(|c| c.code == "male" || c.system == Some("http://loinc.org"))
            })
        }
    }

    #[test]
    fn member_of_asks_the_terminology() {
        let p = patient();
        let ctx = EvalContext::new().with_terminology(&Vs);
        let run = |s: &str| {
            Expr::parse(s)
                .unwrap()
                .evaluate(&ctx, &p)
                .unwrap()
                .as_boolean()
                .unwrap()
        };
        assert_eq!(run("gender.memberOf('http://example.org/vs')"), Some(true));
        assert_eq!(
            run("'female'.memberOf('http://example.org/vs')"),
            Some(false)
        );
        assert_eq!(run("gender.memberOf('http://unknown')"), None);
        // No terminology: unknown, never an error.
        let bare = EvalContext::new();
        let e = Expr::parse("gender.memberOf('http://example.org/vs')").unwrap();
        assert!(e.evaluate(&bare, &p).unwrap().is_empty());
    }

    struct Elsewhere(Value);
    impl Resolver<Value> for Elsewhere {
        fn resolve(&self, reference: &str) -> Option<&Value> {
            (reference == "Practitioner/x").then_some(&self.0)
        }
    }

    #[test]
    fn resolve_contained_bundle_and_callback() {
        let ct = json!({"resourceType": "CareTeam",
        "contained": [{"resourceType": "Practitioner", "id": "p1"}],
        "participant": [
            {"member": {"reference": "#p1"}},
            {"member": {"reference": "Practitioner/x"}},
            {"member": {"reference": "Patient/nowhere"}}
        ]});
        let other = Elsewhere(json!({"resourceType": "Practitioner", "id": "x"}));
        let ctx = EvalContext::new().with_resource(&ct).with_resolver(&other);
        let e = Expr::parse("participant.member.resolve().ofType(Practitioner).id").unwrap();
        assert_eq!(e.evaluate(&ctx, &ct).unwrap().to_strings(), vec!["p1", "x"]);

        let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "a"}},
            {"fullUrl": "http://x/fhir/Observation/o", "resource": {"resourceType": "Observation", "id": "o",
                "subject": {"reference": "urn:uuid:1"}, "hasMember": [{"reference": "Observation/o"}]}}]});
        let obs = &bundle["entry"][1]["resource"];
        let ctx = EvalContext::new()
            .with_resource(obs)
            .with_root_resource(&bundle);
        let e =
            Expr::parse("subject.resolve() is Patient and hasMember.resolve().id = 'o'").unwrap();
        assert_eq!(
            e.evaluate(&ctx, obs).unwrap().as_boolean().unwrap(),
            Some(true)
        );
    }

    struct AlwaysConforms;
    impl Conformance<Value> for AlwaysConforms {
        fn conforms_to(&self, _: &Value, url: &str) -> Option<bool> {
            Some(url.ends_with("/ok"))
        }
    }

    #[test]
    fn conforms_to_asks_the_callback() {
        let p = patient();
        let ctx = EvalContext::new().with_conformance(&AlwaysConforms);
        let e =
            Expr::parse("conformsTo('http://x/ok') and conformsTo('http://x/no').not()").unwrap();
        assert_eq!(
            e.evaluate(&ctx, &p).unwrap().as_boolean().unwrap(),
            Some(true)
        );
    }
}

mod models {
    use super::*;

    /// A two-element model: `Thing.when` is a dateTime, `Thing.part` a backbone element.
    struct Tiny;
    impl Model for Tiny {
        fn child_type(&self, parent: &str, name: &str) -> Option<ChildType<'_>> {
            match (parent, name) {
                ("Thing", "when") => Some(ChildType::Type("dateTime")),
                ("Thing", "part") => Some(ChildType::Type("Thing.part")),
                ("Thing.part", "amount") => Some(ChildType::Type("Quantity")),
                ("Thing.part", "value") => Some(ChildType::Choice),
                _ => None,
            }
        }
        fn is_subtype(&self, ty: &str, base: &str) -> bool {
            (ty == "Thing.part" && base == "BackboneElement") || r4_is_subtype(ty, base)
        }
    }

    #[test]
    fn declared_types_drive_navigation_and_type_tests() {
        let v = json!({"when": "2024-01-01T00:00:00Z", "part": [{"amount": {"value": 1}, "valueString": "s"}]});
        let ctx = EvalContext::new().with_model(&Tiny);
        let run = |s: &str| {
            Expr::parse(s)
                .unwrap()
                .evaluate_typed(&ctx, &v, "Thing")
                .unwrap()
                .to_strings()
        };
        assert_eq!(run("when is dateTime"), vec!["true"]);
        assert_eq!(run("when < @2025"), vec!["true"]);
        assert_eq!(run("part is BackboneElement"), vec!["true"]);
        assert_eq!(run("part.amount is Quantity"), vec!["true"]);
        assert_eq!(run("part.value is string"), vec!["true"]);
        assert_eq!(run("Thing.when.exists()"), vec!["true"]);
    }
}

mod robustness {
    use super::*;

    #[test]
    fn compiled_expressions_are_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Expr>();
    }

    #[test]
    fn resource_defaults_to_a_resource_focus() {
        let p = patient();
        let e = Expr::parse("%resource.id | %rootResource.id").unwrap();
        assert_eq!(
            e.evaluate(&EvalContext::new(), &p).unwrap().to_strings(),
            vec!["example"]
        );
    }

    #[test]
    fn sonic_and_serde_agree() {
        let text = patient().to_string();
        let s: sonic_rs::Value = sonic_rs::from_str(&text).unwrap();
        let j: Value = serde_json::from_str(&text).unwrap();
        for expr in [
            "name.given",
            "birthDate.extension.value",
            "children().count()",
            "descendants().count()",
            "telecom.rank + 1",
            "name.where(use = 'official').family",
        ] {
            let e = Expr::parse(expr).unwrap();
            let a = e.evaluate(&EvalContext::new(), &s).unwrap().to_strings();
            let b = e.evaluate(&EvalContext::new(), &j).unwrap().to_strings();
            assert_eq!(a, b, "{expr}");
        }
    }

    #[test]
    fn odd_json_never_panics() {
        let inputs = [
            json!(null),
            json!([]),
            json!("x"),
            json!(1.5e300),
            json!({"a": [null, [1, [2]], {"_b": 3}], "_a": "bad", "_c": [1, null], "valueQuantity": 5}),
            json!({"resourceType": 7, "contained": "x", "text": {"div": 5}}),
        ];
        let exprs = [
            "a.b.c",
            "children().descendants().count()",
            "value + 1",
            "valueQuantity.value",
            "contained.resolve()",
            "text.div.htmlChecks()",
            "a[100000000000]",
            "_a.extension",
            "c.extension",
            "value > 1 'mg'",
            "descendants().toString()",
            "%resource.id",
            "resourceType",
        ];
        for i in &inputs {
            for e in exprs {
                let _ = Expr::parse(e).unwrap().evaluate(&EvalContext::new(), i);
            }
        }
    }
}
