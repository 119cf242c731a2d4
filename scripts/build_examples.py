#!/usr/bin/env python3
"""Build the PQOM example instances in profiles/examples/ and their manifest.

valid/:   realistic instances that must validate with no errors against their profile
          (the gateway's demo data and the README's examples): trust RM1 (Norfolk and Norwich University
          Hospitals, ICB QMM, region Y61) and RGP (James Paget University Hospitals) for October 2026.
invalid/: each a valid instance with exactly ONE rule broken; manifest.json names the element
          (FHIRPath expression, as the HL7 validator writes it) and the issue code the error must carry.

Counts are synthetic but plausible (a ~5,500 and a ~2,000 births-a-year unit) and internally consistent:
strata add up to their group, numerators never exceed denominators. Deterministic: no randomness.

Standard library only. Run: python3 scripts/build_examples.py
"""

import copy
import re
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "profiles" / "examples"

BASE = "https://fhir.pqom-gateway.org"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
POP = "http://terminology.hl7.org/CodeSystem/measure-population"
ETHNIC = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland"
IMD = f"{BASE}/CodeSystem/imd-decile"
IND = f"{BASE}/CodeSystem/pqom-indicator"
STRAT = f"{BASE}/CodeSystem/pqom-stratifier"
STAFF = f"{BASE}/CodeSystem/pqom-staff-group"
HARM = f"{BASE}/CodeSystem/pqom-harm-level"
P = f"{BASE}/StructureDefinition"

ORGS = {
    "RM1": "Norfolk and Norwich University Hospitals NHS Foundation Trust",
    "RGP": "James Paget University Hospitals NHS Foundation Trust",
    "RCX": "The Queen Elizabeth Hospital, King's Lynn, NHS Foundation Trust",
    "QMM": "NHS Norfolk and Waveney Integrated Care Board",
    "Y61": "East of England (NHS England region)",
}

ETHNIC_CODES = [
    ("A", "White - British", 0.780), ("B", "White - Irish", 0.003), ("C", "White - Any other White background", 0.085),
    ("D", "Mixed - White and Black Caribbean", 0.006), ("E", "Mixed - White and Black African", 0.004),
    ("F", "Mixed - White and Asian", 0.005), ("G", "Mixed - Any other mixed background", 0.007),
    ("H", "Asian or Asian British - Indian", 0.012), ("J", "Asian or Asian British - Pakistani", 0.003),
    ("K", "Asian or Asian British - Bangladeshi", 0.004), ("L", "Asian or Asian British - Any other Asian background", 0.008),
    ("M", "Black or Black British - Caribbean", 0.002), ("N", "Black or Black British - African", 0.015),
    ("P", "Black or Black British - Any other Black background", 0.002), ("R", "Other Ethnic Groups - Chinese", 0.004),
    ("S", "Other Ethnic Groups - Any other ethnic group", 0.012), ("Z", "Not stated", 0.020), ("99", "Not known", 0.013),
]
IMD_CODES = [(str(i), f"IMD decile {i}" + (" (most deprived)" if i == 1 else " (least deprived)" if i == 10 else ""), w)
             for i, w in zip(range(1, 11), [0.12, 0.11, 0.10, 0.10, 0.10, 0.10, 0.10, 0.09, 0.08, 0.07])] + [
    ("resident-elsewhere", "Resident outside England", 0.005), ("pseudo-postcode", "Pseudo postcode", 0.002), ("unknown", "Unknown", 0.006)]
STAFF_CODES = [("midwife", "Midwives"), ("maternity-support-worker", "Maternity support workers"), ("obstetric-consultant", "Obstetric consultants"),
               ("obstetric-doctor", "Obstetric doctors (trainees, specialty and specialist grades)"), ("anaesthetist", "Anaesthetists"),
               ("neonatologist", "Neonatologists and paediatricians"), ("neonatal-nurse", "Neonatal nurses")]
INSIGHT = f"{BASE}/CodeSystem/pqom-insight-category"

INDICATOR_TITLES = {
    "stillbirth-rate": "Stillbirths per 1,000 total births",
    "neonatal-death-rate": "Neonatal deaths per 1,000 live births",
    "pph-1500ml": "Postpartum haemorrhage of 1,500 ml or more per 1,000 maternities",
    "oasi-tears": "3rd or 4th degree tears per 1,000 singleton vaginal births (37+0 to 42+6)",
    "preterm-birth": "Preterm births (22+0 to 36+6) per 1,000 singleton live births",
    "smoking-at-delivery": "Smoking at time of delivery (%)",
    "caesarean-robson-1": "Caesarean births in Robson group 1 (%)",
    "training-compliance": "Core competency framework training compliance (%)",
    "midwife-staffing-fill-rate": "Midwife staffing: actual versus planned hours (%)",
    "psi-themes": "Patient safety incidents: themes and harm levels",
}


def allocate(total, weights):
    """Split an integer total by weights (largest remainder), deterministic."""
    s = sum(weights)
    raw = [total * w / s for w in weights]
    out = [int(r) for r in raw]
    rest = total - sum(out)
    for i in sorted(range(len(raw)), key=lambda i: (raw[i] - out[i], -i), reverse=True)[:rest]:
        out[i] += 1
    return out


def allocate_capped(total, weights, caps):
    """Like allocate, but no share exceeds its cap (numerator shares within denominator strata)."""
    out = [0] * len(weights)
    remaining = total
    active = [i for i in range(len(weights)) if caps[i] > 0 and weights[i] > 0]
    while remaining > 0 and active:
        share = allocate(remaining, [weights[i] for i in active])
        spill = 0
        for i, sh in zip(active, share):
            take = min(sh, caps[i] - out[i])
            out[i] += take
            spill += sh - take
        remaining = spill
        active = [i for i in active if out[i] < caps[i]]
    if remaining:
        raise ValueError("numerator cannot fit in denominator strata")
    return out


def narrative(text):
    """Generated narrative (dom-6): a one-paragraph human summary."""
    esc = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{esc}</p></div>'}


def cc(system, code, display=None):
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return {"coding": [c]}


def population(code, count):
    return {"code": cc(POP, code, {"numerator": "Numerator", "denominator": "Denominator", "initial-population": "Initial Population"}[code]),
            "count": count}


def ods_ref(code, reference=None):
    r = {}
    if reference:
        r["reference"] = reference
    r["identifier"] = {"system": ODS, "value": code}
    r["display"] = ORGS[code]
    return r


def stratifier(code, display, system, cats, num, den, num_bias=None, keep_zero=True):
    dens = allocate(den, [w for (_, _, w) in cats])
    bias = num_bias or [1.0] * len(cats)
    nums = allocate_capped(num, [d * b for d, b in zip(dens, bias)], dens)
    strata = []
    for (c, d, _), n, dd in zip(cats, nums, dens):
        if dd == 0 and not keep_zero:
            continue
        strata.append({"value": cc(system, c, d), "population": [population("numerator", n), population("denominator", dd)]})
    return {"code": [cc(STRAT, code, display)], "stratum": strata}


def deprivation_bias(steep):
    # Outcomes such as smoking and preterm birth are steeply more common in more deprived deciles.
    return [1 + steep * (10 - i) / 9 for i in range(1, 11)] + [1.0, 1.0, 1.0]


def indicator_group(code, num, den, strat=True, keep_zero=True, imd_steep=0.8):
    g = {"code": cc(IND, code, INDICATOR_TITLES[code]), "population": [population("numerator", num), population("denominator", den)]}
    if strat:
        g["stratifier"] = [
            stratifier("ethnic-category", "Ethnic category", ETHNIC, ETHNIC_CODES, num, den, keep_zero=keep_zero),
            stratifier("imd-decile", "IMD decile", IMD, IMD_CODES, num, den, num_bias=deprivation_bias(imd_steep), keep_zero=keep_zero),
        ]
    return g


def trust_report(ods, rid, groups, reporter_ref=None, date="2026-11-06T09:30:00Z"):
    return {
        "resourceType": "MeasureReport",
        "id": rid,
        "meta": {"profile": [f"{P}/pqom-trust-measurereport"]},
        "text": narrative(f"PQOM Annex 1 report of {ORGS[ods]} ({ods}) for October 2026: "
                          + ", ".join(g["code"]["coding"][0]["code"] for g in groups) + "."),
        "identifier": [{"system": f"{BASE}/Id/report-id", "value": f"{ods}-pqom-annex1-2026-10"}],
        "status": "complete",
        "type": "summary",
        "measure": f"{BASE}/Measure/pqom-annex1",
        "date": date,
        "reporter": ods_ref(ods, reporter_ref),
        "period": {"start": "2026-10-01", "end": "2026-10-31"},
        "group": groups,
    }


def rm1_report(reporter_ref=None):
    groups = [
        indicator_group("stillbirth-rate", 2, 468, imd_steep=1.0),
        indicator_group("pph-1500ml", 14, 461, imd_steep=0.3),
        indicator_group("oasi-tears", 9, 270, imd_steep=0.0),
        indicator_group("preterm-birth", 31, 452, imd_steep=0.9),
        indicator_group("smoking-at-delivery", 33, 455, imd_steep=2.5),
        indicator_group("caesarean-robson-1", 19, 118, imd_steep=0.0),
    ]
    training = {"code": cc(IND, "training-compliance", INDICATOR_TITLES["training-compliance"]),
                "population": [population("numerator", 0), population("denominator", 0)],
                "stratifier": [{"code": [cc(STRAT, "staff-group", "Staff group")], "stratum": []}]}
    staff = [("midwife", 292, 318), ("maternity-support-worker", 71, 80), ("obstetric-consultant", 17, 19), ("obstetric-doctor", 21, 27), ("anaesthetist", 21, 27),
             ("neonatologist", 17, 19), ("neonatal-nurse", 86, 94)]
    for code, n, d in staff:
        training["stratifier"][0]["stratum"].append(
            {"value": cc(STAFF, code, dict(STAFF_CODES)[code]), "population": [population("numerator", n), population("denominator", d)]})
    training["population"] = [population("numerator", sum(s[1] for s in staff)), population("denominator", sum(s[2] for s in staff))]
    groups.append(training)
    return trust_report("RM1", "rm1-pqom-annex1-2026-10", groups, reporter_ref)


def rgp_report():
    groups = [
        # Smaller unit: report only the strata that have births (zero strata left out), so the strata need only not exceed the group.
        indicator_group("pph-1500ml", 5, 171, keep_zero=False, imd_steep=0.3),
        indicator_group("smoking-at-delivery", 19, 168, keep_zero=False, imd_steep=2.5),
        {"code": cc(IND, "midwife-staffing-fill-rate", INDICATOR_TITLES["midwife-staffing-fill-rate"]),
         # A ratio: 4,312 actual hours against 4,200 planned (102.7%). pqom-1 exempts ratio indicators from numerator <= denominator.
         "population": [population("numerator", 4312), population("denominator", 4200)]},
        {"extension": [{"url": f"{P}/pqom-group-narrative",
                        "valueMarkdown": "37 incidents reported in October. Themes: delayed escalation of abnormal CTG (6, two moderate harm; "
                                         "PSII commissioned), missed VTE risk assessment at booking (5), delay to category 2 caesarean birth "
                                         "(4, one moderate harm). Actions: CTG fresh-eyes audit, VTE prompt in the booking template."}],
         "code": cc(IND, "psi-themes", INDICATOR_TITLES["psi-themes"]),
         "population": [population("initial-population", 37)],
         "stratifier": [
             # An incident can carry several themes, so insight-category strata may add up to more than the group (pqom-4 exempts it).
             {"code": [cc(STRAT, "insight-category", "Insight category")], "stratum": [
                 {"value": cc(INSIGHT, c, d), "population": [population("initial-population", n)]}
                 for c, d, n in [("fetal-monitoring", "Fetal monitoring and assessment of fetal wellbeing", 6),
                                 ("assessment-and-escalation", "Clinical assessment, recognition of deterioration and escalation", 9),
                                 ("induction-and-labour-care", "Induction of labour and intrapartum care", 4),
                                 ("medication", "Medication", 5), ("communication", "Communication, information and involvement", 7),
                                 ("documentation", "Documentation and record keeping", 5), ("staffing-and-capacity", "Staffing, acuity and capacity", 3),
                                 ("other", "Other", 2)]]},
             {"code": [cc(STRAT, "harm-level", "Harm level")], "stratum": [
                 {"value": cc(HARM, c, d), "population": [population("initial-population", n)]}
                 for c, d, n in [("no-harm", "No harm", 24), ("low-harm", "Low harm", 10), ("moderate-harm", "Moderate harm", 3)]]}]},
    ]
    r = trust_report("RGP", "rgp-pqom-annex1-2026-10", groups, date="2026-11-07T14:05:00Z")
    return r


def rcx_minimal():
    """A small trust report (RCX, one group), the base of most invalid MeasureReport examples."""
    g = {"code": cc(IND, "smoking-at-delivery", INDICATOR_TITLES["smoking-at-delivery"]),
         "population": [population("numerator", 16), population("denominator", 148)],
         "stratifier": [
             {"code": [cc(STRAT, "ethnic-category", "Ethnic category")], "stratum": [
                 {"value": cc(ETHNIC, "A", "White - British"), "population": [population("numerator", 13), population("denominator", 119)]},
                 {"value": cc(ETHNIC, "C", "White - Any other White background"), "population": [population("numerator", 3), population("denominator", 21)]},
                 {"value": cc(ETHNIC, "Z", "Not stated"), "population": [population("numerator", 0), population("denominator", 5)]},
             ]},
             {"code": [cc(STRAT, "imd-decile", "IMD decile")], "stratum": [
                 {"value": cc(IMD, "1", "IMD decile 1 (most deprived)"), "population": [population("numerator", 7), population("denominator", 29)]},
                 {"value": cc(IMD, "2", "IMD decile 2"), "population": [population("numerator", 5), population("denominator", 33)]},
                 {"value": cc(IMD, "5", "IMD decile 5"), "population": [population("numerator", 3), population("denominator", 41)]},
                 {"value": cc(IMD, "9", "IMD decile 9"), "population": [population("numerator", 1), population("denominator", 38)]},
             ]},
         ]}
    r = trust_report("RCX", "rcx-pqom-annex1-2026-10", [g], date="2026-11-05T16:45:00Z")
    r["identifier"][0]["value"] = "RCX-pqom-annex1-2026-10"
    return r


MH_ID_RM1 = "3f6d2b1e-8c4a-4e7b-9a51-0d2c7e4b9f10"
UUID_MR_RM1 = "urn:uuid:8a1f7c52-3d9e-4b60-a2f4-5c6e1d0b7a93"
UUID_ORG_RM1 = "urn:uuid:c2e4a6b8-1f3d-4a5c-9e7b-2d4f6a8c0e12"


def rm1_header():
    return {
        "resourceType": "MessageHeader",
        "id": MH_ID_RM1,
        "meta": {"profile": [f"{P}/pqom-messageheader"]},
        "text": narrative("PQOM submission from Norfolk and Norwich University Hospitals (RM1): the October 2026 pqom-annex1 report."),
        "eventCoding": {"system": f"{BASE}/CodeSystem/pqom-message-event", "code": "pqom-submission", "display": "PQOM submission"},
        "destination": [{"name": "PQOM gateway", "endpoint": "https://gateway.pqom-gateway.org/fhir/$process-message"}],
        "sender": ods_ref("RM1", UUID_ORG_RM1),
        "source": {"name": "NNUH maternity information system", "software": "Maternity EPR PQOM extract", "version": "4.2.0",
                   "endpoint": "https://integration.rm1.example.nhs.uk/fhir"},
        "focus": [{"reference": UUID_MR_RM1}],
    }


def rm1_org():
    return {"resourceType": "Organization", "id": "RM1",
            "text": narrative(f"{ORGS['RM1']} (ODS RM1), part of {ORGS['QMM']} (QMM)."),
            "identifier": [{"system": ODS, "value": "RM1"}], "active": True,
            "type": [cc("http://terminology.hl7.org/CodeSystem/organization-type", "prov", "Healthcare Provider")],
            "name": ORGS["RM1"],
            "partOf": ods_ref("QMM")}


def rm1_bundle():
    mh = rm1_header()
    return {
        "resourceType": "Bundle",
        "id": "rm1-submission-2026-10",
        "meta": {"profile": [f"{P}/pqom-submission-bundle"]},
        "identifier": {"system": "https://fhir.rm1.example.nhs.uk/Id/pqom-message", "value": "RM1-PQOM-2026-10-0001"},
        "type": "message",
        "timestamp": "2026-11-06T09:30:12Z",
        "entry": [
            {"fullUrl": f"urn:uuid:{MH_ID_RM1}", "resource": mh},
            {"fullUrl": UUID_MR_RM1, "resource": rm1_report(UUID_ORG_RM1)},
            {"fullUrl": UUID_ORG_RM1, "resource": rm1_org()},
        ],
    }


def indicator_report(rid, level, ods, code, num, den, score, unit, completeness=None, evaluated=None, status="complete"):
    ext = [{"url": f"{P}/pqom-reporting-level", "valueCode": level}]
    if completeness:
        reported, expected, missing = completeness
        ext.append({"url": f"{P}/pqom-completeness", "extension":
                    [{"url": "reported", "valueUnsignedInt": reported}, {"url": "expected", "valueUnsignedInt": expected}] +
                    [{"url": "missing", "valueIdentifier": {"system": ODS, "value": m}} for m in missing]})
    r = {
        "resourceType": "MeasureReport", "id": rid,
        "meta": {"profile": [f"{P}/pqom-indicator-measurereport"]},
        "text": narrative(f"{INDICATOR_TITLES[code]}, {ORGS[ods]} ({ods}), October 2026: {num} / {den} = {score} {unit}."
                          + (f" {completeness[0]} of {completeness[1]} trusts reported." if completeness else "")),
        "extension": ext,
        "status": status, "type": "summary",
        "measure": f"{BASE}/Measure/{code}",
        "date": "2026-11-08T02:00:00Z",
        "reporter": ods_ref(ods),
        "period": {"start": "2026-10-01", "end": "2026-10-31"},
        "group": [{"code": cc(IND, code, INDICATOR_TITLES[code]),
                   "population": [population("numerator", num), population("denominator", den)],
                   "measureScore": {"value": score, "unit": unit}}],
    }
    if evaluated:
        r["evaluatedResource"] = [{"reference": e} for e in evaluated]
    return r


def measure_example():
    """An indicator Measure in the shape the catalogue export writes (id prefixed example- so it cannot clash with the real one)."""
    crit = lambda text: {"language": "text/plain", "expression": text}
    return {
        "resourceType": "Measure", "id": "example-smoking-at-delivery",
        "meta": {"profile": [f"{P}/pqom-measure"]},
        "text": narrative("Smoking at time of delivery (example indicator Measure): proportion, monthly, lower is better."),
        "extension": [
            {"url": f"{P}/pqom-measure-kind", "valueCode": "proportion"},
            {"url": f"{P}/pqom-measure-frequency", "valueCode": "monthly"},
            {"url": f"{P}/pqom-measure-unit", "valueString": "%"},
            {"url": f"{P}/pqom-measure-data-source", "valueCoding": {"system": f"{BASE}/CodeSystem/pqom-data-source", "code": "msds-cqim",
                                                                    "display": "Maternity Services Data Set clinical quality improvement metrics"}},
        ],
        "url": f"{BASE}/Measure/example-smoking-at-delivery",
        "version": "1.0.0",
        "name": "ExampleSmokingAtDelivery",
        "title": "Smoking at time of delivery (example)",
        "status": "draft",
        "experimental": True,
        "date": "2026-11-23",
        "publisher": "pqom-gateway project",
        "description": "Example of a PQOM indicator Measure as the catalogue publishes it: women known to smoke at the time of delivery, "
                       "as a percentage of maternities with a known smoking status (MSDS clinical quality improvement metric).",
        "topic": [cc(f"{BASE}/CodeSystem/pqom-theme", "structures-and-standards",
                     "Structures and standards underpinning safer, more personalised, equitable care")],
        "scoring": cc("http://terminology.hl7.org/CodeSystem/measure-scoring", "proportion", "Proportion"),
        "improvementNotation": cc("http://terminology.hl7.org/CodeSystem/measure-improvement-notation", "decrease", "Decreased score indicates improvement"),
        "group": [{
            "code": cc(IND, "smoking-at-delivery", INDICATOR_TITLES["smoking-at-delivery"]),
            "population": [
                {"code": cc(POP, "numerator", "Numerator"), "criteria": crit("Maternities where the mother was a smoker at the time of delivery.")},
                {"code": cc(POP, "denominator", "Denominator"), "criteria": crit("Maternities in the period with a known smoking status at delivery.")},
            ],
            "stratifier": [
                {"code": cc(STRAT, "ethnic-category", "Ethnic category"), "criteria": crit("Ethnic category of the mother.")},
                {"code": cc(STRAT, "imd-decile", "IMD decile"), "criteria": crit("IMD decile of the mother's residence at booking.")},
            ],
        }],
    }


SHA = "9c4e1f0a7b3d52e8c6a19f4d07e2b8356a1c9d0e4f7b2a6c8d1e3f5a7b9c0d2e"


def provenance_example():
    """The shape src/deliver/provenance.rs builds: contained gateway Device, three agents, two source entities."""
    gateway = {"reference": "#gateway", "type": "Device", "display": "pqom-gateway 0.1.0 (pqom-eoe-1)"}
    return {
        "resourceType": "Provenance", "id": "fwd-rm1-submission-2026-10",
        "meta": {"profile": [f"{P}/pqom-provenance"]},
        "text": narrative("Forwarded by pqom-gateway on 6 November 2026: RM1's October 2026 submission, signed (JWS)."),
        "contained": [{
            "resourceType": "Device", "id": "gateway",
            "identifier": [{"system": f"{BASE}/Id/gateway-instance", "value": "pqom-eoe-1"}],
            "deviceName": [{"name": "pqom-gateway", "type": "manufacturer-name"}],
            "version": [{"value": "0.1.0"}],
            "url": "https://gateway.pqom-gateway.org/fhir",
        }],
        "target": [{"reference": "MeasureReport/rm1-pqom-annex1-2026-10/_history/1"},
                   {"reference": "MeasureReport/rm1-stillbirth-rate-2026-10/_history/1"}],
        "recorded": "2026-11-06T09:30:14.218Z",
        "activity": cc("http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle", "transmit", "Transmit Record Lifecycle Event"),
        "agent": [
            {"type": cc("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "author", "Author"),
             "who": {"type": "Organization", **ods_ref("RM1")}},
            {"type": cc("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "assembler", "Assembler"), "who": gateway},
            {"type": cc(f"{BASE}/CodeSystem/pqom-provenance-agent-type", "transmitter", "Transmitter"), "who": gateway},
        ],
        "entity": [
            {"role": "source",
             "what": {"type": "MessageHeader", "identifier": {"system": f"{BASE}/Id/message-header-id", "value": MH_ID_RM1},
                      "display": "submission message from RM1"}},
            {"role": "source",
             "what": {"type": "Bundle", "identifier": {"system": f"{BASE}/Id/submission-sha256", "value": SHA},
                      "display": "SHA-256 of the submission as received"}},
        ],
        "signature": [{
            "type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.14", "display": "Source Signature"}],
            "when": "2026-11-06T09:30:14.218Z",
            "who": {"reference": "#gateway", "type": "Device"},
            "targetFormat": "application/fhir+json",
            "sigFormat": "application/jose",
            # base64 of a detached-payload JWS (ES256): header..signature
            "data": "ZXlKaGJHY2lPaUpGVXpJMU5pSXNJbXRwWkNJNkluQnhiMjB0WjJGMFpYZGhlUzB5TURJMklpd2lZalkwSWpwbVlXeHpaU3dpWTNKcGRDSTZXeUppTmpRaVhYMC4uTVlvMHFRYzNfYnJrOXo1RnRpckFIR2VWbjZ0V2ZwSUZ5c2tmU3Q4cm9Nb01aUmZ0WmY3ajRxU2lNS2hPbjBobFU4Zlp1dS1JZ2pUUlBZaDg1RHJZR2c=",
        }],
    }


# ---------------------------------------------------------------------------------------------

VALID = []  # (file, profile, resource, description)
INVALID = []  # (file, profile, resource, description, expression, code)


def valid(name, prof, res, desc):
    VALID.append((name, prof, res, desc))


def invalid(name, prof, res, desc, expression, code):
    INVALID.append((name, prof, res, desc, expression, code))


def main():
    trust, ind, bundle, mh_p, meas, prov = (f"{P}/{p}" for p in (
        "pqom-trust-measurereport", "pqom-indicator-measurereport", "pqom-submission-bundle", "pqom-messageheader", "pqom-measure", "pqom-provenance"))

    # ---- valid ----------------------------------------------------------------------------
    valid("Bundle-rm1-submission-2026-10.json", bundle, rm1_bundle(),
          "RM1 (Norfolk and Norwich) submission message for October 2026: MessageHeader, the pqom-annex1 MeasureReport, the trust Organization.")
    valid(f"MessageHeader-{MH_ID_RM1}.json", mh_p, rm1_header(), "The MessageHeader of RM1's October 2026 submission.")
    valid("MeasureReport-rm1-pqom-annex1-2026-10.json", trust, rm1_report(),
          "RM1's pqom-annex1 report for October 2026: six indicators each stratified by all 18 ethnic categories and all 13 IMD decile codes "
          "(complete breakdowns: strata add up to the group), and training compliance by staff group.")
    valid("MeasureReport-rgp-pqom-annex1-2026-10.json", trust, rgp_report(),
          "RGP's (James Paget) report: strata with births only (incomplete breakdowns), a ratio indicator above 100% (staffing fill rate), "
          "and a count item (incident themes by harm level, with narrative).")
    valid("MeasureReport-rcx-pqom-annex1-2026-10.json", trust, rcx_minimal(),
          "RCX's (King's Lynn) minimal report: one indicator with partial strata. The base of the invalid MeasureReport examples.")
    valid("MeasureReport-rm1-stillbirth-rate-2026-10.json", ind,
          indicator_report("rm1-stillbirth-rate-2026-10", "trust", "RM1", "stillbirth-rate", 2, 468, 4.27, "per 1,000 total births",
                           evaluated=["MeasureReport/rm1-pqom-annex1-2026-10/_history/1"]),
          "Indicator report computed by the gateway for RM1: stillbirth rate, October 2026.")
    valid("MeasureReport-qmm-smoking-at-delivery-2026-10.json", ind,
          indicator_report("qmm-smoking-at-delivery-2026-10", "icb", "QMM", "smoking-at-delivery", 52, 623, 8.35, "%",
                           completeness=(2, 3, ["RCX"]),
                           evaluated=["MeasureReport/rm1-pqom-annex1-2026-10/_history/1", "MeasureReport/rgp-pqom-annex1-2026-10/_history/1"]),
          "Pooled ICB (QMM) indicator: smoking at delivery from RM1 and RGP; RCX expected but not yet reported (2 of 3).")
    valid("Measure-example-smoking-at-delivery.json", meas, measure_example(), "An indicator Measure in the shape the catalogue publishes.")
    valid("Provenance-fwd-rm1-submission-2026-10.json", prov, provenance_example(), "Provenance the gateway attaches when forwarding RM1's submission.")

    # ---- invalid: trust MeasureReport -----------------------------------------------------
    base = rcx_minimal()

    def var(fn):
        r = copy.deepcopy(base)
        fn(r)
        return r

    g0 = "MeasureReport.group[0]"
    invalid("MeasureReport-trust-type-individual.json", trust, var(lambda r: r.update(type="individual")),
            "type is fixed to summary", "MeasureReport.type", "value")
    invalid("MeasureReport-trust-no-date.json", trust, var(lambda r: r.pop("date")),
            "date is required (orders resubmissions)", "MeasureReport", "structure")
    invalid("MeasureReport-trust-no-identifier.json", trust, var(lambda r: r.pop("identifier")),
            "identifier is required (resubmission versioning)", "MeasureReport", "structure")
    invalid("MeasureReport-trust-reporter-not-ods.json", trust,
            var(lambda r: r["reporter"]["identifier"].update(system="https://fhir.nhs.uk/Id/ods-site-code")),
            "reporter identifier must use the ODS organisation code system", "MeasureReport.reporter.identifier.system", "value")
    invalid("MeasureReport-trust-period-no-end.json", trust, var(lambda r: r["period"].pop("end")),
            "period.end is required", "MeasureReport.period", "structure")
    invalid("MeasureReport-trust-period-reversed.json", trust, var(lambda r: r.update(period={"start": "2026-10-31", "end": "2026-10-01"})),
            "period start after end (base invariant per-1)", "MeasureReport.period", "invariant")
    invalid("MeasureReport-trust-measure-not-pqom.json", trust, var(lambda r: r.update(measure="http://example.org/Measure/smoking")),
            "measure must be a PQOM Measure canonical (pqom-7)", "MeasureReport.measure", "invariant")
    invalid("MeasureReport-trust-group-code-unknown.json", trust,
            var(lambda r: r["group"][0]["code"]["coding"][0].update(code="smoking-at-booking", display="Smoking at booking")),
            "group code not in pqom-report-group-code (required binding)", f"{g0}.code", "code-invalid")
    invalid("MeasureReport-trust-group-no-code.json", trust, var(lambda r: r["group"][0].pop("code")),
            "group.code is required", g0, "structure")
    invalid("MeasureReport-trust-group-count-missing.json", trust, var(lambda r: r["group"][0]["population"][1].pop("count")),
            "denominator count missing in the group", f"{g0}.population[1]", "structure")
    invalid("MeasureReport-trust-stratum-count-missing.json", trust,
            var(lambda r: r["group"][0]["stratifier"][1]["stratum"][2]["population"][0].pop("count")),
            "numerator count missing in a stratum", f"{g0}.stratifier[1].stratum[2].population[0]", "structure")
    invalid("MeasureReport-trust-numerator-exceeds-denominator.json", trust,
            var(lambda r: r["group"][0]["population"][0].update(count=160)),
            "group numerator 160 > denominator 148 (pqom-1)", g0, "invariant")
    # 160 > 148 also breaks nothing else: strata numerators still add up to 16 <= 160.

    def stratum_num_gt_den(r):
        st = r["group"][0]["stratifier"][1]["stratum"][3]
        st["population"][0]["count"] = 1
        st["population"][1]["count"] = 0  # numerator 1 > denominator 0 in IMD decile 9; denominators still sum to <= 148
    invalid("MeasureReport-trust-stratum-numerator-exceeds-denominator.json", trust, var(stratum_num_gt_den),
            "stratum numerator 1 > denominator 0 (pqom-2)", g0, "invariant")
    invalid("MeasureReport-trust-strata-exceed-group.json", trust,
            var(lambda r: r["group"][0]["stratifier"][0]["stratum"][0]["population"][1].update(count=125)),
            "ethnic strata denominators add up to 151 > group denominator 148 (pqom-4)", g0, "invariant")

    def complete_imd_mismatch(r):
        # All 13 IMD codes listed (a complete breakdown), but denominators add up to 147, not 148 (pqom-5).
        dens = [29, 33, 12, 10, 9, 11, 6, 0, 38, 0, 0, 0, 0]  # sum 148 ...
        dens[4] = 8  # ... now 147
        nums = [7, 5, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0]  # sum 16
        r["group"][0]["stratifier"][1]["stratum"] = [
            {"value": cc(IMD, c, d), "population": [population("numerator", n), population("denominator", dd)]}
            for (c, d, _), n, dd in zip(IMD_CODES, nums, dens)]
    invalid("MeasureReport-trust-complete-strata-do-not-add-up.json", trust, var(complete_imd_mismatch),
            "all 13 IMD codes listed but denominators add up to 147, not 148 (pqom-5)", g0, "invariant")
    invalid("MeasureReport-trust-stratum-value-wrong-system.json", trust,
            var(lambda r: r["group"][0]["stratifier"][0]["stratum"][2].update(value=cc(IMD, "3", "IMD decile 3"))),
            "an IMD decile value in the ethnic-category stratifier (pqom-3)", f"{g0}.stratifier[0]", "invariant")
    invalid("MeasureReport-trust-stratum-value-unknown-code.json", trust,
            var(lambda r: r["group"][0]["stratifier"][0]["stratum"][1].update(value=cc(ETHNIC, "Q", "White - Polish"))),
            "ethnic category Q does not exist (required binding)", f"{g0}.stratifier[0].stratum[1].value", "code-invalid")
    invalid("MeasureReport-trust-stratifier-code-unknown.json", trust,
            var(lambda r: r["group"][0]["stratifier"][0].update(code=[cc(STRAT, "age-band", "Age band")])),
            "stratifier code age-band is not in pqom-stratifier (required binding)", f"{g0}.stratifier[0].code[0]", "code-invalid")
    invalid("MeasureReport-trust-duplicate-group.json", trust,
            var(lambda r: r["group"].append(copy.deepcopy(r["group"][0]))),
            "the same group code twice (pqom-6)", "MeasureReport", "invariant")
    invalid("MeasureReport-trust-negative-count.json", trust,
            var(lambda r: r["group"][0]["stratifier"][0]["stratum"][2]["population"][0].update(count=-1)),
            "a negative stratum count (pqom-12)", f"{g0}.stratifier[0].stratum[2].population[0].count", "invariant")
    invalid("MeasureReport-trust-numerator-without-denominator.json", trust,
            var(lambda r: r["group"][0]["population"].pop(1)),
            "a numerator without its denominator (pqom-9)", g0, "invariant")

    # ---- invalid: submission Bundle ---------------------------------------------------------
    def bvar(fn):
        b = rm1_bundle()
        fn(b)
        return b
    invalid("Bundle-submission-type-collection.json", bundle, bvar(lambda b: b.update(type="collection")),
            "Bundle.type is fixed to message", "Bundle.type", "value")
    invalid("Bundle-submission-entry-no-fullurl.json", bundle, bvar(lambda b: b["entry"][0].pop("fullUrl")),
            "every entry needs a fullUrl (here the MessageHeader's, which nothing references)", "Bundle.entry[0]", "structure")
    invalid("Bundle-submission-header-not-first.json", bundle, bvar(lambda b: b["entry"].insert(0, b["entry"].pop(1))),
            "the MessageHeader must be the first entry (bdl-12)", "Bundle", "invariant")
    invalid("Bundle-submission-patient-entry.json", bundle,
            bvar(lambda b: b["entry"].append({"fullUrl": "urn:uuid:0b7d9e21-4c3a-4f58-8e6d-1a2b3c4d5e6f",
                                              "resource": {"resourceType": "Patient", "id": "p1", "gender": "female"}})),
            "a Patient entry: not an allowed resource type (closed slicing)", "Bundle.entry[3]", "structure")
    invalid("Bundle-submission-event-forward.json", bundle,
            bvar(lambda b: b["entry"][0]["resource"]["eventCoding"].update(code="pqom-forward", display="PQOM forward")),
            "a trust submission with the event pqom-forward (pqom-60)", "Bundle", "invariant")
    invalid("Bundle-submission-report-no-reporter.json", bundle, bvar(lambda b: b["entry"][1]["resource"].pop("reporter")),
            "the MeasureReport entry has no reporter (trust MeasureReport profile)", "Bundle.entry[1].resource", "structure")

    # ---- invalid: MessageHeader -------------------------------------------------------------
    def hvar(fn):
        h = rm1_header()
        fn(h)
        return h
    invalid("MessageHeader-no-sender.json", mh_p, hvar(lambda h: h.pop("sender")), "sender is required", "MessageHeader", "structure")
    invalid("MessageHeader-sender-no-identifier.json", mh_p, hvar(lambda h: h["sender"].pop("identifier")),
            "sender needs its ODS identifier", "MessageHeader.sender", "structure")
    invalid("MessageHeader-no-focus.json", mh_p, hvar(lambda h: h.pop("focus")), "focus is required", "MessageHeader", "structure")
    invalid("MessageHeader-event-unknown.json", mh_p, hvar(lambda h: h["eventCoding"].update(code="pqom-query", display="PQOM query")),
            "event code not in pqom-message-event (required binding)", "MessageHeader.event.ofType(Coding)", "code-invalid")
    invalid("MessageHeader-event-uri.json", mh_p,
            hvar(lambda h: (h.pop("eventCoding"), h.update(eventUri=f"{BASE}/CodeSystem/pqom-message-event#pqom-submission"))),
            "eventUri is not allowed (event[x] restricted to Coding)", "MessageHeader.event.ofType(uri)", "structure")
    invalid("MessageHeader-no-id.json", mh_p, hvar(lambda h: h.pop("id")), "the message id is required", "MessageHeader", "structure")

    # ---- invalid: indicator MeasureReport ----------------------------------------------------
    def ivar(fn):
        r = indicator_report("qmm-smoking-at-delivery-2026-10", "icb", "QMM", "smoking-at-delivery", 52, 623, 8.35, "%",
                             completeness=(2, 3, ["RCX"]))
        fn(r)
        return r
    invalid("MeasureReport-indicator-pooled-no-completeness.json", ind, ivar(lambda r: r["extension"].pop(1)),
            "a pooled ICB report without the completeness extension (pqom-20)", "MeasureReport", "invariant")
    invalid("MeasureReport-indicator-reported-exceeds-expected.json", ind,
            ivar(lambda r: r["extension"][1]["extension"][0].update(valueUnsignedInt=4)),
            "completeness: 4 reported of 3 expected (pqom-31)", "MeasureReport.extension[1]", "invariant")
    invalid("MeasureReport-indicator-no-reporting-level.json", ind, ivar(lambda r: r["extension"].pop(0) and None),
            "the reporting level extension is required", "MeasureReport", "structure")
    invalid("MeasureReport-indicator-source-measure-code.json", ind,
            ivar(lambda r: r["group"][0]["code"]["coding"][0].update(code="not-an-indicator", display="Not an indicator")),
            "group code not in pqom-indicator (required binding)", "MeasureReport.group[0].code", "code-invalid")
    invalid("MeasureReport-indicator-score-no-value.json", ind, ivar(lambda r: r["group"][0]["measureScore"].pop("value")),
            "measureScore without a value", "MeasureReport.group[0].measureScore", "structure")
    invalid("MeasureReport-indicator-two-groups.json", ind, ivar(lambda r: r["group"].append(copy.deepcopy(r["group"][0]))),
            "an indicator report has exactly one group", "MeasureReport", "structure")

    # ---- invalid: Measure -------------------------------------------------------------------
    def mvar(fn):
        m = measure_example()
        fn(m)
        return m
    invalid("Measure-frequency-unknown.json", meas, mvar(lambda m: m["extension"][1].update(valueCode="weekly")),
            "reporting frequency weekly is not in pqom-reporting-frequency (required binding)", "Measure.extension[1].value.ofType(code)", "code-invalid")
    invalid("Measure-no-scoring.json", meas, mvar(lambda m: m.pop("scoring")),
            "no scoring for the Measure nor for its group (pqom-41)", "Measure", "invariant")
    invalid("Measure-url-outside-base.json", meas, mvar(lambda m: m.update(url="http://example.org/Measure/smoking")),
            "url outside the PQOM canonical base (pqom-40)", "Measure.url", "invariant")
    invalid("Measure-no-version.json", meas, mvar(lambda m: m.pop("version")), "version is required", "Measure", "structure")
    invalid("Measure-group-no-code.json", meas, mvar(lambda m: m["group"][0].pop("code")), "group.code is required", "Measure.group[0]", "structure")

    # ---- invalid: Provenance ----------------------------------------------------------------
    def pvar(fn):
        p = provenance_example()
        fn(p)
        return p
    invalid("Provenance-target-unversioned.json", prov, pvar(lambda p: p["target"][0].update(reference="MeasureReport/rm1-pqom-annex1-2026-10")),
            "target must be a versioned reference (pqom-50)", "Provenance.target[0]", "invariant")
    invalid("Provenance-sigformat-not-jose.json", prov, pvar(lambda p: p["signature"][0].update(sigFormat="application/pkcs7-signature")),
            "sigFormat is fixed to application/jose", "Provenance.signature[0].sigFormat", "value")
    invalid("Provenance-no-signature.json", prov, pvar(lambda p: p.pop("signature")), "signature is required", "Provenance", "structure")
    invalid("Provenance-no-assembler.json", prov, pvar(lambda p: p["agent"].pop(1)),
            "the gateway (assembler) agent is required", "Provenance", "structure")
    invalid("Provenance-sha256-not-hex.json", prov,
            pvar(lambda p: p["entity"][1]["what"]["identifier"].update(value="nOFfDSsh1BXSyzHzxDnVgpt3mh5kHjsJ4Y5rHmlgnUQ=")),
            "the digest must be 64 lower-case hex digits, not base64 (pqom-30)", "Provenance.entity[1].what.identifier.value", "invariant")
    invalid("Provenance-no-sha256-entity.json", prov, pvar(lambda p: p["entity"].pop(1)),
            "the SHA-256 entity is required", "Provenance.entity", "required")
    invalid("Provenance-author-not-ods.json", prov,
            pvar(lambda p: p["agent"][0]["who"]["identifier"].update(system="urn:oid:2.16.840.1.113883.2.1.3.2.4.18.48")),
            "the author must be identified by the ODS organisation code system", "Provenance.agent[0].who.identifier.system", "value")

    # Missing and surplus elements are reported where the element is (the gateway engine's convention, and
    # what an integration engineer needs): a missing element at its own path with issue code `required`, too
    # many repetitions at the element with `structure`. (The HL7 Java validator reports both at the parent
    # with `structure`.)
    at_element = {
        "MeasureReport-trust-no-date.json": ("MeasureReport.date", "required"),
        "MeasureReport-trust-no-identifier.json": ("MeasureReport.identifier", "required"),
        "MeasureReport-trust-period-no-end.json": ("MeasureReport.period.end", "required"),
        "MeasureReport-trust-group-no-code.json": (f"{g0}.code", "required"),
        "MeasureReport-trust-group-count-missing.json": (f"{g0}.population[1].count", "required"),
        "MeasureReport-trust-stratum-count-missing.json": (f"{g0}.stratifier[1].stratum[2].population[0].count", "required"),
        "Bundle-submission-entry-no-fullurl.json": ("Bundle.entry[0].fullUrl", "required"),
        "Bundle-submission-report-no-reporter.json": ("Bundle.entry[1].resource.reporter", "required"),
        "MessageHeader-no-sender.json": ("MessageHeader.sender", "required"),
        "MessageHeader-sender-no-identifier.json": ("MessageHeader.sender.identifier", "required"),
        "MessageHeader-no-focus.json": ("MessageHeader.focus", "required"),
        "MessageHeader-no-id.json": ("MessageHeader.id", "required"),
        "MessageHeader-event-uri.json": ("MessageHeader.eventUri", "structure"),
        "MeasureReport-indicator-no-reporting-level.json": ("MeasureReport.extension", "required"),
        "MeasureReport-indicator-score-no-value.json": ("MeasureReport.group[0].measureScore.value", "required"),
        "MeasureReport-indicator-two-groups.json": ("MeasureReport.group", "structure"),
        "Measure-no-version.json": ("Measure.version", "required"),
        "Measure-group-no-code.json": ("Measure.group[0].code", "required"),
        "Provenance-no-signature.json": ("Provenance.signature", "required"),
        "Provenance-no-assembler.json": ("Provenance.agent", "required"),
    }
    for i, (name, prof, res, desc, expr, code) in enumerate(INVALID):
        if name in at_element:
            INVALID[i] = (name, prof, res, desc, *at_element.pop(name))
    assert not at_element, f"unknown invalid examples: {sorted(at_element)}"

    # ---- write --------------------------------------------------------------------------------
    for d in ("valid", "invalid"):
        shutil.rmtree(EX / d, ignore_errors=True)
        (EX / d).mkdir(parents=True)
    manifest = {"description": "PQOM example instances. Valid ones validate with no errors against `profile`; each invalid one breaks exactly one rule "
                               "and must produce an error whose expression and issue code are `expression` and `code` "
                               "(a missing element: `required` at the element's own path; too many repetitions or an element a closed slicing or the "
                               "profile does not allow: `structure`; a fixed value: `value`; a required binding: `code-invalid` at the coded element; "
                               "an invariant: `invariant` at the element the invariant is defined on).",
                "examples": []}
    for name, prof, res, desc in VALID:
        (EX / "valid" / name).write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
        manifest["examples"].append({"file": f"valid/{name}", "profile": prof, "valid": True, "description": desc})
    for name, prof, res, desc, expr, code in INVALID:
        (EX / "invalid" / name).write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
        error = {"expression": expr, "code": code}
        if code == "invariant":
            # The invariant's key, named in the description: "(pqom-4)", "(base invariant per-1)", "(bdl-12)".
            key = re.search(r"\((?:base invariant )?([a-z]+-\d+)\)", desc)
            assert key, f"{name}: name the invariant key in the description"
            error["key"] = key.group(1)
        manifest["examples"].append({"file": f"invalid/{name}", "profile": prof, "valid": False, "description": desc, "error": error})
    (EX / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {len(VALID)} valid and {len(INVALID)} invalid examples to {EX.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
