"""The registry credential: Pulumi owns its identity, never its token, in every mode and across
mode switches; the token is fetched in the cluster by a pod that refuses the wrong identity."""

from __future__ import annotations

import http.server
import inspect
import itertools
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import kubernetes_validate
import pulumi_aws
import pytest
import yaml

from automation import render
from scoutflo.cluster import manifests
from tests.conftest import of_type, run_main, run_main_volatile
from tests.loopback import serve

K8S_VERSION = "1.35"
STATIC = {"scoutflo:refresherAccessKeyId": "AKIAEXAMPLE", "scoutflo:refresherSecretAccessKey": "wJalrEXAMPLE"}
MODES: dict[str, dict[str, Any]] = {
    "irsa": {"scoutflo:tokenRefreshMode": "irsa"},
    "static": {"scoutflo:tokenRefreshMode": "static", **STATIC},
    "eso": {"scoutflo:tokenRefreshMode": "eso"},
}
TOKEN_INVOKE = "aws:ecr/getAuthorizationToken:getAuthorizationToken"
SECRET = "kubernetes:core/v1:Secret"


@pytest.fixture(scope="module")
def by_mode() -> dict[str, render.Recording]:
    """One run per mode, secrets unmasked (the Secret's stringData is a secret as a whole)."""
    return {mode: run_main_volatile(overrides)[0] for mode, overrides in MODES.items()}


def credential(recording: render.Recording) -> render.Registered:
    (secret,) = [r for r in of_type(recording, SECRET) if r.name == "registry-access-secret"]
    return secret


# ---------------------------------------------------------------- the token never enters Pulumi


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_input_is_the_same_when_cloud_lookups_answer_differently(mode: str) -> None:
    """Two runs, same config, look-ups that change on every call (a new STS session, a new ECR
    token): every registered input of every resource is identical, secrets unmasked. A saved
    plan holds these inputs, so anything that moved would violate it at `up --plan`."""
    first, invoked = run_main_volatile(MODES[mode])
    second, _ = run_main_volatile(MODES[mode])
    assert invoked, "the look-ups must have been asked"
    assert [r.urn for r in first.resources] == [r.urn for r in second.resources]
    for a, b in zip(first.resources, second.resources, strict=True):
        assert a.inputs == b.inputs, a.urn
        assert (a.depends_on, a.ignore_changes, a.protect, a.retain_on_delete) == (
            b.depends_on,
            b.ignore_changes,
            b.protect,
            b.retain_on_delete,
        ), a.urn


@pytest.mark.parametrize("mode", sorted(MODES))
def test_no_ecr_token_is_ever_requested_or_registered(mode: str) -> None:
    recording, invoked = run_main_volatile(MODES[mode])
    assert TOKEN_INVOKE not in invoked
    for secret in of_type(recording, SECRET):
        assert "password" not in (secret.inputs.get("stringData") or {}), secret.name
        assert "password" not in (secret.inputs.get("data") or {}), secret.name


def test_the_render_has_no_ecr_token_to_give() -> None:
    """The render answers only look-ups the program makes: an ECR token look-up fails loudly."""
    with pytest.raises(render.RenderError, match="getAuthorizationToken"):
        render.fake_invoke(TOKEN_INVOKE, {}, "eu-west-1")


def test_the_secret_registers_no_password_key_so_in_cluster_patches_never_diff(by_mode: dict[str, Any]) -> None:
    """pulumi-kubernetes diffs against the live object pruned to the old inputs' shape
    (provider.go Diff `pruneLiveState(oldLive, oldInputs)`, util.go pruneMap): with no password
    key in the inputs, the Job's and ESO's writes to data.password are never compared. No
    ignore_changes: Check rewrites stringData into data (clients/unstructured.go
    normalizeSecretStringData), so a stringData path would never match, and a data path would
    keep an old token in the inputs and write it back on the next update."""
    for recording in by_mode.values():
        secret = credential(recording)
        assert secret.ignore_changes == []
        assert set(secret.inputs["stringData"]) == {"type", "name", "url", "enableOCI", "username"}


def _empty_string_fields(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in _empty_string_fields(v, f"{path}.{k}")]
    if isinstance(value, list):
        # A list element "" (a Role's core apiGroup) is stored as given; only fields are dropped.
        return [hit for i, v in enumerate(value) for hit in _empty_string_fields(v, f"{path}[{i}]") if v != ""]
    return [path] if value == "" else []


def test_kubernetes_inputs_are_in_the_form_the_api_server_stores(by_mode: dict[str, Any]) -> None:
    """No field holds "": Kubernetes' string fields are `omitempty` (kubernetes/api core/v1
    types.go EnvVar `Value string json:"value,omitempty"`), so the live object has no such key.
    pulumi-kubernetes diffs the new inputs against the live object pruned to the old inputs'
    shape by a JSON merge patch (pulumi-kubernetes@94977969d provider/pkg/provider/provider.go:1494
    pruneLiveState, :2863 inputPatch CreateMergePatch): an input `value: ""` the live env lacks
    is a change on every `up`, a perpetual update of the CronJob, and with replaceOnChanges "*"
    a delete and re-run of the seed Job each time."""
    found = [
        f"{mode} {res.name}{path}"
        for mode, recording in by_mode.items()
        for res in recording.resources
        # Built-in kinds only: a custom resource is stored as sent (no Go struct, no omitempty).
        if res.type.split(":")[1].split("/")[0] in ("core", "batch", "rbac.authorization.k8s.io")
        for path in _empty_string_fields(res.inputs)
    ]
    assert found == []


# ---------------------------------------------------------------- switching modes


@pytest.mark.parametrize(("old", "new"), list(itertools.permutations(sorted(MODES), 2)))
def test_switching_modes_keeps_the_secret_and_its_token(by_mode: dict[str, Any], old: str, new: str) -> None:
    """Same URN and identical inputs in both modes: the engine finds no diff, so the Secret is
    neither replaced nor deleted, and the token written under the old mode stays until the new
    mode's writer (which waits for the Secret) writes the next one."""
    before, after = credential(by_mode[old]), credential(by_mode[new])
    assert before.urn == after.urn
    assert before.inputs == after.inputs
    writer = {
        "irsa": "kubernetes:batch/v1:Job",
        "static": "kubernetes:batch/v1:Job",
        "eso": "kubernetes:external-secrets.io/v1:ExternalSecret",
    }[new]
    (write,) = of_type(by_mode[new], writer)
    assert after.urn in write.depends_on


def test_eso_never_owns_or_deletes_the_secret(by_mode: dict[str, Any]) -> None:
    (es,) = of_type(by_mode["eso"], "kubernetes:external-secrets.io/v1:ExternalSecret")
    target = es.inputs["spec"]["target"]
    # external-secrets externalsecret_controller.go: Merge updates an existing Secret only and
    # sets no ownerReference (applyOwnership), so deleting the ExternalSecret leaves the Secret.
    assert target["creationPolicy"] == "Merge"
    assert target["deletionPolicy"] == "Retain"
    assert set(target["template"]["data"]) == {"password"}


# ---------------------------------------------------------------- seed Job and refresher


@pytest.mark.parametrize("mode", ["irsa", "static"])
def test_seed_job_runs_the_refreshers_pod_once_everything_it_needs_exists(by_mode: dict[str, Any], mode: str) -> None:
    recording = by_mode[mode]
    (job,) = of_type(recording, "kubernetes:batch/v1:Job")
    (cron,) = of_type(recording, "kubernetes:batch/v1:CronJob")
    assert job.inputs["spec"]["template"] == cron.inputs["spec"]["jobTemplate"]["spec"]["template"]
    # A TTL-deleted Job would be created again by the next `up --refresh`.
    assert "ttlSecondsAfterFinished" not in job.inputs["spec"]
    assert job.inputs["metadata"]["name"].startswith("scoutflo-ecr-refresher-acme-seed-")
    needed = {"registry-access-secret", "registry-access-sa", "registry-access-role", "registry-access-rolebinding"}
    needed |= {"registry-access-netpol"}
    needed |= {"registry-access-aws-keys"} if mode == "static" else {"registry-access-reader-ecr"}
    names = {urn.rsplit("::", 1)[1] for urn in job.depends_on}
    assert needed <= names
    for obj in (job, cron):
        doc = {"apiVersion": "batch/v1", "kind": obj.type.rsplit(":", 1)[1], **obj.inputs}
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def seed_name(recording: render.Recording) -> str:
    (job,) = of_type(recording, "kubernetes:batch/v1:Job")
    return str(job.inputs["metadata"]["name"])


def test_a_new_seed_job_when_the_pod_template_or_the_secret_changes(by_mode: dict[str, Any]) -> None:
    irsa = seed_name(by_mode["irsa"])
    assert seed_name(run_main(MODES["irsa"])) == irsa, "same config, same Job: no replacement"
    assert seed_name(by_mode["static"]) != irsa
    assert seed_name(run_main({"scoutflo:kubectlImage": "registry.k8s.io/kubectl:v1.35.3"})) != irsa
    # A new url replaces the Secret (data is replace-on-change for Secrets, pulumi-kubernetes
    # provider/pkg/provider/diff.go forceNewProperties), and the new one starts without a token.
    assert seed_name(run_main({"scoutflo:ecrPrefix": "other"})) != irsa


# ---------------------------------------------------------------- the pod refuses the wrong identity


def fake_aws(tmp_path: Path) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "aws-calls"
    aws = bin_dir / "aws"
    aws.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho ecr-token-123\n')
    aws.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "AWS_REGION": "eu-west-1", "PATCH_FILE": str(tmp_path / "patch.json")}
    return env, calls


def run_fetch(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", manifests.FETCH_SCRIPT], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def pod_env(credentials: str) -> dict[str, str]:
    template = manifests.refresher_pod_template(
        name="scoutflo-ecr-refresher-acme",
        namespace="argocd",
        secret_name="s",
        region="eu-west-1",
        aws_cli_image="a:1",
        kubectl_image="k:1",
        credentials=credentials,
        reader_role_name="scoutflo-acme-ecr-reader",
    )
    (fetch,) = template["spec"]["initContainers"]
    return {
        e["name"]: e.get("value", "")
        for e in fetch["env"]
        if e["name"] in ("SCOUTFLO_CREDENTIALS", "SCOUTFLO_READER_ROLE")
    }


@pytest.mark.parametrize(
    ("injected", "why"),
    [
        ({}, "AWS_ROLE_ARN is not role scoutflo-acme-ecr-reader"),
        ({"AWS_ROLE_ARN": "arn:aws:iam::1:role/node-role"}, "AWS_ROLE_ARN is not role"),
        ({"AWS_ROLE_ARN": "arn:aws:iam::1:role/scoutflo-acme-ecr-reader"}, "no web identity token file"),
        (
            {"AWS_ROLE_ARN": "arn:aws:iam::1:role/scoutflo-acme-ecr-reader", "AWS_WEB_IDENTITY_TOKEN_FILE": "EMPTY"},
            "no web identity token file",
        ),
    ],
)
def test_irsa_fetch_refuses_without_the_injected_role(tmp_path: Path, injected: dict[str, str], why: str) -> None:
    """The pod identity webhook fails open (failurePolicy: Ignore): a pod it did not mutate must
    not fall back to the node's instance role."""
    env, calls = fake_aws(tmp_path)
    empty = tmp_path / "empty-token"
    empty.write_text("")
    injected = {k: (str(empty) if v == "EMPTY" else v) for k, v in injected.items()}
    result = run_fetch({**env, **pod_env("irsa"), **injected})
    assert result.returncode != 0
    assert why in result.stderr
    assert not calls.exists(), "the aws CLI must not run at all"
    assert not (tmp_path / "patch.json").exists()


def test_a_refused_fetch_is_retried_in_a_new_pod(by_mode: dict[str, Any]) -> None:
    """The webhook injects the role only when a pod is created (aws/amazon-eks-pod-identity-webhook
    @3bf80a3 deploy/mutatingwebhook.yaml:21 `operations: ["CREATE"]` on pods, :9 failurePolicy
    Ignore). With restartPolicy OnFailure the Job's retries restart the same uninjected pod and
    every one refuses; with Never each retry is a new pod the webhook gets another chance at."""
    for mode in ("irsa", "static"):
        (seed,) = of_type(by_mode[mode], "kubernetes:batch/v1:Job")
        (cron,) = of_type(by_mode[mode], "kubernetes:batch/v1:CronJob")
        for pod in (seed.inputs["spec"]["template"], cron.inputs["spec"]["jobTemplate"]["spec"]["template"]):
            assert pod["spec"]["restartPolicy"] == "Never", mode


def test_irsa_fetch_runs_with_the_injected_role(tmp_path: Path) -> None:
    env, calls = fake_aws(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text("jwt")
    injected = {
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/scoutflo-acme-ecr-reader",
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
    }
    result = run_fetch({**env, **pod_env("irsa"), **injected})
    assert result.returncode == 0, result.stderr
    assert calls.read_text() == "ecr get-login-password --region eu-west-1\n"
    patch = tmp_path / "patch.json"
    assert patch.read_text() == '{"stringData":{"password":"ecr-token-123"}}'
    assert stat.S_IMODE(os.stat(patch).st_mode) == 0o600
    assert "ecr-token-123" not in result.stdout + result.stderr


def test_static_fetch_needs_its_keys(tmp_path: Path) -> None:
    env, calls = fake_aws(tmp_path)
    refused = run_fetch({**env, **pod_env("static")})
    assert refused.returncode != 0 and "static keys" in refused.stderr and not calls.exists()
    keys = {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "x"}
    assert run_fetch({**env, **pod_env("static"), **keys}).returncode == 0


def test_the_aws_cli_never_falls_back_to_instance_metadata() -> None:
    # botocore/utils.py IMDSFetcher: AWS_EC2_METADATA_DISABLED=true disables the node's credentials.
    for credentials in ("irsa", "static"):
        template = manifests.refresher_pod_template(
            name="scoutflo-ecr-refresher-acme",
            namespace="n",
            secret_name="s",
            region="r",
            aws_cli_image="a:1",
            kubectl_image="k:1",
            credentials=credentials,
        )
        (fetch,) = template["spec"]["initContainers"]
        assert {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"} in fetch["env"]


def test_tools_write_only_to_writable_volumes(by_mode: dict[str, Any]) -> None:
    """Read-only root filesystem: HOME (aws CLI cache) and KUBECACHEDIR (kubectl's discovery
    cache, kubernetes/cli-runtime genericclioptions/config_flags.go) must be on an emptyDir."""
    (cron,) = of_type(by_mode["irsa"], "kubernetes:batch/v1:CronJob")
    pod = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
        writable = [
            m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs and not m.get("readOnly")
        ]
        for var in ("HOME", "KUBECACHEDIR"):
            assert any(env.get(var, "").startswith(path) for path in writable), (container["name"], var)


# ---------------------------------------------------------------- Argo CD's prefix match


def argocd_credential_for(repo_url: str, credential_urls: list[str]) -> str | None:
    """argoproj/argo-cd util/db/repository_secrets.go getRepositoryCredentialIndex: the longest
    credential url that is a plain string prefix of the (lower-cased) repoURL wins."""
    best: str | None = None
    for url in credential_urls:
        if repo_url.lower().startswith(url.lower()) and (best is None or len(url) > len(best)):
            best = url
    return best


def test_credential_url_covers_the_tenants_prefix_only(by_mode: dict[str, Any]) -> None:
    recording = by_mode["irsa"]
    url = credential(recording).inputs["stringData"]["url"]
    host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert url == f"{host}/scoutflo"
    for app in of_type(recording, "kubernetes:argoproj.io/v1alpha1:Application"):
        assert argocd_credential_for(app.inputs["spec"]["source"]["repoURL"], [url]) == url
    # Another team's charts in the same registry are not served this tenant's credential.
    assert argocd_credential_for(f"{host}/payments", [url]) is None
    no_prefix = credential(run_main_volatile({"scoutflo:ecrPrefix": ""})[0]).inputs["stringData"]["url"]
    assert no_prefix == host


# ---------------------------------------------------------------- explicit names


def aws_class(type_token: str) -> Any:
    """`aws:iam/rolePolicy:RolePolicy` -> pulumi_aws.iam.RolePolicy."""
    _, module, cls = type_token.split(":")
    package = module.split("/")[0]
    return getattr(pulumi_aws if package == "index" else getattr(pulumi_aws, package), cls)


def test_every_aws_resource_that_can_be_named_is_named(by_mode: dict[str, Any]) -> None:
    """pulumi-aws names a resource left without `name` from a random seed per run: a saved plan
    is then violated. Every registered aws type whose constructor takes `name` must get one."""
    checked = set()
    for recording in by_mode.values():
        for res in recording.resources:
            if not res.custom or not res.type.startswith("aws:"):
                continue
            params = inspect.signature(aws_class(res.type)._internal_init).parameters
            if "name" in params:
                assert res.inputs.get("name"), f"{res.type} {res.name} has no explicit name"
                checked.add(res.type)
    assert "aws:iam/rolePolicy:RolePolicy" in checked
    names = {r.inputs["name"] for rec in by_mode.values() for r in of_type(rec, "aws:iam/rolePolicy:RolePolicy")}
    assert names == {"scoutflo-ecr-push", "scoutflo-ecr-read"}


def test_every_kubernetes_object_is_named(by_mode: dict[str, Any]) -> None:
    # pulumi-kubernetes auto-names an object without metadata.name (Check: AssignNameIfAutonamable).
    for recording in by_mode.values():
        for res in recording.resources:
            if res.custom and res.type.startswith("kubernetes:"):
                assert res.inputs["metadata"].get("name"), res.urn


def test_eso_is_told_when_the_secret_was_replaced() -> None:
    """A replaced Secret comes back without a password; ESO refreshes an ExternalSecret whose
    annotations changed (pkg/controllers/util/util.go GetResourceVersion), not on its own."""

    def identity(overrides: dict[str, Any]) -> str:
        (es,) = of_type(run_main({**MODES["eso"], **overrides}), "kubernetes:external-secrets.io/v1:ExternalSecret")
        return str(es.inputs["metadata"]["annotations"][manifests.CREDENTIAL_IDENTITY_ANNOTATION])

    same = identity({})
    assert identity({}) == same
    assert identity({"scoutflo:ecrPrefix": "other"}) != same


# ---------------------------------------------------------------- the pod's two containers, for real


class _ApiServer(http.server.BaseHTTPRequestHandler):
    """Just enough of the Kubernetes API for `kubectl patch secret`: discovery and one PATCH."""

    patches: ClassVar[list[tuple[str, str, str]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _json(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.startswith("/apis"):
            self._json({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        elif self.path.startswith("/api/v1"):
            secrets = {"name": "secrets", "namespaced": True, "kind": "Secret", "verbs": ["get", "patch"]}
            self._json({"kind": "APIResourceList", "groupVersion": "v1", "resources": [secrets]})
        elif self.path.startswith("/api"):
            self._json({"kind": "APIVersions", "versions": ["v1"]})
        else:
            self.send_error(404)

    def do_PATCH(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.patches.append((self.path, self.headers["Content-Type"], body))
        name = self.path.rsplit("/", 1)[1]
        self._json({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": name, "namespace": "argocd"}})


def test_the_refresher_pod_fetches_and_patches_with_the_real_kubectl(by_mode: dict[str, Any], tmp_path: Path) -> None:
    """The rendered pod's own commands and env, each volume mapped to a directory here: the fetch
    script writes the patch into the shared memory volume, the real kubectl sends it as a merge
    patch, and kubectl's discovery cache lands in the writable volume (KUBECACHEDIR), not $HOME
    of a read-only root."""
    (cron,) = of_type(by_mode["static"], "kubernetes:batch/v1:CronJob")
    pod = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    volumes = {v["name"]: tmp_path / "volumes" / v["name"] for v in pod["volumes"]}
    for path in volumes.values():
        path.mkdir(parents=True)

    def mapped(container: dict[str, Any], text: str) -> str:
        """A path in a mounted volume (or a `--flag=path`) as the directory standing in for it."""
        flag, eq, value = text.rpartition("=") if text.startswith("--") else ("", "", text)
        for mount in container["volumeMounts"]:
            if value.startswith(mount["mountPath"] + "/") or value == mount["mountPath"]:
                return flag + eq + str(volumes[mount["name"]]) + value[len(mount["mountPath"]) :]
        return text

    def environment(container: dict[str, Any], extra: dict[str, str]) -> dict[str, str]:
        env = {e["name"]: mapped(container, e.get("value", "")) for e in container.get("env", [])}
        return {**env, **extra}

    (fetch,) = pod["initContainers"]
    # Paths reach the script through its env (mapped below), never written into its text.
    assert "/work/" not in fetch["command"][-1]
    aws_env, _ = fake_aws(tmp_path)
    keys = {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "x", "PATH": aws_env["PATH"]}
    result = subprocess.run(
        [mapped(fetch, arg) for arg in fetch["command"]],
        env=environment(fetch, keys),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    (patch,) = pod["containers"]
    _ApiServer.patches = []
    with serve(_ApiServer) as url:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": url}}],
                    "users": [{"name": "u", "user": {}}],
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "c",
                }
            )
        )
        kubectl = subprocess.run(
            [mapped(patch, arg) for arg in patch["command"]],
            env=environment(patch, {"PATH": os.environ["PATH"], "KUBECONFIG": str(kubeconfig)}),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert kubectl.returncode == 0, kubectl.stderr
    assert _ApiServer.patches == [
        (
            # An Update by its own field manager: the password is never a field Pulumi applied.
            "/api/v1/namespaces/argocd/secrets/scoutflo-ecr-acme?fieldManager=kubectl-patch",
            "application/merge-patch+json",
            '{"stringData":{"password":"ecr-token-123"}}',
        )
    ]
    assert "ecr-token-123" not in kubectl.stdout + kubectl.stderr
    assert any((volumes["tmp"] / ".kube" / "cache").rglob("*.json")), "kubectl's discovery cache"


def test_a_failed_seed_job_runs_again_on_the_next_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine replaces a resource with init errors only when replaceOnChanges covers
    "#initerror" (pulumi/pulumi step_generator.go applyReplaceOnChanges); otherwise it re-awaits
    the failed Job forever. Resource options are only visible on the RegisterResource request."""
    from pulumi.runtime.mocks import MockMonitor

    seen: dict[str, tuple[list[str], bool]] = {}
    register = MockMonitor.RegisterResource

    def recording(self: Any, request: Any) -> Any:
        seen[request.name] = (list(request.replaceOnChanges), bool(request.deleteBeforeReplace))
        return register(self, request)

    monkeypatch.setattr(MockMonitor, "RegisterResource", recording)
    run_main(MODES["irsa"])
    assert seen["registry-access-seed"] == (["*"], True)
    assert seen["registry-access-secret"] == ([], False)
