// Validates the custom resources of a rendered kustomization (KEDA's
// ScaledObject and TriggerAuthentication, the Prometheus operator's
// ServiceMonitor) against their CRDs' schemas, as compiled into the
// @kubernetes-models packages, and refuses fields those schemas do not know.
//
//   kubectl kustomize deploy/kubernetes | node deploy/kubernetes/validate/validate.mjs
//   node validate.mjs rendered.yaml [more.yaml ...]
//
// Why the unknown-field check: a CRD's schema does not forbid other fields,
// and the API server prunes them silently, so `maxReplicaCont: 4` would be
// applied as no maximum at all (KEDA's default of 100). The compiled
// validators ignore unknown fields as the API server does, so each field is
// tried here instead: it is replaced by a value no schema accepts (a
// function, which is no JSON type) and the resource validated again. A field
// whose replacement still validates is one the schema does not constrain,
// i.e. not a field of the kind. Built-in kinds are left to
// kubernetes-validate --strict (tests/offline/deploy_tools.rs runs both); a custom
// resource of a kind without a validator here is an error, not a skip.
//
// Prints one line per resource; exits 1 when any is invalid, 2 when the
// input cannot be read or holds no custom resource.

import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const MODELS = new Map(
  [ScaledObject, TriggerAuthentication, ServiceMonitor].map((m) => [`${m.apiVersion} ${m.kind}`, m]),
);
const CUSTOM_GROUPS = new Set([...MODELS.values()].map((m) => m.apiVersion.split("/")[0]));

function probe() {}

function problems(Model, data) {
  try {
    new Model(data).validate();
    return [];
  } catch (err) {
    if (!Array.isArray(err.errors)) throw err;
    return err.errors.map((e) => `${e.instancePath || "/"}: ${e.message}`);
  }
}

function pointer(path) {
  return "/" + path.map((p) => String(p).replaceAll("~", "~0").replaceAll("/", "~1")).join("/");
}

function at(root, path) {
  return path.reduce((node, key) => node[key], root);
}

/**
 * The JSON pointers of the fields in `doc` that the kind's schema does not
 * know. `invalid` are the doc's own findings: a field they are about is
 * known (its value is wrong, not its name), and a probe counts only by the
 * findings it adds, so one wrong value does not hide a misspelt name.
 */
function unknownFields(Model, doc, invalid) {
  const before = new Set(invalid);
  const found = [];
  const walk = (node, path) => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, [...path, i]));
      return;
    }
    if (node === null || typeof node !== "object") return;
    for (const key of Object.keys(node)) {
      const field = pointer([...path, key]);
      const tried = structuredClone(doc);
      at(tried, path)[key] = probe;
      const known =
        invalid.some((p) => p.startsWith(`${field}: `) || p.startsWith(`${field}/`)) ||
        problems(Model, tried).some((p) => !before.has(p));
      if (known) {
        walk(node[key], [...path, key]);
      } else {
        found.push(field);
      }
    }
  };
  walk(doc, []);
  return found;
}

function read(sources) {
  const texts = sources.length === 0 || (sources.length === 1 && sources[0] === "-")
    ? [["stdin", readFileSync(0, "utf8")]]
    : sources.map((f) => [f, readFileSync(f, "utf8")]);
  const docs = [];
  for (const [name, text] of texts) {
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) {
        throw new Error(`${name}: not YAML: ${doc.errors[0].message}`);
      }
      const value = doc.toJS();
      if (value !== null && value !== undefined) docs.push(value);
    }
  }
  return docs;
}

function main() {
  let docs;
  try {
    docs = read(process.argv.slice(2));
  } catch (err) {
    console.error(`validate: ${err.message}`);
    return 2;
  }
  let custom = 0;
  let failed = 0;
  for (const doc of docs) {
    const id = `${doc.kind}/${doc.metadata?.name ?? "(no name)"}`;
    const Model = MODELS.get(`${doc.apiVersion} ${doc.kind}`);
    if (!Model) {
      if (CUSTOM_GROUPS.has(String(doc.apiVersion).split("/")[0])) {
        console.log(`INVALID ${id}: no validator for ${doc.apiVersion} ${doc.kind}; expected one of ${[...MODELS.keys()].join(", ")}`);
        custom++;
        failed++;
      } else {
        console.log(`skipped ${id}: ${doc.apiVersion} is not a custom resource of KEDA or the Prometheus operator`);
      }
      continue;
    }
    custom++;
    const found = problems(Model, doc);
    for (const field of unknownFields(Model, doc, found)) {
      found.push(`${field}: is not a field of ${doc.apiVersion} ${doc.kind} (misspelt?); the API server would drop it`);
    }
    if (found.length === 0) {
      console.log(`valid ${id} (${doc.apiVersion})`);
    } else {
      failed++;
      for (const p of found) console.log(`INVALID ${id}: ${p}`);
    }
  }
  if (custom === 0) {
    console.error("validate: no ScaledObject, TriggerAuthentication or ServiceMonitor in the input");
    return 2;
  }
  return failed === 0 ? 0 : 1;
}

process.exitCode = main();
