#!/usr/bin/env node
// crd-validate: check the custom resources of rendered manifests against their CRD schemas, strictly.
//   crd-validate FILE.json...   each FILE holds a JSON array of manifests (other kinds are skipped)
// Prints one line per resource (`ok Kind/name` or `FAIL Kind/name: reason`); exit 0 only when every
// custom resource passed, 1 when one failed, 2 on bad input or a kind it has no schema for.
//
// Two checks per resource, from the npm models installed next to this script (scripts/tools/package.json):
// 1. the model's validate(): the CRD's own OpenAPI schema (types, enums, required fields, patterns):
//    HTTPRoute from @kubernetes-models/gateway-api 0.5.1 (Gateway API v1.0.0 standard CRDs),
//    ExternalSecret from @kubernetes-models/external-secrets 2.0.0 (external-secrets.io/v1),
//    PrometheusRule and ServiceMonitor from @kubernetes-models/prometheus-operator 6.0.0
//    (prometheus-operator v0.90 CRDs);
// 2. unknown fields: CRD schemas don't forbid them (the API server prunes them silently), so a
//    misspelt field would pass check 1. Every object that lists its properties must use only those
//    (what kubeconform's -strict does). HTTPRoute's property lists come from the CRD schema embedded
//    in its model; the other models ship compiled validators only, so their lists below were written
//    from the same API versions' reference (they cover every field of the objects, not only ours).
"use strict";

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fs.realpathSync(fileURLToPath(import.meta.url)));
const require = createRequire(path.join(HERE, "..", "node", "package.json"));
const MODELS = path.join(HERE, "..", "node", "node_modules", "@kubernetes-models");

// --- property lists (check 2) ------------------------------------------------------------------

const META = {
  name: null, namespace: null, labels: null, annotations: null, generateName: null,
  finalizers: null, ownerReferences: null, uid: null, resourceVersion: null, generation: null,
  creationTimestamp: null, deletionTimestamp: null, deletionGracePeriodSeconds: null,
  managedFields: null, selfLink: null,
};
// null: a leaf, or an object whose keys are free (labels, templates); an array: list of that object.
const REMOTE_REF = {
  key: null, property: null, version: null, metadataPolicy: null, conversionStrategy: null,
  decodingStrategy: null, nullBytePolicy: null,
};
const EXTERNAL_SECRET = {
  apiVersion: null, kind: null, metadata: META, status: null,
  spec: {
    secretStoreRef: { name: null, kind: null },
    target: {
      name: null, creationPolicy: null, deletionPolicy: null, immutable: null,
      template: {
        type: null, engineVersion: null, metadata: { annotations: null, labels: null, finalizers: null },
        mergePolicy: null, data: null, templateFrom: null,
      },
      manifest: null,
    },
    refreshInterval: null, refreshPolicy: null,
    data: [{
      secretKey: null, remoteRef: REMOTE_REF,
      sourceRef: { storeRef: { name: null, kind: null }, generatorRef: null },
    }],
    dataFrom: [{ extract: REMOTE_REF, find: null, rewrite: null, sourceRef: null }],
  },
};
const RELABEL = [{
  sourceLabels: null, separator: null, targetLabel: null, regex: null, modulus: null,
  replacement: null, action: null,
}];
const PROMETHEUS_RULE = {
  apiVersion: null, kind: null, metadata: META,
  spec: {
    groups: [{
      name: null, interval: null, limit: null, partial_response_strategy: null,
      query_offset: null, labels: null,
      rules: [{ record: null, alert: null, expr: null, for: null, keep_firing_for: null, labels: null, annotations: null }],
    }],
  },
};
const SERVICE_MONITOR = {
  apiVersion: null, kind: null, metadata: META,
  spec: {
    jobLabel: null, targetLabels: null, podTargetLabels: null, sampleLimit: null, targetLimit: null,
    scrapeProtocols: null, fallbackScrapeProtocol: null, labelLimit: null, labelNameLengthLimit: null,
    labelValueLengthLimit: null, scrapeClassicHistograms: null, nativeHistogramBucketLimit: null,
    nativeHistogramMinBucketFactor: null, convertClassicHistogramsToNHCB: null, keepDroppedTargets: null,
    attachMetadata: null, scrapeClass: null, bodySizeLimit: null, serviceDiscoveryRole: null,
    selectorMechanism: null,
    selector: { matchLabels: null, matchExpressions: null },
    namespaceSelector: { any: null, matchNames: null },
    endpoints: [{
      port: null, targetPort: null, path: null, scheme: null, params: null, interval: null,
      scrapeTimeout: null, tlsConfig: null, bearerTokenFile: null, bearerTokenSecret: null,
      authorization: null, honorLabels: null, honorTimestamps: null, trackTimestampsStaleness: null,
      basicAuth: null, oauth2: null, metricRelabelings: RELABEL, relabelings: RELABEL,
      proxyUrl: null, noProxy: null, proxyFromEnvironment: null, proxyConnectHeader: null,
      followRedirects: null, enableHttp2: null, filterRunning: null,
    }],
  },
};

// HTTPRoute: the property lists of the CRD schema embedded in the 0.5.1 model.
function embeddedSchema(file) {
  const text = fs.readFileSync(file, "utf8");
  const match = /const schema = (\{[\s\S]*?\n\});/.exec(text);
  if (!match) throw new Error(`no embedded schema in ${file}`);
  return JSON.parse(match[1]);
}

function fieldsOf(schema) {
  if (!schema || typeof schema !== "object") return null;
  if (schema.type === "array" || schema.items) {
    const inner = fieldsOf(schema.items);
    return inner === null ? null : [inner];
  }
  if (schema.properties) {
    const out = {};
    for (const [key, sub] of Object.entries(schema.properties)) out[key] = fieldsOf(sub);
    return out;
  }
  return null; // $ref (metadata: checked below), free maps and leaves
}

const HTTP_ROUTE_FILE = path.join(MODELS, "gateway-api", "gateway.networking.k8s.io", "v1", "HTTPRoute.js");
const HTTP_ROUTE = { ...fieldsOf(embeddedSchema(HTTP_ROUTE_FILE)), metadata: META };

// --- the models (check 1) ----------------------------------------------------------------------

const KINDS = {
  "gateway.networking.k8s.io/v1 HTTPRoute": {
    fields: HTTP_ROUTE,
    model: async () => require(HTTP_ROUTE_FILE).HTTPRoute,
  },
  "external-secrets.io/v1 ExternalSecret": {
    fields: EXTERNAL_SECRET,
    model: async () =>
      (await import(path.join(MODELS, "external-secrets", "external-secrets.io", "v1", "ExternalSecret.js"))).ExternalSecret,
  },
  "monitoring.coreos.com/v1 PrometheusRule": {
    fields: PROMETHEUS_RULE,
    model: async () =>
      (await import(path.join(MODELS, "prometheus-operator", "monitoring.coreos.com", "v1", "PrometheusRule.js"))).PrometheusRule,
  },
  "monitoring.coreos.com/v1 ServiceMonitor": {
    fields: SERVICE_MONITOR,
    model: async () =>
      (await import(path.join(MODELS, "prometheus-operator", "monitoring.coreos.com", "v1", "ServiceMonitor.js"))).ServiceMonitor,
  },
};
// Built-in API groups (kubernetes-validate checks those); any other kind needs a schema here.
const BUILTIN = /^(v1|(apps|batch|policy|autoscaling|networking\.k8s\.io|rbac\.authorization\.k8s\.io)\/v[0-9]+)$/;

function unknownFields(value, fields, where, out) {
  if (fields === null || value === null || typeof value !== "object") return out;
  if (Array.isArray(fields)) {
    if (Array.isArray(value)) value.forEach((item, i) => unknownFields(item, fields[0], `${where}[${i}]`, out));
    return out;
  }
  for (const [key, sub] of Object.entries(value)) {
    if (!(key in fields)) out.push(`${where}.${key}: unknown field`);
    else unknownFields(sub, fields[key], `${where}.${key}`, out);
  }
  return out;
}

async function main(files) {
  if (!files.length) {
    console.error("usage: crd-validate FILE.json...");
    return 2;
  }
  let failed = 0;
  for (const file of files) {
    const docs = JSON.parse(fs.readFileSync(file, "utf8"));
    for (const doc of docs) {
      const key = `${doc.apiVersion} ${doc.kind}`;
      const kind = KINDS[key];
      const subject = `${doc.kind}/${doc.metadata?.name}`;
      if (!kind) {
        if (!BUILTIN.test(String(doc.apiVersion))) {
          console.log(`FAIL ${subject}: no schema for ${key}`);
          return 2;
        }
        continue;
      }
      const problems = unknownFields(doc, kind.fields, "", []);
      try {
        const Model = await kind.model();
        new Model(doc).validate();
      } catch (error) {
        problems.push(String(error.message || error));
      }
      if (problems.length) {
        failed++;
        console.log(`FAIL ${subject}: ${problems.join("; ")}`);
      } else {
        console.log(`ok ${subject}`);
      }
    }
  }
  return failed ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
