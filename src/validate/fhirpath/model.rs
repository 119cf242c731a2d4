//! Type information for navigation and `is`/`as`/`ofType`. The validator implements [`Model`] from the
//! StructureDefinitions it loaded; [`InferredModel`] is the built-in fallback that knows the R4 type
//! hierarchy and otherwise infers types from the JSON itself (`resourceType`, choice-element suffixes).

/// The declared type of a child element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildType<'m> {
    /// An ordinary element of this type. For a backbone element, the key the model uses for its children
    /// (conventionally the element path, e.g. `Observation.component`).
    Type(&'m str),
    /// A choice element `name[x]`: the JSON carries `name` + a type suffix (`valueQuantity`).
    Choice,
}

/// What the evaluator needs to know about FHIR types.
pub trait Model: Send + Sync {
    /// The type of child `name` of an element typed `parent` (a type name, or a backbone element key as
    /// returned earlier by this method). `None` when unknown: the evaluator then infers from the JSON.
    fn child_type(&self, parent: &str, name: &str) -> Option<ChildType<'_>>;

    /// Whether type `ty` is `base` or derives from it (`Age` is a `Quantity`, `Patient` a `DomainResource`).
    /// Types are FHIR type names or backbone element keys. The default covers the R4 base hierarchy.
    fn is_subtype(&self, ty: &str, base: &str) -> bool {
        r4_is_subtype(ty, base)
    }
}

/// No StructureDefinitions: types come from the JSON (`resourceType`, choice suffixes) and the R4
/// base hierarchy only.
#[derive(Debug, Default, Clone, Copy)]
pub struct InferredModel;

impl Model for InferredModel {
    fn child_type(&self, _parent: &str, _name: &str) -> Option<ChildType<'_>> {
        None
    }
}

/// FHIR R4 data type names, the closed set of suffixes a choice element can carry (`valueQuantity`),
/// paired with the suffix as written in JSON.
pub(crate) const CHOICE_SUFFIXES: &[(&str, &str)] = &[
    ("Base64Binary", "base64Binary"),
    ("Boolean", "boolean"),
    ("Canonical", "canonical"),
    ("Code", "code"),
    ("Date", "date"),
    ("DateTime", "dateTime"),
    ("Decimal", "decimal"),
    ("Id", "id"),
    ("Instant", "instant"),
    ("Integer", "integer"),
    ("Markdown", "markdown"),
    ("Oid", "oid"),
    ("PositiveInt", "positiveInt"),
    ("String", "string"),
    ("Time", "time"),
    ("UnsignedInt", "unsignedInt"),
    ("Uri", "uri"),
    ("Url", "url"),
    ("Uuid", "uuid"),
    ("Address", "Address"),
    ("Age", "Age"),
    ("Annotation", "Annotation"),
    ("Attachment", "Attachment"),
    ("CodeableConcept", "CodeableConcept"),
    ("Coding", "Coding"),
    ("ContactDetail", "ContactDetail"),
    ("ContactPoint", "ContactPoint"),
    ("Contributor", "Contributor"),
    ("Count", "Count"),
    ("DataRequirement", "DataRequirement"),
    ("Distance", "Distance"),
    ("Dosage", "Dosage"),
    ("Duration", "Duration"),
    ("Expression", "Expression"),
    ("HumanName", "HumanName"),
    ("Identifier", "Identifier"),
    ("Meta", "Meta"),
    ("Money", "Money"),
    ("ParameterDefinition", "ParameterDefinition"),
    ("Period", "Period"),
    ("Quantity", "Quantity"),
    ("Range", "Range"),
    ("Ratio", "Ratio"),
    ("Reference", "Reference"),
    ("RelatedArtifact", "RelatedArtifact"),
    ("SampledData", "SampledData"),
    ("Signature", "Signature"),
    ("Timing", "Timing"),
    ("TriggerDefinition", "TriggerDefinition"),
    ("UsageContext", "UsageContext"),
];

/// The FHIR type named by a choice suffix (`Quantity` -> `Quantity`, `DateTime` -> `dateTime`).
pub(crate) fn choice_suffix_type(suffix: &str) -> Option<&'static str> {
    CHOICE_SUFFIXES
        .iter()
        .find(|(s, _)| *s == suffix)
        .map(|(_, t)| *t)
}

/// Resources that derive from `Resource` directly rather than through `DomainResource`.
const NON_DOMAIN_RESOURCES: &[&str] = &["Binary", "Bundle", "Parameters"];

fn r4_parent(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "code" | "id" | "markdown" => "string",
        "canonical" | "oid" | "url" | "uuid" => "uri",
        "positiveInt" | "unsignedInt" => "integer",
        "Age" | "Count" | "Distance" | "Duration" | "MoneyQuantity" | "SimpleQuantity" => {
            "Quantity"
        }
        "Resource" | "Element" => return None,
        "DomainResource" => "Resource",
        t if NON_DOMAIN_RESOURCES.contains(&t) => "Resource",
        t if is_resource_like(t) => "DomainResource",
        _ => "Element",
    })
}

/// Resource and complex type names start upper-case; the backbone keys (`Observation.component`) do too,
/// which is why those are told apart by the dot.
fn is_resource_like(t: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_uppercase())
        && !t.contains('.')
        && !CHOICE_SUFFIXES.iter().any(|(_, ty)| *ty == t)
        && !matches!(
            t,
            "Extension"
                | "Narrative"
                | "ElementDefinition"
                | "BackboneElement"
                | "MarketingStatus"
                | "Population"
                | "ProdCharacteristic"
                | "ProductShelfLife"
                | "SubstanceAmount"
                | "xhtml"
        )
}

/// The R4 base hierarchy: primitive specialisations, Quantity profiles, resources.
pub fn r4_is_subtype(ty: &str, base: &str) -> bool {
    let mut cur = ty;
    for _ in 0..8 {
        if cur == base {
            return true;
        }
        match r4_parent(cur) {
            Some(p) => cur = p,
            None => return false,
        }
    }
    false
}

/// The System type a FHIR primitive maps to (`code` -> `String`), for comparisons and `is System.X`.
pub(crate) fn system_type_of(fhir: &str) -> Option<&'static str> {
    Some(match fhir {
        "boolean" => "Boolean",
        "string" | "code" | "id" | "markdown" | "uri" | "url" | "canonical" | "oid" | "uuid"
        | "base64Binary" | "xhtml" => "String",
        "integer" | "positiveInt" | "unsignedInt" => "Integer",
        "decimal" => "Decimal",
        "date" => "Date",
        "dateTime" | "instant" => "DateTime",
        "time" => "Time",
        "Quantity" | "Age" | "Count" | "Distance" | "Duration" | "Money" => "Quantity",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_hierarchy() {
        assert!(r4_is_subtype("Age", "Quantity"));
        assert!(r4_is_subtype("code", "string"));
        assert!(r4_is_subtype("canonical", "uri"));
        assert!(r4_is_subtype("Patient", "DomainResource"));
        assert!(r4_is_subtype("Patient", "Resource"));
        assert!(r4_is_subtype("Bundle", "Resource"));
        assert!(!r4_is_subtype("Bundle", "DomainResource"));
        assert!(!r4_is_subtype("string", "code"));
        assert!(!r4_is_subtype("Quantity", "Age"));
        assert_eq!(choice_suffix_type("DateTime"), Some("dateTime"));
        assert_eq!(choice_suffix_type("Max"), None);
    }
}
