#!/usr/bin/env python3
"""Peer benchmark: fhir.resources 8.3 (PyPI; pydantic v2 models) parsing the pqom-gateway reference
report into its R4B MeasureReport model (R4 and R4B agree field for field on MeasureReport). This is
model validation (types, cardinality, required fields), no profiles, no invariants, no terminology.

    cargo run --example write_samples
    python3 -m venv .venv && .venv/bin/pip install 'fhir.resources>=8.3,<8.4'
    .venv/bin/python fhir_resources.py ../../target/samples/reference-report.json [SECONDS]

Prints reports/s and MB/s on one core; each iteration is the whole parse from bytes.
"""
import sys
import time
from importlib.metadata import version

from fhir.resources.R4B.measurereport import MeasureReport

path = sys.argv[1] if len(sys.argv) > 1 else "../../target/samples/reference-report.json"
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
data = open(path, "rb").read()

MeasureReport.model_validate_json(data)  # fails loudly if the model rejects the report
for _ in range(5):
    MeasureReport.model_validate_json(data)

n, start = 0, time.perf_counter()
while (elapsed := time.perf_counter() - start) < seconds:
    MeasureReport.model_validate_json(data)
    n += 1
per_sec = n / elapsed
print(
    f"fhir.resources {version('fhir.resources')} R4B MeasureReport.model_validate_json: {per_sec:.1f} reports/s, "
    f"{per_sec * len(data) / 1e6:.1f} MB/s ({n} in {elapsed:.1f} s, {len(data)} bytes)"
)
