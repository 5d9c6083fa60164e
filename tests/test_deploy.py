"""deploy/: the recipes parse, point at real files, run commands and flags our code accepts (Docker cannot run here)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from api.factory import create_api
from api.schemas import TrainRequest
from api.security import InsecureBindError, check_bind_address
from core.config import Settings
from core.modelops import ModelOps
from core.training_run import parse_days_back

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
IMAGE = "homeiq-device-intelligence-service:latest"


def train_parser():
    """scripts/train_models.py's own argument parser."""
    from scripts import train_models

    return train_models.build_parser()


def api_paths() -> set[tuple[str, str]]:
    """(METHOD, /api/...) for every route the API serves under its mount."""
    spec = create_api(Settings.from_env({})).openapi()
    return {(method.upper(), "/api" + path) for path, ops in spec["paths"].items() for method in ops}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_cmd() -> list[str]:
    return json.loads(next(args for word, args in dockerfile_instructions() if word == "CMD"))


# ---------------------------------------------------------------- Dockerfile
def test_dockerfile_base_copy_and_run_steps_work_here():
    steps = dockerfile_instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    for word, args in steps:
        if word == "COPY":
            for source in shlex.split(args)[:-1]:
                assert source == "." or (ROOT / source).exists(), source
    runs = [args for word, args in steps if word == "RUN"]
    assert runs[0] == "pip install -r requirements.txt"
    # The project is installed after the copy: `streamlit run dashboard/server.py` and the scripts import it.
    assert runs[1].startswith("pip install --no-deps -e .")
    # The same install, against what the test environment already has (no network): every pin is satisfied.
    dry = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "-r", "requirements.txt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]


def authentication_configured(env: dict[str, str], tmp_path: Path) -> bool:
    """What dashboard/server.py asks before binding, for the image's environment on a fresh database."""
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    settings = Settings.from_env(env, database_url=f"sqlite:///{tmp_path / 'fresh.db'}", models_dir=models)
    ops = ModelOps(settings)
    try:
        return ops.authentication_configured()
    finally:
        ops.dispose()


def test_dockerfile_cmd_serves_dashboard_and_api_on_8028_and_needs_a_key(tmp_path):
    cmd = dockerfile_cmd()
    assert cmd[:3] == ["streamlit", "run", "dashboard/server.py"] and (ROOT / cmd[2]).is_file()
    opts = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert opts["--server.port"] == "8028" and opts["--server.address"] == "0.0.0.0"
    env = dict(re.findall(r"(\w+)=(\S+)", next(a for w, a in dockerfile_instructions() if w == "ENV")))
    settings = Settings.from_env(env)
    # A fresh install (no account, no key, no API_KEY) would be local mode: refused on 0.0.0.0.
    assert authentication_configured(env, tmp_path) is False
    with pytest.raises(InsecureBindError):
        check_bind_address(opts["--server.address"], authentication_configured(env, tmp_path))
    check_bind_address(opts["--server.address"], authentication_configured({**env, "API_KEY": "k"}, tmp_path))
    assert settings.models_dir == Path("/app/models")
    assert ("GET", "/api/predictions/models/status") in api_paths()


# ------------------------------------------------------------ docker compose
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def trainer_script() -> str:
    command = compose()["services"]["model-trainer"]["command"]
    assert command[:2] == ["sh", "-c"]
    return command[2]


def test_compose_builds_our_dockerfile_from_the_repository():
    service = compose()["services"]["device-intelligence-service"]
    context = (DEPLOY / service["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / service["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert service["image"] == IMAGE
    assert service["ports"] == ["8028:8028"] and "--server.port" in dockerfile_cmd()
    env = service["environment"]
    assert {"API_KEY", "DATABASE_URL", "MODELS_DIR"} <= set(env)
    assert f"models:{env['MODELS_DIR']}" in service["volumes"]
    probe = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]+)", " ".join(service["healthcheck"]["test"]))
    assert probe.group(1) == "8028" and ("GET", probe.group(2)) in api_paths()
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (DEPLOY / source).exists(), volume


def test_compose_trainer_posts_a_valid_body_to_our_train_endpoint():
    script = trainer_script()
    url = re.search(r"curl .*?-X POST (\S+)", script).group(1)
    assert url == "http://device-intelligence-service:8028/api/predictions/train"
    # The service accepts writes under the name the trainer calls it by (Host check against DNS rebinding).
    allowed = compose()["services"]["device-intelligence-service"]["environment"]["ALLOWED_HOSTS"]
    default = re.fullmatch(r"\$\{ALLOWED_HOSTS:-(.+)\}", allowed).group(1)
    assert Settings.from_env({"ALLOWED_HOSTS": default}).allowed_hosts.count("device-intelligence-service") == 1
    assert ("POST", "/api/predictions/train") in api_paths()
    body = json.loads(re.search(r"-d '([^']+)'", script).group(1))
    assert TrainRequest.model_validate(body).days_back == 180
    assert "Authorization: Bearer $${API_KEY}" in script  # $$: compose leaves ${API_KEY} for the container's shell
    assert (
        compose()["services"]["model-trainer"]["depends_on"]["device-intelligence-service"]["condition"]
        == "service_healthy"
    )


# ------------------------------------------------------------ Kubernetes
def k8s_docs() -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / "k8s-cronjob.yaml").read_text()) if d]


def test_cronjob_runs_our_training_script_with_flags_it_accepts():
    docs = k8s_docs()
    cron = next(d for d in docs if d["kind"] == "CronJob")
    assert cron["apiVersion"] == "batch/v1" and cron["spec"]["schedule"] == "0 2 * * 0"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == IMAGE
    command = container["command"]
    assert command[0] == "python" and (ROOT / command[1]).is_file() and command[1] == "scripts/train_models.py"
    args = train_parser().parse_args(command[2:])
    assert args.force is True and parse_days_back(args.days_back) == 180
    env = {e["name"]: e for e in container["env"]}
    assert set(env) == {"DATABASE_URL", "MODELS_DIR"}
    mount = container["volumeMounts"][0]
    assert mount["mountPath"] == env["MODELS_DIR"]["value"]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    assert volume["persistentVolumeClaim"]["claimName"] in claims
    assert pod["restartPolicy"] == "OnFailure"
    uid = int(re.search(r"--uid (\d+)", (DEPLOY / "Dockerfile").read_text()).group(1))
    assert pod["securityContext"]["fsGroup"] == uid  # the image's user can write to the models volume


# ------------------------------------------------------------ crontab
def crontab_lines(include_commented: bool = False) -> list[tuple[str, str]]:
    out = []
    for line in (DEPLOY / "crontab").read_text().splitlines():
        text = line.strip()
        if include_commented and re.match(r"#\s*[\d*]", text):
            text = text.lstrip("# ")
        if not text or text.startswith("#"):
            continue
        fields = text.split(None, 5)
        out.append((" ".join(fields[:5]), fields[5]))
    return out


def test_crontab_weekly_and_monthly_run_the_schedule_script():
    lines = [(s, c) for s, c in crontab_lines() if "score_fleet.py" not in c]
    assert [s for s, _ in lines] == ["0 2 * * 0", "0 2 1 * *"]
    for _, command in lines:
        script = ROOT / "scripts" / Path(command).name
        assert command.endswith("/scripts/schedule_model_training.sh") and script.is_file()
        assert os.access(script, os.X_OK)


def test_crontab_direct_line_uses_flags_train_models_accepts():
    direct = [c for _, c in crontab_lines(include_commented=True) if "train_models.py" in c]
    assert direct
    for command in direct:
        words = shlex.split(command.split("&&", 1)[1].split(">>")[0])
        assert words[1] == "scripts/train_models.py"
        args = train_parser().parse_args(words[2:])
        assert args.force and parse_days_back(args.days_back) == 180


def test_compose_commands_do_not_need_the_api_key():
    """`docker compose logs` (the guide's grep) must work without API_KEY; only the service refuses to start."""
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert ":?" not in text  # compose's required-variable syntax fails every command, logs included
    service = compose()["services"]["device-intelligence-service"]
    assert service["environment"]["API_KEY"] == "${API_KEY:-}"


def test_the_daily_fleet_scoring_lines_use_flags_score_fleet_accepts():
    from scripts.score_fleet import build_parser

    (line,) = [(s, c) for s, c in crontab_lines() if "score_fleet.py" in c]
    assert line[0] == "50 23 * * *"
    words = shlex.split(line[1].split("&&", 1)[1].split(">>")[0])
    assert words[1] == "scripts/score_fleet.py" and build_parser().parse_args(words[2:]).days == 2
    scoring = next(d for d in k8s_docs() if d["kind"] == "CronJob" and d["metadata"]["name"] == "fleet-scoring")
    container = scoring["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[:2] == ["python", "scripts/score_fleet.py"] and (ROOT / command[1]).is_file()
    assert build_parser().parse_args(command[2:]).days == 2 and container["image"] == IMAGE
