#!/usr/bin/env node
// Checks k8s/ and the Dockerfile against the gateway binary:
//   - renders the base and every overlay with `kubectl kustomize` and validates each object
//     against the Kubernetes schemas (npm kubernetes-models);
//   - checks the Deployment: replicas, probes (native gRPC on the gRPC port, liveness on the
//     "liveness" health service), ports, preStop, grace, resources, non-root, read-only root,
//     topology spread; the Service, HPA, PDB and NetworkPolicy point at the same pods and ports;
//   - checks every container flag against `gateway --help`, then starts the binary with the
//     manifest's exact arguments (paths mapped to temp files, addresses to 127.0.0.1:0) and the
//     overlay's ConfigMap, and stops it with SIGTERM (exit 0);
//   - checks the Dockerfile: bookworm stages, non-root user matching runAsUser, exposed ports,
//     and runtime packages covering every shared library the binary needs.
// Usage: node tools/k8s_check.js GATEWAY_BINARY   (prints one "PASSED:/FAILED: name" per check)
'use strict';
const { execFileSync, spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const YAML = require('yaml');

const root = path.resolve(__dirname, '..');
const gateway = path.resolve(process.argv[2] || path.join(root, 'bazel-bin/service/gateway'));
let failures = 0;
let passes = 0;
function check(name, fn) {
  try {
    fn();
    passes++;
    console.log(`PASSED: ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAILED: ${name}: ${e.message}`);
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}

// apiVersion -> module of kubernetes-models (ES modules, loaded in main()).
const MODEL_MODULES = {
  'apps/v1': 'kubernetes-models/apps/v1',
  'v1': 'kubernetes-models/v1',
  'autoscaling/v2': 'kubernetes-models/autoscaling/v2',
  'policy/v1': 'kubernetes-models/policy/v1',
  'networking.k8s.io/v1': 'kubernetes-models/networking.k8s.io/v1',
};
const models = {};

function render(dir) {
  const out = execFileSync('kubectl', ['kustomize', path.join(root, dir)], { encoding: 'utf8' });
  return YAML.parseAllDocuments(out).map((d) => d.toJSON()).filter(Boolean);
}

function helpFlags() {
  let out = '';
  try {
    out = execFileSync(gateway, ['--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    out = (e.stdout || '') + (e.stderr || '');  // absl exits 1 after --help
  }
  const flags = new Set();
  for (const m of out.matchAll(/^\s+--([a-z0-9_]+) \(/gm)) flags.add(m[1]);
  return flags;
}

function parseArgs(args) {
  const flags = {};
  for (const a of args) {
    const m = /^--([a-z0-9_]+)(?:=(.*))?$/.exec(a);
    assert(m, `argument "${a}" is not --flag=value`);
    flags[m[1]] = m[2] === undefined ? 'true' : m[2];
  }
  return flags;
}

function portOf(address) {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

function durationSeconds(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(s);
  assert(m, `cannot read duration ${s}`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2]];
}

function matches(selector, labels) {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

// Starts the binary with the Deployment's arguments, files from the rendered objects.
function startWithManifestArgs(name, container, objects) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `k8s-${name}-`));
  const mountFor = (file) => (container.volumeMounts || []).find((m) => file.startsWith(m.mountPath + '/'));
  const flags = parseArgs(container.args);
  const args = [];
  for (const [flag, value] of Object.entries(flags)) {
    if (flag === 'listen' || flag === 'admin_listen' || flag === 'webhook_listen') {
      args.push(`--${flag}=127.0.0.1:0`);
    } else if (flag.endsWith('_file') || flag === 'config') {
      const mount = mountFor(value);
      assert(mount, `--${flag}=${value} is not under a volume mount`);
      const local = path.join(tmp, path.basename(value));
      if (flag === 'config' || flag === 'workspaces_file') {
        const cm = objects.find((o) => o.kind === 'ConfigMap' && o.data && o.data[path.basename(value)]);
        assert(cm, `no ConfigMap holds ${path.basename(value)}`);
        const config = JSON.parse(cm.data[path.basename(value)]);
        // The pod listens on all interfaces; here only loopback.
        if (flag === 'config') config.listen = '127.0.0.1:0';
        fs.writeFileSync(local, JSON.stringify(config));
      } else if (flag === 'callers_file') {
        fs.writeFileSync(local, JSON.stringify({ callers: [
          { name: 'example', token: 'example-token-0123456789', allow: ['*'] }] }));
      } else {
        fs.writeFileSync(local, 'example-upstream-token\n');
      }
      args.push(`--${flag}=${local}`);
    } else {
      args.push(`--${flag}=${value}`);
    }
  }
  const result = require('child_process').spawnSync('bash', ['-c', `
    "$0" "$@" > "${tmp}/out" 2>&1 &
    pid=$!
    for i in $(seq 1 100); do
      grep -q "gateway listening on" "${tmp}/out" && break
      kill -0 $pid 2>/dev/null || break
      sleep 0.1
    done
    grep -q "gateway listening on" "${tmp}/out" || { cat "${tmp}/out"; kill -9 $pid 2>/dev/null; exit 3; }
    kill -TERM $pid; wait $pid; rc=$?
    cat "${tmp}/out"; exit $rc`, gateway, ...args], { encoding: 'utf8', timeout: 60000 });
  fs.rmSync(tmp, { recursive: true, force: true });
  assert(result.status === 0, `gateway ${args.join(' ')} did not start and stop cleanly ` +
    `(exit ${result.status}):\n${result.stdout}${result.stderr}`);
}

function checkOverlay(name, dir, expect) {
  let objects;
  check(`${name}: kubectl kustomize renders`, () => {
    objects = render(dir);
    assert(objects.length > 0, 'nothing rendered');
  });
  if (!objects) return;
  check(`${name}: every object validates against the Kubernetes schema`, () => {
    for (const o of objects) {
      const key = `${o.apiVersion}/${o.kind}`;
      const Model = (models[o.apiVersion] || {})[o.kind];
      assert(Model, `no schema known for ${key}`);
      try {
        new Model(o).validate();
      } catch (e) {
        throw new Error(`${key} ${o.metadata.name}: ${e.message}`);
      }
    }
  });
  const byKind = (kind, objName = 'respond-gateway') =>
    objects.find((o) => o.kind === kind && o.metadata.name === objName);
  const deployment = byKind('Deployment');
  const service = byKind('Service');
  const hpa = byKind('HorizontalPodAutoscaler');
  const pdb = byKind('PodDisruptionBudget');
  const policy = byKind('NetworkPolicy');
  check(`${name}: has the gateway's Deployment, Service, HPA, PDB, NetworkPolicy, ConfigMap`, () => {
    for (const [k, o] of Object.entries({ deployment, service, hpa, pdb, policy })) assert(o, `no ${k}`);
    assert(objects.some((o) => o.kind === 'ConfigMap'), 'no ConfigMap');
    for (const kind of expect.extraKinds || []) {
      assert(objects.some((o) => `${o.kind}/${o.metadata.name}` === kind), `no ${kind}`);
    }
    if (expect.namespace) {
      for (const o of objects) assert(o.metadata.namespace === expect.namespace, `${o.kind} not in ${expect.namespace}`);
    }
  });
  if (!deployment) return;
  const pod = deployment.spec.template.spec;
  const container = pod.containers.find((c) => c.name === 'gateway');
  const labels = deployment.spec.template.metadata.labels;
  check(`${name}: replicas ${expect.replicas}, HPA ${expect.hpa.join('..')}`, () => {
    assert(deployment.spec.replicas === expect.replicas, `replicas ${deployment.spec.replicas}`);
    assert(hpa.spec.minReplicas === expect.hpa[0] && hpa.spec.maxReplicas === expect.hpa[1],
      `HPA ${hpa.spec.minReplicas}..${hpa.spec.maxReplicas}`);
    assert(hpa.spec.scaleTargetRef.name === deployment.metadata.name, 'HPA targets another Deployment');
  });
  check(`${name}: container flags are all flags the binary accepts`, () => {
    const known = helpFlags();
    assert(known.size > 10, `could not read flags from ${gateway} --help`);
    for (const flag of Object.keys(parseArgs(container.args))) {
      assert(known.has(flag), `--${flag} is not a flag of the gateway (see --help)`);
    }
  });
  check(`${name}: ports and probes match the flags`, () => {
    const flags = parseArgs(container.args);
    const ports = Object.fromEntries(container.ports.map((p) => [p.name, p.containerPort]));
    assert(ports.grpc === portOf(flags.listen), `grpc port ${ports.grpc} != --listen ${flags.listen}`);
    assert(ports.admin === portOf(flags.admin_listen), `admin port ${ports.admin} != --admin_listen`);
    const ready = container.readinessProbe;
    const live = container.livenessProbe;
    assert(ready && ready.grpc && ready.grpc.port === ports.grpc, 'readiness is not a gRPC probe on the gRPC port');
    assert(!ready.grpc.service, 'readiness must ask the whole server ("")');
    assert(live && live.grpc && live.grpc.port === ports.grpc, 'liveness is not a gRPC probe on the gRPC port');
    assert(live.grpc.service === 'liveness', 'liveness must ask the "liveness" health service');
    const startup = container.startupProbe;
    if (startup && startup.httpGet) {
      assert(['/healthz', '/readyz'].includes(startup.httpGet.path), `startup path ${startup.httpGet.path}`);
      const p = startup.httpGet.port;
      assert(p === 'admin' || p === ports.admin, 'startup probe not on the admin port');
    }
    for (const sp of service.spec.ports) {
      assert(sp.targetPort in ports || Object.values(ports).includes(sp.targetPort), `Service targets unknown port ${sp.targetPort}`);
    }
    const ingressPorts = policy.spec.ingress.flatMap((r) => (r.ports || []).map((p) => p.port));
    assert(ingressPorts.includes(ports.grpc) && ingressPorts.includes(ports.admin),
      `NetworkPolicy ingress ports ${ingressPorts}`);
  });
  check(`${name}: graceful shutdown fits the termination grace period`, () => {
    const flags = parseArgs(container.args);
    const cmd = container.lifecycle.preStop.exec.command;
    const sleep = Number(cmd[cmd.length - 1]);
    const grace = durationSeconds(flags.shutdown_grace || '20s');
    assert(pod.terminationGracePeriodSeconds > sleep + grace,
      `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} <= preStop ${sleep} + grace ${grace}`);
  });
  check(`${name}: non-root, read-only root, resources, spread, selectors`, () => {
    const sc = container.securityContext;
    assert(pod.securityContext.runAsNonRoot === true && pod.securityContext.runAsUser > 0, 'pod may run as root');
    assert(sc.readOnlyRootFilesystem === true && sc.allowPrivilegeEscalation === false, 'container security');
    assert(container.resources.requests.cpu && container.resources.limits.memory, 'resources');
    assert((pod.topologySpreadConstraints || []).some((t) => t.topologyKey === 'kubernetes.io/hostname'),
      'not spread across nodes');
    for (const [what, sel] of [['Deployment', deployment.spec.selector.matchLabels],
      ['Service', service.spec.selector], ['PDB', pdb.spec.selector.matchLabels],
      ['NetworkPolicy', policy.spec.podSelector.matchLabels]]) {
      assert(matches(sel, labels), `${what} selector does not match the pods`);
    }
    const volumes = Object.fromEntries(pod.volumes.map((v) => [v.name, v]));
    for (const m of container.volumeMounts) assert(volumes[m.name], `mount ${m.name} has no volume`);
    const cmName = Object.values(volumes).find((v) => v.configMap).configMap.name;
    assert(objects.some((o) => o.kind === 'ConfigMap' && o.metadata.name === cmName), `ConfigMap ${cmName} not rendered`);
    const secrets = Object.values(volumes).filter((v) => v.secret).map((v) => v.secret.secretName);
    assert(secrets.length >= 2, 'upstream and caller token secrets are not referenced');
  });
  check(`${name}: the binary starts with the manifest's flags and ConfigMap, and stops on SIGTERM`, () => {
    startWithManifestArgs(name, container, objects);
  });
  if (expect.redis) {
    check(`${name}: config points at ${expect.redis}`, () => {
      const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('gateway-config'));
      const config = JSON.parse(cm.data['config.json']);
      assert(config.redis_url && config.redis_url.includes(expect.redis), `redis_url ${config.redis_url}`);
    });
  }
}

function checkDockerfile() {
  const text = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
  check('Dockerfile: multi-stage on Debian bookworm, builds with tools/setup.sh', () => {
    const froms = [...text.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert(froms.length >= 2, 'not multi-stage');
    assert(froms.every((f) => /^debian:bookworm/.test(f)), `bases ${froms}`);
    assert(/tools\/setup\.sh/.test(text) && /bazel build \/\/service:gateway/.test(text), 'build steps');
  });
  check('Dockerfile: runs as the non-root user of the manifests, exposes their ports', () => {
    const user = /^USER (\d+)/m.exec(text);
    assert(user && Number(user[1]) > 0, 'no numeric non-root USER');
    const deployment = render('k8s/base').find((o) => o.kind === 'Deployment');
    const pod = deployment.spec.template.spec;
    assert(pod.securityContext.runAsUser === Number(user[1]), 'USER differs from runAsUser');
    const exposed = /^EXPOSE (.*)$/m.exec(text)[1].split(/\s+/).map(Number);
    for (const p of pod.containers[0].ports) assert(exposed.includes(p.containerPort), `port ${p.containerPort} not exposed`);
  });
  check('Dockerfile: runtime packages cover every library the binary links', () => {
    const runtime = text.slice(text.lastIndexOf('FROM '));
    const listed = new Set([...runtime.matchAll(/^\s+(lib[a-z0-9+.-]+|ca-certificates)\s*\\?$/gm)].map((m) => m[1]));
    // Part of every Debian image (Essential / required).
    const base = new Set(['libc6', 'libgcc-s1', 'libstdc++6', 'zlib1g']);
    const needed = execFileSync('readelf', ['-d', gateway], { encoding: 'utf8' })
      .split('\n').map((l) => /\(NEEDED\).*\[(.*)\]/.exec(l)).filter(Boolean).map((m) => m[1]);
    const ldd = execFileSync('ldd', [gateway], { encoding: 'utf8' });
    const missing = [];
    for (const lib of needed) {
      const m = new RegExp(`^\\s*${lib.replace(/[.+]/g, '\\$&')} => (\\S+)`, 'm').exec(ldd);
      assert(m, `${lib} is not resolved by ldd`);
      let pkg;
      for (const p of [m[1], fs.realpathSync(m[1]), m[1].replace('/usr/lib/', '/lib/')]) {
        try {
          pkg = execFileSync('dpkg', ['-S', p], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
            .split(':')[0];
          break;
        } catch (e) { /* try the next spelling */ }
      }
      if (!pkg) {
        if (/^lib(c|m|z|gcc_s)\.so/.test(lib)) continue;  // base image
        throw new Error(`no Debian package owns ${m[1]}`);
      }
      if (!base.has(pkg) && !listed.has(pkg)) missing.push(`${pkg} (${lib})`);
    }
    assert(missing.length === 0, `runtime stage lacks ${[...new Set(missing)].join(', ')}`);
  });
}

async function main() {
  for (const [apiVersion, module] of Object.entries(MODEL_MODULES)) {
    models[apiVersion] = await import(module);
  }
checkOverlay('base', 'k8s/base', { replicas: 3, hpa: [3, 10] });
checkOverlay('dev', 'k8s/overlays/dev', {
  replicas: 1, hpa: [1, 2], namespace: 'respond-gateway-dev', redis: 'redis://redis:6379',
  extraKinds: ['Deployment/redis', 'Service/redis'],
});
checkOverlay('prod', 'k8s/overlays/prod', {
  replicas: 6, hpa: [6, 30], namespace: 'respond-gateway', redis: 'redis.gateway.example.internal',
});
checkDockerfile();
console.log(`k8s_check: ${passes} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
}

main();
