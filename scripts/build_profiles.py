#!/usr/bin/env python3
"""Build the PQOM conformance resources in profiles/ (FHIR R4 4.0.1, JSON, one resource per file).

The JSON files in profiles/ are what the gateway and other FHIR tools load; this script is their
source, so that ids, canonical URLs, metadata and the FHIRPath invariants stay consistent.
Edit here, run `python3 scripts/build_profiles.py`, then `python3 scripts/package_index.py`
(ImplementationGuide + .index.json), and commit the regenerated JSON with the change.

Not written here (the catalogue on branch `map` generates them): CodeSystem-pqom-indicator.json,
CodeSystem-pqom-source-measure.json and the Measure resources. We bind to them by canonical URL.

Standard library only.
"""

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "profiles"

BASE = "https://fhir.pqom-gateway.org"
VERSION = "0.1.0"
DATE = "2026-11-23"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
POP = "http://terminology.hl7.org/CodeSystem/measure-population"
ETHNIC_CS = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland"
IND_CS = f"{BASE}/CodeSystem/pqom-indicator"
SRC_CS = f"{BASE}/CodeSystem/pqom-source-measure"
STRAT_CS = f"{BASE}/CodeSystem/pqom-stratifier"
R4 = "http://hl7.org/fhir/StructureDefinition"
# pqom-stratifier codes: (code, display, definition, code system of the stratum values). Same codes as the
# catalogue's [[stratifier]] list (mappings/catalogue/annex1.toml); the first four are fixed in docs/CONVENTIONS.md.
STRATIFIERS = [
    ("ethnic-category", "Ethnic category", "Ethnic category of the mother (NHS Data Dictionary ETHNIC CATEGORY, England).", ETHNIC_CS),
    ("imd-decile", "IMD decile", "Index of Multiple Deprivation decile of the LSOA of the mother's residence (1 = most deprived).", f"{BASE}/CodeSystem/imd-decile"),
    ("imd-quintile", "IMD quintile", "Index of Multiple Deprivation quintile (ceil(decile / 2); 1 = most deprived).", f"{BASE}/CodeSystem/imd-quintile"),
    ("staff-group", "Staff group", "Staff group, for workforce measures and staff feedback.", f"{BASE}/CodeSystem/pqom-staff-group"),
    ("insight-category", "Insight category", "Theme category of an incident, feedback item, concern or report. An item may carry several themes, so strata need not add up to the group.", f"{BASE}/CodeSystem/pqom-insight-category"),
    ("harm-level", "Harm level", "Harm level of a patient safety event (patient safety events policy).", f"{BASE}/CodeSystem/pqom-harm-level"),
    ("feedback-source", "Feedback source", "Channel a service-user feedback item came through.", f"{BASE}/CodeSystem/pqom-feedback-source"),
    ("external-body", "External body", "Organisation raising a concern or request for action with the trust.", f"{BASE}/CodeSystem/pqom-external-body"),
    ("mis-safety-action", "MIS safety action", "Maternity Incentive Scheme safety action (1-10).", f"{BASE}/CodeSystem/pqom-mis-safety-action"),
]
# Stratifiers whose strata may overlap (one item, several categories): exempt from the "strata add up" rules.
OVERLAPPING_STRATIFIERS = ["insight-category"]
UKCORE_SRC = Path("/work/shared/domain/ukcore/CodeSystem-UKCore-EthnicCategoryEngland.json")

COMMON = {
    "version": VERSION,
    "status": "draft",
    "experimental": False,
    "date": DATE,
    "publisher": "pqom-gateway project",
    "contact": [
        {
            "name": "pqom-gateway maintainers",
            "telecom": [{"system": "url", "value": "https://github.com/pqom-gateway/pqom-gateway"}],
        }
    ],
    "jurisdiction": [
        {"coding": [{"system": "urn:iso:std:iso:3166", "code": "GB", "display": "United Kingdom of Great Britain and Northern Ireland"}]}
    ],
}

RESOURCES = []  # (resource dict)


def emit(res):
    RESOURCES.append(res)
    return res


def meta(rtype, rid, name, title, description, **extra):
    res = {"resourceType": rtype, "id": rid, "url": f"{BASE}/{rtype}/{rid}"}
    res.update({"version": VERSION, "name": name, "title": title})
    for k, v in COMMON.items():
        if k != "version":
            res[k] = v
    res["description"] = description
    res.update(extra)
    return res


def pop_coding(code):
    display = {"numerator": "Numerator", "denominator": "Denominator", "initial-population": "Initial Population"}[code]
    return {"system": POP, "code": code, "display": display}


def pop_where(code):
    """FHIRPath selecting the population(s) of a measure-population code, relative to a group or stratum."""
    return f"population.where(code.coding.exists(system = '{POP}' and code = '{code}'))"


# ---------------------------------------------------------------------------------------------
# Terminology
# ---------------------------------------------------------------------------------------------


def codesystem(rid, name, title, description, concepts, case_sensitive=True, **extra):
    cs = meta("CodeSystem", rid, name, title, description)
    cs.update({"caseSensitive": case_sensitive, "valueSet": f"{BASE}/ValueSet/{rid}", "content": "complete", "count": len(concepts)})
    cs.update(extra)
    cs["concept"] = [
        {"code": c, "display": d, "definition": df} for (c, d, df) in concepts
    ]
    return emit(cs)


def valueset(rid, name, title, description, includes, immutable=False):
    vs = meta("ValueSet", rid, name, title, description)
    if immutable:
        vs["immutable"] = True
    vs["compose"] = {"include": includes}
    return emit(vs)


def build_terminology():
    codesystem(
        "pqom-message-event",
        "PqomMessageEvent",
        "PQOM message events",
        "The event of a PQOM FHIR message (MessageHeader.eventCoding): what the message is for, who sends it to whom.",
        [
            ("pqom-submission", "PQOM submission", "A trust (or its EPR) submits its perinatal quality reports (MeasureReport, optionally Measure and Organization) to the gateway."),
            ("pqom-forward", "PQOM forward", "The gateway forwards an accepted, validated submission (with its signed Provenance and the mapped indicator reports) to a subscriber such as an ICB (LMNS)."),
            ("pqom-regional-bundle", "PQOM regional bundle", "The gateway sends a region (or the national surveillance group) the pooled indicator reports for its ICBs and trusts for a period."),
        ],
    )
    codesystem(
        "pqom-stratifier",
        "PqomStratifier",
        "PQOM stratifiers",
        "What a MeasureReport stratifier breaks a group down by. PQOM Annex 1 asks for subgroup analyses at a minimum by ethnic group and by "
        "deprivation of the mother's postcode; the other codes carry the coded form of workforce and qualitative items. "
        "Each code names the code system its stratum values come from (invariant pqom-3 of the trust MeasureReport profile). "
        "The codes match the catalogue's [[stratifier]] list (mappings/catalogue/annex1.toml).",
        [(c, d, df) for c, d, df, _ in STRATIFIERS],
    )
    deciles = [
        (str(i), f"IMD decile {i}" + (" (most deprived)" if i == 1 else " (least deprived)" if i == 10 else ""),
         f"The LSOA of residence is in decile {i} of the English Index of Multiple Deprivation (1 = most deprived 10%, 10 = least deprived 10%).")
        for i in range(1, 11)
    ]
    special = [
        ("resident-elsewhere", "Resident outside England", "The postcode is valid but outside England, so no English IMD rank applies."),
        ("pseudo-postcode", "Pseudo postcode", "A pseudo postcode was recorded (for example no fixed abode, not known ZZ99 codes), so no LSOA can be derived."),
        ("unknown", "Unknown", "No postcode was recorded, or it could not be matched to an LSOA."),
    ]
    codesystem(
        "imd-decile",
        "ImdDecile",
        "Index of Multiple Deprivation decile",
        "English Index of Multiple Deprivation decile of the LSOA of the mother's residence (1 = most deprived ... 10 = least deprived), with codes for residence that has no English IMD rank. No FHIR CodeSystem exists for IMD deciles, so PQOM defines this one.",
        deciles + special,
    )
    codesystem(
        "pqom-reporting-frequency",
        "PqomReportingFrequency",
        "PQOM reporting frequency",
        "How often an indicator is reported by a trust to its board and up the oversight model (catalogue field `frequency`).",
        [
            ("monthly", "Monthly", "Reported every calendar month."),
            ("quarterly", "Quarterly", "Reported every quarter (the Annex 1 minimum for board-level measures)."),
            ("annual", "Annual", "Reported once a year (for example staff survey based measures)."),
        ],
    )
    codesystem(
        "pqom-measure-kind",
        "PqomMeasureKind",
        "PQOM measure kind",
        "How an indicator's value is computed from its counts (catalogue field `kind`). Pooled values always sum counts and recompute; rates are never averaged.",
        [
            ("proportion", "Proportion", "numerator / denominator x 100 (%); the numerator is a subset of the denominator."),
            ("rate-per-1000", "Rate per 1,000", "numerator / denominator x 1,000; the numerator is a subset of the denominator."),
            ("ratio", "Ratio", "numerator / denominator x 100; the numerator is not a subset of the denominator, so the value may exceed 100 (e.g. staffing fill rate)."),
            ("count", "Count", "A count (initial-population) with no denominator."),
            ("themes", "Themes", "Counts by insight category and harm level (initial-population), with narrative."),
        ],
    )

    codesystem(
        "pqom-provenance-agent-type",
        "PqomProvenanceAgentType",
        "PQOM provenance agent type",
        "Provenance agent roles that R4's provenance-participant-type lacks. The binding on Provenance.agent.type is extensible.",
        [("transmitter", "Transmitter", "The system that transmitted the record to its recipient (the gateway, when forwarding).")],
    )
    valueset("pqom-provenance-agent-type", "PqomProvenanceAgentType", "PQOM provenance agent type",
             "All PQOM provenance agent types.", [{"system": f"{BASE}/CodeSystem/pqom-provenance-agent-type"}])

    # The UK Core ethnic category CodeSystem, copied unchanged (Apache 2.0; licence kept in its copyright element).
    uk = json.loads(UKCORE_SRC.read_text()) if UKCORE_SRC.exists() else json.loads((OUT / "CodeSystem-UKCore-EthnicCategoryEngland.json").read_text())
    emit(uk)

    valueset(
        "pqom-message-event", "PqomMessageEvent", "PQOM message events",
        "All PQOM message events.", [{"system": f"{BASE}/CodeSystem/pqom-message-event"}],
    )
    valueset(
        "pqom-stratifier", "PqomStratifier", "PQOM stratifiers",
        "All PQOM stratifier codes.", [{"system": STRAT_CS}],
    )
    valueset(
        "imd-decile", "ImdDecile", "IMD decile",
        "IMD deciles 1-10 and the codes for residence without an English IMD rank.", [{"system": f"{BASE}/CodeSystem/imd-decile"}],
    )
    valueset(
        "pqom-ethnic-category", "PqomEthnicCategory", "Ethnic category (England)",
        "Ethnic category of the mother, all codes of the UK Core CodeSystem UKCore-EthnicCategoryEngland (NHS Data Dictionary). "
        "Equivalent to UK Core's ValueSet UKCore-EthnicCategory restricted to England; defined here so that the PQOM package loads without UK Core.",
        [{"system": ETHNIC_CS}],
    )
    # ValueSets over the catalogue's CodeSystems (generated on branch `map` from mappings/catalogue/annex1.toml).
    for rid, name, title in [
        ("imd-quintile", "ImdQuintile", "IMD quintile"),
        ("pqom-staff-group", "PqomStaffGroup", "PQOM staff groups"),
        ("pqom-harm-level", "PqomHarmLevel", "Harm level"),
        ("pqom-insight-category", "PqomInsightCategory", "Insight theme category"),
        ("pqom-feedback-source", "PqomFeedbackSource", "Service-user feedback source"),
        ("pqom-external-body", "PqomExternalBody", "External body raising a concern"),
        ("pqom-mis-safety-action", "PqomMisSafetyAction", "Maternity Incentive Scheme safety action"),
        ("pqom-theme", "PqomTheme", "PQOM Annex 1 themes"),
        ("pqom-data-source", "PqomDataSource", "PQOM indicator data sources"),
    ]:
        valueset(rid, name, title, f"All codes of CodeSystem {rid} (generated from the indicator catalogue).", [{"system": f"{BASE}/CodeSystem/{rid}"}])
    valueset(
        "pqom-reporting-frequency", "PqomReportingFrequency", "PQOM reporting frequency", "All reporting frequencies.",
        [{"system": f"{BASE}/CodeSystem/pqom-reporting-frequency"}],
    )
    valueset(
        "pqom-measure-kind", "PqomMeasureKind", "PQOM measure kind", "All measure kinds.", [{"system": f"{BASE}/CodeSystem/pqom-measure-kind"}],
    )
    valueset(
        "pqom-stratum-value", "PqomStratumValue", "PQOM stratum values",
        "Every value a PQOM stratum may take: the union of the code systems the pqom-stratifier codes name. "
        "Which of these a stratum must use depends on its stratifier's code (invariant pqom-3 of the trust MeasureReport profile).",
        [{"system": sys} for sys in dict.fromkeys(sys for _, _, _, sys in STRATIFIERS)],
    )
    valueset(
        "pqom-indicator", "PqomIndicator", "PQOM Annex 1 indicators",
        "All PQOM Annex 1 indicators (CodeSystem pqom-indicator, generated from the gateway's catalogue).", [{"system": IND_CS}],
    )
    valueset(
        "pqom-report-group-code", "PqomReportGroupCode", "PQOM report group codes",
        "The codes a trust MeasureReport group may carry: a PQOM Annex 1 indicator (for reports on Measure pqom-annex1) "
        "or a source measure the trust already computes (MSDS CQIM, NNAP, MBRRACE-UK, ...) that the gateway maps to indicators.",
        [{"system": IND_CS}, {"system": SRC_CS}],
    )

    def naming(rid, name, description, uri, kind="identifier", type_=None, usage=None):
        ns = {"resourceType": "NamingSystem", "id": rid, "name": name, "status": "draft", "kind": kind, "date": DATE,
              "publisher": COMMON["publisher"], "contact": COMMON["contact"], "responsible": None,
              "description": description, "jurisdiction": COMMON["jurisdiction"]}
        del ns["responsible"]
        if type_:
            ns["type"] = type_
        if usage:
            ns["usage"] = usage
        ns["uniqueId"] = [{"type": "uri", "value": uri, "preferred": True}]
        return emit(ns)

    naming(
        "ods-organization-code", "OdsOrganizationCode",
        "NHS Organisation Data Service (ODS) organisation code: identifies trusts (e.g. RM1), ICBs (e.g. QMM) and NHS England regions (e.g. Y61). "
        "Defined by NHS England; described here because every PQOM reporter, sender and author is identified by it.",
        ODS,
        type_={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "XX", "display": "Organization identifier"}]},
        usage="Organization.identifier; MeasureReport.reporter.identifier; MessageHeader.sender.identifier; Provenance.agent.who.identifier.",
    )
    naming(
        "pqom-report-id", "PqomReportId",
        "Business identifier of a trust's PQOM report, assigned by the trust and stable across resubmissions: a corrected report for the same "
        "measure and period carries the same identifier and a later MeasureReport.date, and supersedes the earlier one. "
        "Recommended form {ODS code}-{measure id}-{period start yyyy-mm}, e.g. RM1-pqom-annex1-2026-10.",
        f"{BASE}/Id/report-id",
        usage="MeasureReport.identifier (slice pqomReportId of the trust MeasureReport profile).",
    )
    naming(
        "pqom-message-header-id", "PqomMessageHeaderId",
        "Identifier of a FHIR message the gateway received: the MessageHeader.id of the submission as the trust sent it. "
        "The forwarding Provenance names the original message with it (entity slice message).",
        f"{BASE}/Id/message-header-id",
        usage="Provenance.entity.what.identifier (slice message).",
    )
    naming(
        "pqom-submission-sha256", "PqomSubmissionSha256",
        "SHA-256 digest, as 64 lower-case hexadecimal digits, of the exact bytes of a submission as the gateway received it "
        "(before any parsing or re-serialisation). Binds a forwarded bundle to what the trust sent.",
        f"{BASE}/Id/submission-sha256",
        usage="Provenance.entity.what.identifier (slice sha256).",
    )
    naming(
        "pqom-gateway-instance", "PqomGatewayInstance",
        "Identifier of one pqom-gateway instance (the Device that assembles, signs and forwards).",
        f"{BASE}/Id/gateway-instance",
        usage="Device.identifier of the gateway Device contained in forwarding Provenance.",
    )


# ---------------------------------------------------------------------------------------------
# StructureDefinitions
# ---------------------------------------------------------------------------------------------


def constraint(key, human, expression, requirements=None, severity="error"):
    c = {"key": key, "severity": severity, "human": human, "expression": expression}
    if requirements:
        c["requirements"] = requirements
    return c


def element(eid, short=None, definition=None, **kw):
    """An ElementDefinition for the differential. eid is the element id; path is derived from it (slice names dropped)."""
    path = ".".join(part.split(":")[0] for part in eid.split("."))
    e = {"id": eid, "path": path}
    if ":" in eid.split(".")[-1]:
        e["sliceName"] = eid.split(".")[-1].split(":")[1]
    if short:
        e["short"] = short
    if definition:
        e["definition"] = definition
    e.update(kw)
    return e


def profile(rid, name, title, rtype, description, elements, purpose=None, base=None, constraints_owner=None):
    sd = meta("StructureDefinition", rid, name, title, description)
    if purpose:
        sd["purpose"] = purpose
    sd.update({
        "fhirVersion": "4.0.1",
        "mapping": [{"identity": "pqom", "uri": f"{BASE}/ig/pqom", "name": "PQOM Annex 1"}],
        "kind": "resource",
        "abstract": False,
        "type": rtype,
        "baseDefinition": base or f"{R4}/{rtype}",
        "derivation": "constraint",
        "differential": {"element": elements},
    })
    del sd["mapping"]
    # Each constraint records the profile it came from (ElementDefinition.constraint.source).
    for e in elements:
        for c in e.get("constraint", []):
            c["source"] = sd["url"]
    return emit(sd)


def extension_sd(rid, name, title, description, contexts, elements, purpose=None):
    sd = meta("StructureDefinition", rid, name, title, description)
    if purpose:
        sd["purpose"] = purpose
    sd.update({
        "fhirVersion": "4.0.1",
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": c} for c in contexts],
        "type": "Extension",
        "baseDefinition": f"{R4}/Extension",
        "derivation": "constraint",
        "differential": {"element": elements},
    })
    for e in elements:
        for c in e.get("constraint", []):
            c["source"] = sd["url"]
    return emit(sd)


def simple_extension(rid, name, title, description, contexts, value_type, short, binding=None, constraints=None, value_extra=None):
    url = f"{BASE}/StructureDefinition/{rid}"
    root = element("Extension", short=short, definition=description)
    if constraints:
        root["constraint"] = constraints
    value = element(f"Extension.value[x]", short=short, min=1, type=[{"code": value_type}])
    if binding:
        value["binding"] = binding
    if value_extra:
        value.update(value_extra)
    return extension_sd(rid, name, title, description, contexts, [
        root,
        element("Extension.extension", max="0"),
        element("Extension.url", fixedUri=url),
        value,
    ])


def build_extensions():
    # Measure extensions: the URLs and value types the catalogue export writes (src/map/catalogue.rs, branch `map`).
    simple_extension(
        "pqom-measure-kind", "PqomMeasureKindExt", "PQOM measure kind",
        "How the indicator's value is computed from its counts: proportion, rate-per-1000, ratio (may exceed 100), count, themes.",
        ["Measure"], "code", "proportion | rate-per-1000 | ratio | count | themes",
        binding={"strength": "required", "valueSet": f"{BASE}/ValueSet/pqom-measure-kind"},
    )
    simple_extension(
        "pqom-measure-frequency", "PqomMeasureFrequency", "PQOM reporting frequency",
        "How often a trust reports the measure (Annex 1: board-level measures at least quarterly; staff survey measures annually).",
        ["Measure"], "code", "monthly | quarterly | annual",
        binding={"strength": "required", "valueSet": f"{BASE}/ValueSet/pqom-reporting-frequency"},
    )
    simple_extension(
        "pqom-measure-unit", "PqomMeasureUnit", "PQOM measure unit",
        "Unit of the indicator's value as displayed, e.g. '%', 'per 1,000 total births', 'incidents'.",
        ["Measure"], "string", "Display unit of the value",
    )
    simple_extension(
        "pqom-measure-data-source", "PqomMeasureDataSource", "PQOM data source",
        "Where the counts behind the indicator come from (MSDS CQIM, NNAP, MBRRACE-UK, workforce returns, ...). Repeats.",
        ["Measure"], "Coding", "Data source",
        binding={"strength": "required", "valueSet": f"{BASE}/ValueSet/pqom-data-source"},
    )
    simple_extension(
        "pqom-measure-target", "PqomMeasureTarget", "PQOM target",
        "The national or local target the indicator is judged against (drives the SPC assurance icon), e.g. >= 90 %.",
        ["Measure"], "Quantity", "Target, with comparator",
        constraints=[constraint("pqom-42", "A target has a value and a comparator", "value.value.exists() and value.comparator.exists()")],
    )
    simple_extension(
        "pqom-group-narrative", "PqomGroupNarrative", "PQOM group narrative",
        "Narrative that goes with a group's counts: themes and actions for qualitative items (incident themes, service user and staff feedback, "
        "external concerns, Regulation 28 reports), or a commentary on a numeric indicator. Markdown, no patient-identifiable information.",
        ["MeasureReport.group"], "markdown", "Themes and actions (markdown)",
    )
    url = f"{BASE}/StructureDefinition/pqom-completeness"
    extension_sd(
        "pqom-completeness", "PqomCompleteness", "PQOM reporting completeness",
        "On a pooled indicator report (ICB, region or national), how many organisations reported for the period out of how many were expected to, "
        "and which did not. Readers must not compare a pooled rate with others without looking at it.",
        ["MeasureReport"],
        [
            element("Extension", short="Organisations reported / expected",
                    definition="Completeness of a pooled report: reported <= expected, and one missing entry per organisation expected that did not report.",
                    constraint=[constraint("pqom-31", "reported must not exceed expected",
                                           "extension.where(url = 'reported').value <= extension.where(url = 'expected').value")]),
            element("Extension.extension", min=2,
                    slicing={"discriminator": [{"type": "value", "path": "url"}], "rules": "closed"}),
            element("Extension.extension:reported", short="Organisations that reported", min=1, max="1"),
            element("Extension.extension:reported.extension", max="0"),
            element("Extension.extension:reported.url", fixedUri="reported"),
            element("Extension.extension:reported.value[x]", min=1, type=[{"code": "unsignedInt"}]),
            element("Extension.extension:expected", short="Organisations expected to report", min=1, max="1"),
            element("Extension.extension:expected.extension", max="0"),
            element("Extension.extension:expected.url", fixedUri="expected"),
            element("Extension.extension:expected.value[x]", min=1, type=[{"code": "unsignedInt"}]),
            element("Extension.extension:missing", short="An organisation expected that did not report (ODS code)", min=0, max="*",
                    constraint=[constraint("pqom-32", "A missing organisation is identified by its ODS code",
                                           f"value.system = '{ODS}' and value.value.exists()")]),
            element("Extension.extension:missing.extension", max="0"),
            element("Extension.extension:missing.url", fixedUri="missing"),
            element("Extension.extension:missing.value[x]", min=1, type=[{"code": "Identifier"}]),
            element("Extension.url", fixedUri=url),
            element("Extension.value[x]", max="0"),
        ],
    )
    simple_extension(
        "pqom-reporting-level", "PqomReportingLevel", "PQOM reporting level",
        "The level of the oversight model an indicator report is for: a trust, an ICB (LMNS), an NHS England region, or national.",
        ["MeasureReport"], "code", "trust | icb | region | national",
        binding={"strength": "required", "valueSet": f"{BASE}/ValueSet/pqom-reporting-level"},
    )
    codesystem(
        "pqom-reporting-level", "PqomReportingLevel", "PQOM reporting level",
        "Levels of the perinatal quality oversight model an indicator is reported for.",
        [
            ("trust", "Trust", "One provider trust."),
            ("icb", "ICB", "An integrated care board (its LMNS): the pooled figures of its trusts."),
            ("region", "Region", "An NHS England region: the pooled figures of its ICBs."),
            ("national", "National", "England: the pooled figures for the National Perinatal Surveillance Group."),
        ],
    )
    valueset("pqom-reporting-level", "PqomReportingLevel", "PQOM reporting level", "All reporting levels.",
             [{"system": f"{BASE}/CodeSystem/pqom-reporting-level"}])


def ods_reference(prefix, target, short):
    """Elements requiring a Reference to target carrying an ODS identifier."""
    return [
        element(prefix, short=short, min=1, type=[{"code": "Reference", "targetProfile": [f"{R4}/{target}"]}]),
        element(f"{prefix}.identifier", short="ODS code of the organisation", min=1,
                definition="The organisation is identified by its NHS ODS code, so that the gateway can route and pool without resolving the reference."),
        element(f"{prefix}.identifier.system", min=1, fixedUri=ODS, short="ODS organisation code system"),
        element(f"{prefix}.identifier.value", min=1, short="ODS code, e.g. RM1, QMM, Y61"),
    ]


def build_messaging():
    mh = "MessageHeader"
    profile(
        "pqom-messageheader", "PqomMessageHeader", "PQOM MessageHeader", mh,
        "The MessageHeader of a PQOM message: the event (submission, forward, regional bundle), the sending organisation by ODS code, "
        "the sending system's endpoint, and the reports the message is about.",
        [
            element(mh, short="PQOM message header"),
            element(f"{mh}.id", min=1, short="Message id (unique per message; used to detect replays)",
                    definition="The message id. A receiver that sees the same id again returns the original response and does not process it twice (FHIR messaging)."),
            element(f"{mh}.event[x]", short="PQOM message event", type=[{"code": "Coding"}],
                    definition="The event, as a Coding from pqom-message-event (eventUri is not allowed).",
                    binding={"strength": "required", "valueSet": f"{BASE}/ValueSet/pqom-message-event"}),
            *ods_reference(f"{mh}.sender", "Organization", "The submitting organisation (trust, or the gateway's operator when forwarding)"),
            element(f"{mh}.source.endpoint", short="Endpoint of the sending system",
                    definition="Where the sending system can be reached; required by base FHIR, kept 1..1 here."),
            element(f"{mh}.focus", min=1, short="The reports (or measures) the message carries",
                    definition="The MeasureReport (or Measure) resources in the Bundle that the message is about.",
                    type=[{"code": "Reference", "targetProfile": [f"{R4}/MeasureReport", f"{R4}/Measure"]}]),
            element(f"{mh}.focus.reference", min=1, short="Reference to an entry of the message Bundle (its fullUrl)"),
        ],
        purpose="FHIR messaging puts the MessageHeader first in a message Bundle; the gateway routes on event and sender and deduplicates on the id.",
    )

    b = "Bundle"
    entry_slices = [
        ("messageheader", "MessageHeader", f"{BASE}/StructureDefinition/pqom-messageheader", 1, "1", "The PQOM MessageHeader (first entry)"),
        ("measurereport", "MeasureReport", f"{BASE}/StructureDefinition/pqom-trust-measurereport", 0, "*", "A trust MeasureReport"),
        ("measure", "Measure", f"{BASE}/StructureDefinition/pqom-measure", 0, "*", "A Measure the reports refer to (optional)"),
        ("organization", "Organization", None, 0, "*", "An Organization referenced by the header or reports (optional)"),
    ]
    els = [
        element(b, short="PQOM submission message",
                constraint=[constraint("pqom-60", "A submission message has the event pqom-submission",
                                       f"entry.first().resource.is(MessageHeader) implies entry.first().resource.event.where(system = '{BASE}/CodeSystem/pqom-message-event').code = 'pqom-submission'",
                                       "Forwarded and regional bundles are produced by the gateway; trusts only submit.")]),
        element(f"{b}.identifier", min=1, short="Business identifier of this Bundle instance"),
        element(f"{b}.identifier.system", min=1),
        element(f"{b}.identifier.value", min=1),
        element(f"{b}.type", fixedCode="message", short="message", definition="A PQOM submission is a FHIR message (Bundle.type = message)."),
        element(f"{b}.timestamp", min=1, short="When the message was assembled"),
        element(f"{b}.entry", min=1, short="MessageHeader, then the reports",
                definition="The first entry is the MessageHeader (base invariant bdl-12); then MeasureReports, and optionally Measures and Organizations. "
                           "No other resource type is allowed (closed slicing by resource type).",
                slicing={"discriminator": [{"type": "type", "path": "resource"}], "ordered": False, "rules": "closed",
                         "description": "Entries sliced by resource type; the allowed types are the slices."}),
        element(f"{b}.entry.fullUrl", min=1, short="Absolute URL or urn:uuid of the entry",
                definition="Every entry has a fullUrl, so that MessageHeader.focus and references between entries resolve inside the Bundle."),
        element(f"{b}.entry.resource", min=1),
        element(f"{b}.entry.request", max="0"),
        element(f"{b}.entry.response", max="0"),
    ]
    for slice_name, rtype, prof, mn, mx, short in entry_slices:
        els.append(element(f"{b}.entry:{slice_name}", short=short, min=mn, max=mx))
        t = {"code": rtype}
        if prof:
            t["profile"] = [prof]
        els.append(element(f"{b}.entry:{slice_name}.resource", type=[t]))
    profile(
        "pqom-submission-bundle", "PqomSubmissionBundle", "PQOM submission message", b,
        "A trust's PQOM submission: a FHIR message Bundle, POSTed to $process-message, whose first entry is a PQOM MessageHeader "
        "(event pqom-submission) and whose other entries are the trust's MeasureReports (and optionally the Measures and Organizations they reference).",
        els,
        purpose="One message per submission lets the gateway accept or reject it atomically, deduplicate it by MessageHeader.id and forward it with a signed Provenance.",
    )


def build_measurereports():
    mr = "MeasureReport"
    g = f"{mr}.group"
    s = f"{g}.stratifier"
    st = f"{s}.stratum"
    num, den, ip = pop_where("numerator"), pop_where("denominator"), pop_where("initial-population")
    ratio_exempt = (f"code.coding.exists(system = '{IND_CS}' and code = 'midwife-staffing-fill-rate')")

    def pop_slices(prefix, where):
        """Population slicing by code, with numerator / denominator / initial-population slices. count 1..1 in each."""
        out = [
            element(f"{prefix}", short=f"Populations of the {where}: numerator and denominator (or initial-population for count items)",
                    definition=f"Sliced by code. Every population of the {where} has a code from measure-population and a count.",
                    slicing={"discriminator": [{"type": "pattern", "path": "code"}], "rules": "open",
                             "description": "By measure-population code."}),
            element(f"{prefix}.code", min=1, short="measure-population code"),
            element(f"{prefix}.count", min=1, short="Count (required)",
                    definition="The count is required: the gateway pools counts across trusts and recomputes rates from them; it never averages rates."),
        ]
        for code in ("numerator", "denominator", "initial-population"):
            out += [
                element(f"{prefix}:{code}", short=f"{pop_coding(code)['display']}", min=0, max="1"),
                element(f"{prefix}:{code}.code", min=1, patternCodeableConcept={"coding": [{"system": POP, "code": code}]}),
                element(f"{prefix}:{code}.count", min=1),
            ]
        return out

    group_pops = pop_slices(f"{g}.population", "group")
    group_pops[2]["constraint"] = [constraint("pqom-11", "A count is never negative", "$this >= 0")]
    stratum_pops = pop_slices(f"{st}.population", "stratum")
    stratum_pops[2]["constraint"] = [constraint("pqom-12", "A count is never negative", "$this >= 0")]

    def strata_sum(code):
        return f"stratum.{pop_where(code)}.count.aggregate($this + $total, 0)"

    def group_count(code):
        return f"%context.{pop_where(code)}.count.first()"

    sum_le = " and ".join(
        f"({strata_sum(c)} <= {group_count(c)} or %context.{pop_where(c)}.count.empty())" for c in ("numerator", "denominator", "initial-population")
    )
    complete = (
        f"(code.coding.exists(system = '{STRAT_CS}' and code = 'ethnic-category') and stratum.value.coding.code.distinct().count() = 18)"
        f" or (code.coding.exists(system = '{STRAT_CS}' and code = 'imd-decile') and stratum.value.coding.code.distinct().count() = 13)"
        f" or (code.coding.exists(system = '{STRAT_CS}' and code = 'imd-quintile') and stratum.value.coding.code.distinct().count() = 8)"
    )
    sum_eq = " and ".join(
        f"({strata_sum(c)} = {group_count(c)} or %context.{pop_where(c)}.count.empty())" for c in ("numerator", "denominator", "initial-population")
    )
    strat_systems = [(c, sys) for c, _, _, sys in STRATIFIERS]
    value_by_strat = " and ".join(
        f"(code.coding.exists(system = '{STRAT_CS}' and code = '{c}') implies stratum.value.coding.all(system = '{sys}'))"
        for c, sys in strat_systems
    )
    overlapping = " and ".join(f"code.coding.exists(system = '{STRAT_CS}' and code = '{c}').not()" for c in OVERLAPPING_STRATIFIERS)
    pops_shape = (f"({num}.exists() = {den}.exists()) and ({num}.exists() or {ip}.exists())")

    els = [
        element(mr, short="PQOM trust MeasureReport (summary)",
                constraint=[constraint("pqom-6", "Each group code appears at most once in a report",
                                       "group.code.coding.code.isDistinct()",
                                       "The gateway keys stored figures by (reporter, measure, period, group code); a duplicate group is ambiguous.")]),
        element(f"{mr}.identifier", min=1, short="Business identifier, stable across resubmissions",
                definition="At least one identifier, with system and value. A corrected resubmission for the same measure and period carries the same "
                           "identifier and a later date, and supersedes the earlier report (slice pqomReportId is the recommended form).",
                slicing={"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}),
        element(f"{mr}.identifier.system", min=1),
        element(f"{mr}.identifier.value", min=1),
        element(f"{mr}.identifier:pqomReportId", min=0, max="1", short="PQOM report id: {ODS}-{measure}-{yyyy-mm}"),
        element(f"{mr}.identifier:pqomReportId.system", min=1, fixedUri=f"{BASE}/Id/report-id"),
        element(f"{mr}.status", short="complete | pending | error",
                definition="complete for a final report; pending for a provisional one (the gateway stores and forwards it marked provisional); error to withdraw."),
        element(f"{mr}.type", fixedCode="summary", short="summary", definition="Trusts submit aggregate counts only (DEQM summary MeasureReport): no patient data."),
        element(f"{mr}.measure", short="Canonical of a PQOM Measure ({base}/Measure/pqom-annex1 or a source-measure family)",
                definition="The PQOM Measure the report is for: pqom-annex1 (groups coded with pqom-indicator) or a source-measure family such as msds-cqim, nnap, mbrrace-mortality.",
                constraint=[constraint("pqom-7", "The measure is a PQOM Measure (canonical under https://fhir.pqom-gateway.org/Measure/)",
                                       f"$this.startsWith('{BASE}/Measure/')")]),
        element(f"{mr}.subject", max="0", short="Not used: the report is about the reporter's population"),
        element(f"{mr}.date", min=1, short="When the report was generated",
                definition="Required: it orders resubmissions for the same identifier (the latest date wins)."),
        *ods_reference(f"{mr}.reporter", "Organization", "The reporting trust, by ODS code"),
        element(f"{mr}.period", short="Reporting period (start <= end, base invariant per-1)",
                definition="The period the counts cover, with both start and end (start <= end is the base invariant per-1)."),
        element(f"{mr}.period.start", min=1),
        element(f"{mr}.period.end", min=1),
        element(g, min=1, short="One group per indicator or source measure",
                constraint=[
                    constraint("pqom-1",
                               "The numerator count does not exceed the denominator count (except ratio indicators such as midwife-staffing-fill-rate)",
                               f"{ratio_exempt} or (({num}.count.exists() and {den}.count.exists()) implies {num}.count.first() <= {den}.count.first())",
                               "Proportions: a numerator is a subset of its denominator. A fill rate (actual / planned hours) may exceed 100%."),
                    constraint("pqom-2",
                               "In every stratum, the numerator count does not exceed the denominator count (except ratio indicators)",
                               f"{ratio_exempt} or stratifier.stratum.all(({num}.count.exists() and {den}.count.exists()) implies {num}.count.first() <= {den}.count.first())"),
                    constraint("pqom-4",
                               "For each stratifier (except insight-category, whose strata may overlap), the strata counts of each population add up to no more than the group's count",
                               f"stratifier.where({overlapping}).all({sum_le})",
                               "Strata partition the group's population (a mother has one ethnic category and one residence), so they cannot add up to more than the whole."),
                    constraint("pqom-5",
                               "Where a stratifier lists every category of its code system (ethnic category: 18 codes incl. Z and 99; IMD decile: 13 codes incl. resident-elsewhere, pseudo-postcode, unknown), the strata counts add up to the group's count",
                               f"stratifier.where({complete}).all({sum_eq})",
                               "A complete breakdown must reconcile with the total, or pooled figures by ethnicity or deprivation would not match pooled totals."),
                    constraint("pqom-9",
                               "A group reports numerator and denominator together, or an initial-population count alone (count items such as incident themes)",
                               pops_shape),
                    constraint("pqom-8", "Each stratifier code appears at most once in a group", "stratifier.code.coding.code.isDistinct()"),
                ]),
        element(f"{g}.code", min=1, short="Indicator or source measure code",
                definition="The group's code: a pqom-indicator code (reports on pqom-annex1) or a pqom-source-measure code (reports on a source-measure family).",
                binding={"strength": "required", "valueSet": f"{BASE}/ValueSet/pqom-report-group-code"}),
        element(f"{g}.code.coding", min=1),
        element(f"{g}.code.coding.system", min=1),
        element(f"{g}.code.coding.code", min=1),
        *group_pops,
        element(f"{g}.measureScore", short="Optional: the gateway recomputes rates from counts"),
        element(s, short="Breakdown by ethnic category, IMD decile, ...",
                definition="PQOM Annex 1 asks for subgroup analyses at a minimum by ethnic group and by deprivation based on the mother's postcode.",
                constraint=[
                    constraint("pqom-3",
                               "Stratum values come from the code system of the stratifier's code (ethnic-category: UKCore-EthnicCategoryEngland; imd-decile: imd-decile; imd-quintile: imd-quintile; staff-group: pqom-staff-group; insight-category, harm-level, feedback-source, external-body, mis-safety-action: the pqom- CodeSystem of that name)",
                               value_by_strat),
                    constraint("pqom-10", "Each stratum value appears at most once in a stratifier", "stratum.value.coding.code.isDistinct()"),
                ]),
        element(f"{s}.code", min=1, max="1", short="Stratifier code (pqom-stratifier)",
                binding={"strength": "required", "valueSet": f"{BASE}/ValueSet/pqom-stratifier"}),
        element(f"{s}.code.coding", min=1),
        element(f"{s}.code.coding.system", min=1),
        element(f"{s}.code.coding.code", min=1),
        element(f"{s}.stratum", min=1,
                constraint=[constraint("pqom-13",
                                       "A stratum reports numerator and denominator together, or an initial-population count alone",
                                       pops_shape)]),
        element(f"{st}.value", min=1, short="Stratum value (ethnic category, IMD decile, ...)",
                definition="A CodeableConcept from the code system that matches the stratifier code (invariant pqom-3).",
                binding={"strength": "required", "valueSet": f"{BASE}/ValueSet/pqom-stratum-value"}),
        element(f"{st}.value.coding", min=1),
        element(f"{st}.value.coding.system", min=1),
        element(f"{st}.value.coding.code", min=1),
        element(f"{st}.component", max="0", short="Not used: one stratifier per dimension"),
        element(f"{st}.population", min=1),
        *stratum_pops,
        element(f"{mr}.evaluatedResource", max="0", short="Not used: summary counts carry no patient data"),
    ]
    # Extension for qualitative items' narrative
    els.insert(els.index(next(e for e in els if e["id"] == f"{g}.code")),
               element(f"{g}.extension", slicing={"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}))
    els.insert(els.index(next(e for e in els if e["id"] == f"{g}.code")),
               element(f"{g}.extension:narrative", min=0, max="1", short="Themes and actions (qualitative items)",
                       type=[{"code": "Extension", "profile": [f"{BASE}/StructureDefinition/pqom-group-narrative"]}]))
    profile(
        "pqom-trust-measurereport", "PqomTrustMeasureReport", "PQOM trust MeasureReport", mr,
        "What a trust submits: a summary MeasureReport (shaped after HL7 DEQM summary MeasureReport and SANER) for one PQOM Measure and one "
        "reporting period, with one group per indicator (or source measure), numerator and denominator counts, and strata by ethnic category and IMD decile.",
        els,
        purpose="PQOM Annex 1: the board-level data, with subgroup analyses by ethnic group and by deprivation, reported up the oversight model.",
    )

    # --- indicator MeasureReport: the gateway's mapped output -------------------------------
    els = [
        element(mr, short="PQOM indicator report (gateway output)",
                constraint=[
                    constraint("pqom-20", "A pooled report (reporting level icb, region or national) carries the completeness extension",
                               f"extension.where(url = '{BASE}/StructureDefinition/pqom-reporting-level').value in ('icb' | 'region' | 'national') "
                               f"implies extension.where(url = '{BASE}/StructureDefinition/pqom-completeness').exists()",
                               "A pooled rate with missing trusts is not comparable; readers need to see how many trusts it covers."),
                ]),
        element(f"{mr}.extension", slicing={"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}),
        element(f"{mr}.extension:reportingLevel", min=1, max="1", short="trust | icb | region | national",
                type=[{"code": "Extension", "profile": [f"{BASE}/StructureDefinition/pqom-reporting-level"]}]),
        element(f"{mr}.extension:completeness", min=0, max="1", short="Trusts reported / expected (pooled reports)",
                type=[{"code": "Extension", "profile": [f"{BASE}/StructureDefinition/pqom-completeness"]}]),
        element(f"{mr}.status", short="complete | pending (provisional source data) | error"),
        element(f"{mr}.type", fixedCode="summary"),
        element(f"{mr}.measure", short="Canonical of the indicator Measure, {base}/Measure/{indicator code}",
                constraint=[constraint("pqom-21", "The measure is a PQOM indicator Measure", f"$this.startsWith('{BASE}/Measure/')")]),
        element(f"{mr}.subject", max="0"),
        element(f"{mr}.date", min=1, short="When the gateway computed the report"),
        *ods_reference(f"{mr}.reporter", "Organization", "The trust, ICB or region the figures are for, by ODS code"),
        element(f"{mr}.period.start", min=1),
        element(f"{mr}.period.end", min=1),
        element(g, min=1, max="1", short="The indicator",
                constraint=[
                    constraint("pqom-22", "The numerator does not exceed the denominator (except ratio indicators such as midwife-staffing-fill-rate)",
                               f"{ratio_exempt} or (({num}.count.exists() and {den}.count.exists()) implies {num}.count.first() <= {den}.count.first())"),
                    constraint("pqom-23", "A group reports numerator and denominator together, or an initial-population count alone", pops_shape),
                ]),
        element(f"{g}.code", min=1, short="pqom-indicator code",
                binding={"strength": "required", "valueSet": f"{BASE}/ValueSet/pqom-indicator"}),
        *pop_slices(f"{g}.population", "group"),
        element(f"{g}.measureScore", short="Rate computed by the gateway from the counts (per the Measure's scoring and unit)"),
        element(f"{g}.measureScore.value", min=1),
        element(f"{g}.stratifier.code", min=1, max="1", binding={"strength": "required", "valueSet": f"{BASE}/ValueSet/pqom-stratifier"}),
        element(f"{g}.stratifier.stratum.value", min=1, binding={"strength": "required", "valueSet": f"{BASE}/ValueSet/pqom-stratum-value"}),
        element(f"{g}.stratifier.stratum.component", max="0"),
        element(f"{mr}.evaluatedResource", short="The trust MeasureReports (versioned references) the figures were computed from"),
    ]
    profile(
        "pqom-indicator-measurereport", "PqomIndicatorMeasureReport", "PQOM indicator MeasureReport", mr,
        "The gateway's mapped output: one Annex 1 indicator for one organisation (trust, ICB or region) and one period, with counts, the rate the gateway "
        "computed from them, and, for pooled ICB/regional/national reports, how many trusts reported of how many expected.",
        els,
        purpose="Subscribers (ICB LMNS, regional perinatal quality forums, NPSG) receive indicators in one shape, whatever each trust submitted.",
    )


def build_measure():
    m = "Measure"
    group_scoring = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Measure.group.scoring"
    ext = lambda rid: [{"code": "Extension", "profile": [f"{BASE}/StructureDefinition/{rid}"]}]
    profile(
        "pqom-measure", "PqomMeasure", "PQOM Measure", m,
        "A Measure as the PQOM catalogue publishes it (generated from mappings/catalogue/annex1.toml): the Annex 1 report (pqom-annex1), each Annex 1 "
        "indicator, and each source-measure family (MSDS CQIM, NNAP, MBRRACE-UK). Versioned canonical under the PQOM base, scoring (for the Measure or per group), "
        "improvement notation where there is a direction, group codes from pqom-indicator or pqom-source-measure, kind, reporting frequency, unit, data sources, "
        "target, and the Annex 1 themes as topic.",
        [
            element(m, short="PQOM Measure",
                    constraint=[constraint("pqom-41", "The Measure has a scoring, or every group has one (R5 group scoring cross-version extension)",
                                           f"scoring.exists() or group.all(extension.where(url = '{group_scoring}').exists())",
                                           "A multi-indicator Measure such as pqom-annex1 mixes proportions and counts, so scores per group.")]),
            element(f"{m}.extension", slicing={"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}),
            element(f"{m}.extension:kind", min=0, max="1", short="proportion | rate-per-1000 | ratio | count | themes", type=ext("pqom-measure-kind")),
            element(f"{m}.extension:frequency", min=0, max="1", short="monthly | quarterly | annual", type=ext("pqom-measure-frequency")),
            element(f"{m}.extension:unit", min=0, max="1", short="Display unit of the value", type=ext("pqom-measure-unit")),
            element(f"{m}.extension:dataSource", min=0, max="*", short="Data sources", type=ext("pqom-measure-data-source")),
            element(f"{m}.extension:target", min=0, max="1", short="Target (with comparator)", type=ext("pqom-measure-target")),
            element(f"{m}.url", min=1, short="{base}/Measure/{id}",
                    constraint=[constraint("pqom-40", "A PQOM Measure's canonical is under https://fhir.pqom-gateway.org/Measure/",
                                           f"$this.startsWith('{BASE}/Measure/')")]),
            element(f"{m}.version", min=1, short="Catalogue version; MeasureReport.measure may pin it (url|version)"),
            element(f"{m}.name", min=1),
            element(f"{m}.title", min=1),
            element(f"{m}.status"),
            element(f"{m}.publisher", min=1),
            element(f"{m}.description", min=1),
            element(f"{m}.topic", short="Annex 1 themes (pqom-theme); the first is the primary theme",
                    binding={"strength": "extensible", "valueSet": f"{BASE}/ValueSet/pqom-theme"}),
            element(f"{m}.scoring", short="proportion | ratio | cohort (absent when each group has its own scoring, pqom-41)",
                    binding={"strength": "required", "valueSet": "http://hl7.org/fhir/ValueSet/measure-scoring"}),
            element(f"{m}.improvementNotation", short="increase | decrease; absent when neither direction is improvement (e.g. caesarean rates)",
                    definition="Which direction is improvement: drives the SPC icons (improvement vs concern). Absent means neutral."),
            element(f"{m}.group", min=1),
            element(f"{m}.group.code", min=1, short="pqom-indicator or pqom-source-measure code",
                    binding={"strength": "required", "valueSet": f"{BASE}/ValueSet/pqom-report-group-code"}),
            element(f"{m}.group.population", min=1),
            element(f"{m}.group.population.code", min=1),
        ],
        purpose="Trusts and subscribers resolve MeasureReport.measure to these; the gateway maps group codes to indicators from them.",
    )


def build_provenance():
    p = "Provenance"
    ag = f"{p}.agent"
    profile(
        "pqom-provenance", "PqomProvenance", "PQOM forwarding Provenance", p,
        "The Provenance the gateway adds to every bundle it forwards (built by src/deliver/provenance.rs): which resources (versioned), when, "
        "from which trust (author, by ODS code), assembled and transmitted by which gateway (Device), from which original message (its MessageHeader id "
        "and the SHA-256 of the bytes received), signed with a JWS by the gateway.",
        [
            element(p, short="PQOM forwarding provenance"),
            element(f"{p}.target", short="The forwarded resources, as versioned references",
                    definition="Versioned references ({type}/{id}/_history/{vid}), so that the Provenance covers exactly the version forwarded.",
                    constraint=[constraint("pqom-50", "Each target is a versioned reference (contains /_history/)",
                                           "reference.exists() and reference.contains('/_history/')")]),
            element(f"{p}.recorded", short="When the gateway recorded the forwarding"),
            element(f"{p}.activity", min=1, short="transmit (ISO 21089 lifecycle)",
                    patternCodeableConcept={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle", "code": "transmit"}]},
                    definition="The gateway transmitted the record (ISO 21089 lifecycle event 'transmit'; the base binding is extensible and has no transmit code)."),
            element(ag, short="author (trust) and assembler (gateway)",
                    slicing={"discriminator": [{"type": "pattern", "path": "type"}], "rules": "open", "description": "By agent type."}),
            element(f"{ag}.type", min=1),
            element(f"{ag}:author", min=1, max="1", short="The trust that submitted the data"),
            element(f"{ag}:author.type", min=1, patternCodeableConcept={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}]}),
            *ods_reference(f"{ag}:author.who", "Organization", "The trust, by ODS code"),
            element(f"{ag}:assembler", min=1, max="1", short="The gateway that validated and forwarded the data"),
            element(f"{ag}:assembler.type", min=1, patternCodeableConcept={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "assembler"}]}),
            element(f"{ag}:assembler.who", type=[{"code": "Reference", "targetProfile": [f"{R4}/Device"]}], short="The gateway instance (Device)"),
            element(f"{ag}:assembler.who.display", min=1, short="Gateway name and version"),
            element(f"{ag}:transmitter", min=0, max="1", short="The gateway, as the system that transmitted the bundle"),
            element(f"{ag}:transmitter.type", min=1, patternCodeableConcept={"coding": [{"system": f"{BASE}/CodeSystem/pqom-provenance-agent-type", "code": "transmitter"}]}),
            element(f"{ag}:transmitter.who", type=[{"code": "Reference", "targetProfile": [f"{R4}/Device"]}]),
            element(f"{p}.entity", min=2, short="The original message: its MessageHeader id and the SHA-256 of its bytes",
                    definition="Two source entities describe the one submission, because a Reference holds one identifier: the MessageHeader id "
                               "(what the trust and the gateway correlate on) and the SHA-256 of the bytes received (what binds the exact content).",
                    slicing={"discriminator": [{"type": "value", "path": "what.identifier.system"}], "rules": "open",
                             "description": "By the identifier system of the entity."}),
            element(f"{p}.entity.role", fixedCode="source"),
            element(f"{p}.entity.what.identifier", min=1),
            element(f"{p}.entity.what.identifier.system", min=1),
            element(f"{p}.entity.what.identifier.value", min=1),
            element(f"{p}.entity:message", min=1, max="1", short="The submission's MessageHeader.id"),
            element(f"{p}.entity:message.what.identifier.system", min=1, fixedUri=f"{BASE}/Id/message-header-id"),
            element(f"{p}.entity:sha256", min=1, max="1", short="SHA-256 of the submission bytes as received"),
            element(f"{p}.entity:sha256.what.identifier.system", min=1, fixedUri=f"{BASE}/Id/submission-sha256"),
            element(f"{p}.entity:sha256.what.identifier.value", min=1, short="64 lower-case hex digits",
                    constraint=[constraint("pqom-30", "The digest is 64 lower-case hexadecimal digits", "matches('^[0-9a-f]{64}$')")]),
            element(f"{p}.signature", min=1, max="1", short="JWS signature by the gateway",
                    definition="A JSON Web Signature (detached payload) over the forwarded bundle, made by the gateway's key."),
            element(f"{p}.signature.who", short="The gateway Device that signed",
                    type=[{"code": "Reference", "targetProfile": [f"{R4}/Device"]}]),
            element(f"{p}.signature.sigFormat", min=1, fixedCode="application/jose"),
            element(f"{p}.signature.data", min=1),
        ],
        purpose="Subscribers can check who sent what, when, through which gateway, and that it was not altered.",
    )


def check_no_empty(value, where):
    """FHIR JSON forbids empty arrays, empty objects, null and empty strings."""
    if isinstance(value, dict):
        if not value:
            sys.exit(f"{where}: empty object")
        for k, v in value.items():
            check_no_empty(v, f"{where}.{k}")
    elif isinstance(value, list):
        if not value:
            sys.exit(f"{where}: empty array")
        for i, v in enumerate(value):
            check_no_empty(v, f"{where}[{i}]")
    elif value is None or value == "":
        sys.exit(f"{where}: null or empty string")


def main():
    build_terminology()
    build_extensions()
    build_messaging()
    build_measurereports()
    build_measure()
    build_provenance()
    OUT.mkdir(exist_ok=True)
    ids = set()
    for res in RESOURCES:
        name = f"{res['resourceType']}-{res['id']}.json"
        if name in ids:
            sys.exit(f"duplicate resource {name}")
        ids.add(name)
        check_no_empty(res, name)
        (OUT / name).write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    # Remove files this script wrote last time but no longer generates (profiles/ also holds the catalogue's files,
    # so only our own list is trusted).
    listing = OUT / ".build_profiles.files"
    previous = set(listing.read_text().split()) if listing.exists() else set()
    for stale in sorted(previous - ids):
        (OUT / stale).unlink(missing_ok=True)
        print(f"removed stale {stale}")
    listing.write_text("".join(f"{n}\n" for n in sorted(ids)))
    print(f"wrote {len(RESOURCES)} resources to {OUT.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
