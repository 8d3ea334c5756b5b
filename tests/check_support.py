"""What the `svcgen check` tests share: every check's id, a good repo that is not ours (Node,
plain manifests) to spoil one file at a time, and the helpers that write a repo and read the
verdicts.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from svcgen.check import Result as Verdict
from svcgen.check import audit
from svcgen.cli import app
from typer.testing import CliRunner, Result

runner = CliRunner()

ALL_CHECKS = [
    "config-env", "no-secrets", "health-live", "health-ready", "json-logs", "graceful-shutdown",
    "docker-multistage", "docker-nonroot", "docker-healthcheck", "docker-pinned", "docker-ignore",
    "k8s-probes", "k8s-resources", "k8s-security", "k8s-hpa", "k8s-pdb", "k8s-networkpolicy",
    "ci-tests",
]  # fmt: skip


def svcgen(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "220"})


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def results_of(root: Path) -> dict[str, Verdict]:
    """The verdicts of the one service in `root`."""
    services = audit(root).services
    assert len(services) == 1, [s.path for s in services]
    return {r.id: r for r in services[0].results}


def verdicts(root: Path) -> dict[str, str]:
    return {key: r.status for key, r in results_of(root).items()}


GOOD_NODE = {
    "src/server.js": """
        const pino = require("pino")();
        const port = process.env.PORT || 3000;
        app.get("/livez", (req, res) => res.send("ok"));
        app.get("/readyz", (req, res) => res.send(ready ? "ok" : "draining"));
        process.on("SIGTERM", () => server.close());
    """,
    "src/server.test.js": 'test("x", () => { const password = "hunter2hunter2"; });',
    "Dockerfile": """
        ARG NODE_VERSION=20.11.1
        FROM node:${NODE_VERSION}-alpine AS build
        RUN npm ci
        FROM node:${NODE_VERSION}-alpine
        COPY --from=build /app /app
        USER 1000
        HEALTHCHECK CMD ["node", "/app/healthcheck.js"]
        CMD ["node", "/app/src/server.js"]
    """,
    ".dockerignore": ".git\nnode_modules\n.env\n",
    "deploy/app.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: api}
        spec:
          template:
            spec:
              securityContext:
                runAsNonRoot: true
                seccompProfile:
                  type: RuntimeDefault
              containers:
                - name: api
                  image: api:1.0.0
                  livenessProbe: {httpGet: {path: /livez, port: 3000}}
                  readinessProbe: {httpGet: {path: /readyz, port: 3000}}
                  resources:
                    requests: {cpu: 100m, memory: 128Mi}
                    limits: {memory: 256Mi}
                  securityContext:
                    allowPrivilegeEscalation: false
                    readOnlyRootFilesystem: true
                    capabilities:
                      drop: ["ALL"]
        ---
        apiVersion: autoscaling/v2
        kind: HorizontalPodAutoscaler
        metadata: {name: api}
        ---
        apiVersion: policy/v1
        kind: PodDisruptionBudget
        metadata: {name: api}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: api}
    """,
    ".gitlab-ci.yml": "test:\n  script:\n    - npm ci\n    - npm test\n",
    "config/db.env.example": "DATABASE_PASSWORD=${DATABASE_PASSWORD}\nAPI_TOKEN=changeme\n",
    "src/k8s.js": 'const is_secret = "secretKeyRef";\nconst token = getToken("api");\n',
}
