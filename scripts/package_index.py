#!/usr/bin/env python3
"""Index the PQOM FHIR package in profiles/: ImplementationGuide-pqom.json and .index.json, optionally a .tgz.

Run after any change to profiles/ (including the files the catalogue generates: CodeSystem-pqom-indicator.json,
CodeSystem-pqom-source-measure.json, Measure-*.json):

    python3 scripts/package_index.py                 # rewrite ImplementationGuide-pqom.json and .index.json
    python3 scripts/package_index.py --check         # exit 1 if they are out of date (CI)
    python3 scripts/package_index.py --pack out.tgz  # also write a FHIR package tarball (package/, package/example/)

The IG lists every conformance resource in profiles/ and every example in profiles/examples/valid/
(as examples of their profile). Invalid examples are test fixtures, not package content.
Standard library only.
"""

import argparse
import io
import json
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "profiles"
VALID = PKG / "examples" / "valid"
IG_FILE = PKG / "ImplementationGuide-pqom.json"
INDEX_FILE = PKG / ".index.json"


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def resources(folder):
    out = []
    for p in sorted(folder.glob("*.json")):
        if p.name in ("package.json", IG_FILE.name, ".index.json"):
            continue
        out.append((p, load(p)))
    return out


def index_entry(name, res):
    e = {"filename": name, "resourceType": res["resourceType"], "id": res.get("id")}
    for k in ("url", "version", "kind", "type"):
        if isinstance(res.get(k), str):
            e[k] = res[k]
    if res["resourceType"] == "StructureDefinition" and "baseDefinition" in res:
        e["derivation"] = res.get("derivation")
    return e


def build_ig(pkg_json, conf, examples):
    base = pkg_json["canonical"]
    entries = []
    for _, r in conf:
        e = {"reference": {"reference": f"{r['resourceType']}/{r['id']}"}, "exampleBoolean": False}
        name = r.get("title") or r.get("name")
        if name:
            e["name"] = name
        if r.get("description"):
            e["description"] = r["description"].split("\n")[0][:500]
        entries.append(e)
    for p, r in examples:
        profiles = r.get("meta", {}).get("profile", [])
        e = {"reference": {"reference": f"{r['resourceType']}/{r['id']}"}, "name": f"Example: {p.stem}"}
        if profiles:
            e["exampleCanonical"] = profiles[0]
        else:
            e["exampleBoolean"] = True
        entries.append(e)
    return {
        "resourceType": "ImplementationGuide",
        "id": "pqom",
        "url": f"{base}/ImplementationGuide/pqom",
        "version": pkg_json["version"],
        "name": "PqomGateway",
        "title": pkg_json["title"],
        "status": "draft",
        "experimental": False,
        "date": pkg_json["date"][:4] + "-" + pkg_json["date"][4:6] + "-" + pkg_json["date"][6:8],
        "publisher": "pqom-gateway project",
        "contact": [{"name": "pqom-gateway maintainers", "telecom": [{"system": "url", "value": pkg_json["url"]}]}],
        "description": pkg_json["description"],
        "jurisdiction": [{"coding": [{"system": "urn:iso:std:iso:3166", "code": "GB"}]}],
        "license": "Apache-2.0",
        "packageId": pkg_json["name"],
        "fhirVersion": pkg_json["fhirVersions"],
        "dependsOn": [{"id": "hl7_fhir_r4_core", "uri": "http://hl7.org/fhir", "packageId": "hl7.fhir.r4.core", "version": "4.0.1"}],
        "definition": {"resource": entries},
    }


def dumps(obj):
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if the IG or .index.json is out of date")
    ap.add_argument("--pack", metavar="TGZ", help="also write a FHIR package tarball")
    args = ap.parse_args()

    pkg_json = load(PKG / "package.json")
    conf = resources(PKG)
    for p, r in conf:
        expect = f"{r['resourceType']}-{r['id']}.json"
        if p.name != expect:
            sys.exit(f"{p.name}: file name must be {expect}")
    examples = resources(VALID)
    ig = build_ig(pkg_json, conf, examples)
    index = {"index-version": 1, "files": [index_entry(p.name, r) for p, r in conf] + [index_entry(IG_FILE.name, ig)]}
    index["files"].sort(key=lambda e: e["filename"])

    outputs = {IG_FILE: dumps(ig), INDEX_FILE: dumps(index)}
    if args.check:
        stale = [p.name for p, text in outputs.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        if stale:
            sys.exit(f"out of date: {', '.join(stale)} (run python3 scripts/package_index.py)")
        print("package index up to date")
    else:
        for p, text in outputs.items():
            p.write_text(text, encoding="utf-8")
        print(f"indexed {len(conf)} resources and {len(examples)} examples")

    if args.pack:
        ex_index = {"index-version": 1, "files": sorted((index_entry(p.name, r) for p, r in examples), key=lambda e: e["filename"])}
        with tarfile.open(args.pack, "w:gz") as tar:
            def add(name, data):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 0
                tar.addfile(info, io.BytesIO(data))
            add("package/package.json", (PKG / "package.json").read_bytes())
            add("package/.index.json", outputs[INDEX_FILE].encode())
            add(f"package/{IG_FILE.name}", outputs[IG_FILE].encode())
            for p, _ in conf:
                add(f"package/{p.name}", p.read_bytes())
            add("package/example/.index.json", dumps(ex_index).encode())
            for p, _ in examples:
                add(f"package/example/{p.name}", p.read_bytes())
            if (PKG / "README.md").exists():
                add("package/other/README.md", (PKG / "README.md").read_bytes())
        print(f"wrote {args.pack}")


if __name__ == "__main__":
    main()
