"""The container, checked without a Docker engine: hadolint, policy tests on the parsed Dockerfile and compose
file, a daemon run the way the image runs it (env-only config, a secrets folder, a data folder), its health
check, a hard kill and the database's integrity after it; online backups while it writes."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import dockerfile
import pytest
import yaml

from listener import Author, Mention, Poll
from storage import StorageError, Store
from tests.conftest import PASSAPAROLA, ROOT, T0, cli_env, run_cli

INSTRUCTIONS = dockerfile.parse_file(str(ROOT / "Dockerfile"))
FINAL = INSTRUCTIONS[max(i for i, c in enumerate(INSTRUCTIONS) if c.cmd == "FROM") :]


def final(cmd: str) -> list[dockerfile.Command]:
    return [c for c in FINAL if c.cmd == cmd]


def test_hadolint_reports_nothing() -> None:
    result = subprocess.run(
        [str(Path(__import__("sys").executable).parent / "hadolint"), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_image_is_multi_stage_from_a_pinned_slim_base_and_installs_a_wheel() -> None:
    bases = [c.value[0] for c in INSTRUCTIONS if c.cmd == "FROM"]
    assert len(bases) == 2 and len(set(bases)) == 1
    assert all(":" in b and "latest" not in b and "slim" in b and b.count(".") >= 2 for b in bases)  # 3.11.14
    assert any("pip wheel" in c.value[0] for c in INSTRUCTIONS[: INSTRUCTIONS.index(FINAL[0])] if c.cmd == "RUN")
    [copy] = final("COPY")
    assert copy.flags == ("--from=build",)
    assert any(".whl" in c.value[0] for c in final("RUN"))


def test_the_image_runs_as_a_numeric_non_root_user_with_data_on_a_volume() -> None:
    [user] = final("USER")
    uid = user.value[0].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000
    assert [c.value for c in final("VOLUME")] == [("/data",)]
    env = dict(zip(final("ENV")[0].value[::2], final("ENV")[0].value[1::2], strict=True))
    assert env["TZ"] == "UTC" and env["PASSAPAROLA_STORAGE__PATH"].startswith("/data/")


def test_the_entrypoint_is_exec_form_with_a_health_check_and_no_secret_in_any_layer() -> None:
    [entry] = final("ENTRYPOINT")
    [cmd] = final("CMD")
    assert entry.json and entry.value == ("passaparola",)
    assert cmd.json and cmd.value[0] == "run"
    [health] = final("HEALTHCHECK")
    assert health.value == ("CMD", "passaparola", "healthcheck")
    for c in INSTRUCTIONS:
        if c.cmd in ("ENV", "ARG", "LABEL"):
            names = c.value[::2] if c.cmd != "ARG" else [v.split("=")[0] for v in c.value]
            assert not [n for n in names if any(w in n.upper() for w in ("TOKEN", "SECRET", "PASSWORD", "KEY"))]
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".env", "*.db", ".git", ".venv"} <= set(ignored)


def test_the_compose_example_has_secrets_as_files_a_volume_and_a_restart_policy() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    service = compose["services"]["passaparola"]
    assert service["restart"] == "unless-stopped"
    assert any(v.startswith("passaparola-data:/data") for v in service["volumes"])
    assert set(service["secrets"]) == set(compose["secrets"]) and all("file" in s for s in compose["secrets"].values())
    assert not [k for k in service["environment"] if any(w in k for w in ("TOKEN", "SECRET", "PASSWORD"))]
    assert all(p.startswith("127.0.0.1:") for p in service["ports"])


def test_the_daemon_runs_as_the_container_does_is_healthy_and_survives_a_hard_kill(tmp_path: Path) -> None:
    data, secrets = tmp_path / "data", tmp_path / "secrets"
    data.mkdir()
    secrets.mkdir()
    (secrets / "intake_token").write_text("s3cret-intake-token-value\n", encoding="utf-8")
    config = tmp_path / "etc.toml"
    config.write_text(
        f'[web]\nintake_token = {{ file = "{secrets / "intake_token"}" }}\n'
        f'[[sources]]\ntype = "demo"\nname = "demo"\n[analysis]\nmode = "fast"\n',
        encoding="utf-8",
    )
    env = cli_env(PASSAPAROLA_CONFIG=str(config), PASSAPAROLA_STORAGE__PATH=str(data / "passaparola.db"), TZ="UTC")
    log = (tmp_path / "stderr.log").open("wb")  # a file, not a pipe nobody drains: the daemon never blocks on it
    process = subprocess.Popen([*PASSAPAROLA, "run"], cwd=data, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and run_cli([*PASSAPAROLA, "healthcheck"], env=env).returncode != 0:
            time.sleep(0.5)
        assert run_cli([*PASSAPAROLA, "healthcheck"], env=env).returncode == 0, (tmp_path / "stderr.log").read_text()[
            -2000:
        ]
        process.send_signal(signal.SIGKILL)  # the OOM killer, a power cut
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        log.close()
    assert b"s3cret-intake-token-value" not in (tmp_path / "stderr.log").read_bytes()
    with sqlite3.connect(data / "passaparola.db") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("SELECT count(*) FROM mentions").fetchone()[0] > 300
    status = run_cli([*PASSAPAROLA, "status"], env=env)
    assert status.returncode == 0 and "db_mb=" in status.stdout


def test_a_backup_is_taken_while_the_daemon_writes_and_never_overwrites(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "live.db", shared=True)
    stop = threading.Event()

    def writer() -> None:
        writes = Store.open(tmp_path / "live.db")
        n = 0
        while not stop.is_set():
            n += 1
            author = Author("x", str(n), f"user{n}")
            mention = Mention("x", str(n), "x", f"mention {n}", T0, author)
            writes.save_poll("x", "x", Poll(mentions=(mention,)), T0)
        writes.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        size = store.backup(tmp_path / "copy.db")
    finally:
        stop.set()
        thread.join()
    with sqlite3.connect(tmp_path / "copy.db") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("SELECT count(*) FROM mentions").fetchone()[0] > 0
    assert size == (tmp_path / "copy.db").stat().st_size
    before = (tmp_path / "copy.db").read_bytes()
    with pytest.raises(StorageError, match="already exists"):
        store.backup(tmp_path / "copy.db")
    assert (tmp_path / "copy.db").read_bytes() == before
    with pytest.raises(StorageError, match="missing or not writable"):
        store.backup(tmp_path / "nowhere" / "copy.db")
    assert not list(tmp_path.glob(".*.part"))  # nothing half-written left behind
    store.close()


def test_the_wheel_installs_into_a_fresh_environment_and_runs_the_demo(tmp_path: Path) -> None:
    """What the image does: build the wheel, install it alone, run it away from the source tree.

    The dependencies come from this test environment's site-packages through a path file (no download, and
    not its editable install of passaparola): only the wheel's own files can make passaparola start.
    """
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    dependencies = sysconfig.get_paths()["purelib"]
    (Path(site) / "dependencies.pth").write_text(dependencies + "\n", encoding="utf-8")
    wheel = next(wheels.glob("passaparola-*.whl"))
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    assert subprocess.run(install, capture_output=True, text=True, timeout=300).returncode == 0
    run = tmp_path / "elsewhere"
    run.mkdir()
    env = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [str(python), "-c", "import passaparola.web, rules.sentiment; print(passaparola.web.__file__)"],
        capture_output=True, text=True, cwd=run, env=env, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(site)
    assert subprocess.run([str(venv / "bin" / "passaparola"), "--help"], capture_output=True, cwd=run).returncode == 0
    demo = subprocess.run(
        [str(venv / "bin" / "passaparola"), "demo", "--db", str(run / "d.db"), "--duration", "1"],
        capture_output=True, text=True, cwd=run, env=env, timeout=110,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "334 mentions from 83 authors stored" in demo.stdout
