"""The qconv command line: exit codes, stdout/stderr discipline, dry runs, streaming and info."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_layout import make_hub_cache
from synthetic import write_safetensors
from terminal_signals import as_in_a_terminal
from typer.testing import CliRunner

from qconv import __version__
from qconv.cli import EXIT_CODES, app, exit_code_for
from qconv.errors import FormatError, QconvError, SourceError

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_version_is_printed() -> None:
    assert run("--version") == (0, f"qconv {__version__}\n", "")


def test_every_error_kind_has_a_distinct_exit_code() -> None:
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)

    class CustomSourceError(SourceError):
        pass

    assert exit_code_for(CustomSourceError("x")) == 3
    assert exit_code_for(QconvError("x")) == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["convert", "{model}", "-t", "q9_9"], 2, "unknown --type 'q9_9'"),
        (["convert", "{model}", "-m", "novalue"], 2, "expected KEY=VALUE"),
        (["convert", "{tmp}/missing"], 3, "no such file or folder"),
        (["convert", "{tmp}/bad.safetensors"], 4, "not valid JSON"),
        (
            ["convert", "{tmp}/odd.safetensors", "--arch", "generic", "-t", "q8_0", "--strict"],
            5,
            "--strict forbids",
        ),
        (["convert", "{model}", "-t", "f16", "-o", "{tmp}/exists.gguf"], 6, "already exists"),
        (["info", "{tmp}/bad.safetensors"], 4, "bad.safetensors"),
        (["info", "{tmp}/missing.gguf"], 3, "missing.gguf"),
        (["convert", "{model}", "--jobs", "0"], 2, "Invalid value"),
    ],
)
def test_errors_are_one_line_on_stderr_with_their_exit_code(
    tiny_checkpoint: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    (tmp_path / "bad.safetensors").write_bytes(b"\x05\0\0\0\0\0\0\0{oops")
    (tmp_path / "exists.gguf").write_bytes(b"x")
    write_safetensors(
        tmp_path / "odd.safetensors", {"w.weight": ("F32", __import__("numpy").ones((2, 33)))}
    )
    filled = [a.format(model=tiny_checkpoint, tmp=tmp_path) for a in args]
    exit_code, stdout, stderr = run(*filled)
    assert exit_code == code
    assert message in stderr
    assert stdout == ""
    if code != 2 or "Invalid value" not in message:
        assert stderr.startswith("error: ") and stderr.count("\n") == 1
        assert "Traceback" not in stderr


def test_convert_prints_only_the_output_path_on_stdout(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "t.gguf"
    code, stdout, stderr = run("convert", str(tiny_checkpoint), "-t", "q8_0", "-o", str(out))
    assert code == 0 and stdout == f"{out}\n"
    assert "wrote" in stderr and out.read_bytes()[:4] == b"GGUF"


def test_default_output_name_comes_from_model_and_type(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run("convert", str(tiny_checkpoint), "-t", "q4_0", "-q")
    assert code == 0 and stdout == "tiny-llama-Q4_0.gguf\n"
    assert (tmp_path / "tiny-llama-Q4_0.gguf").is_file()


def test_dry_run_prints_the_plan_and_writes_nothing(tiny_checkpoint: Path, tmp_path: Path) -> None:
    code, stdout, _ = run(
        "convert", str(tiny_checkpoint), "-t", "q8_0", "--dry-run", "-o", str(tmp_path / "x.gguf")
    )
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0].split()[:5] == ["tensor", "shape", "source", "type", "bytes"]
    norm = next(line for line in lines if "blk.0.attn_norm.weight" in line)
    assert "BF16" in norm and "F32" in norm and "not quantized (1-D)" in norm
    assert lines[-1].startswith("total: 21 tensors") and "MOSTLY_Q8_0" in lines[-1]
    assert not (tmp_path / "x.gguf").exists()


def test_fallback_is_reported_on_stderr(tmp_path: Path) -> None:
    import numpy as np

    model = tmp_path / "odd.safetensors"
    write_safetensors(model, {"w.weight": ("F32", np.ones((2, 33), dtype=np.float32))})
    code, _, stderr = run(
        "convert", str(model), "--arch", "generic", "-t", "q8_0", "-o", str(tmp_path / "o.gguf")
    )
    assert code == 0 and "warning: w.weight: default Q8_0; fallback: row 33 % 32 -> F16" in stderr


def test_quiet_silences_summary_and_warnings(tmp_path: Path) -> None:
    import numpy as np

    model = tmp_path / "odd.safetensors"
    write_safetensors(model, {"w.weight": ("F32", np.ones((2, 33), dtype=np.float32))})
    code, stdout, stderr = run(
        "convert",
        str(model),
        "--arch",
        "generic",
        "-t",
        "q8_0",
        "-o",
        str(tmp_path / "o.gguf"),
        "-q",
    )
    assert code == 0 and stderr == "" and stdout.strip().endswith("o.gguf")


def test_info_text_and_json_describe_the_file(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.gguf"
    assert run("convert", str(tiny_checkpoint), "-t", "q4_0", "-o", str(out), "-q")[0] == 0
    code, stdout, stderr = run("info", str(out))
    assert code == 0 and stderr == ""
    assert "general.architecture" in stdout and "Q4_0" in stdout
    code, stdout, _ = run("info", str(out), "--json")
    document = json.loads(stdout)
    assert document["metadata"]["general.file_type"]["value"] == 2
    assert document["types"]["Q4_0"]["tensors"] == 15
    assert document["types"]["Q6_K"]["tensors"] == 1  # output.weight, as llama-quantize does
    assert len(document["tensors"]) == 21 and document["file_size"] == out.stat().st_size


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return env


def test_dash_output_streams_the_same_bytes_to_stdout(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "file.gguf"
    cmd = [sys.executable, "-m", "qconv", "convert", str(tiny_checkpoint), "-t", "q4_0"]
    subprocess.run([*cmd, "-o", str(out), "-q"], check=True, env=_env(), capture_output=True)
    piped = subprocess.run([*cmd, "-o", "-"], check=True, env=_env(), capture_output=True)
    assert piped.stdout == out.read_bytes()
    assert b"wrote -" in piped.stderr


def test_hub_repo_id_honours_hf_home_and_offline_mode(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    hf_home = tmp_path / "home"
    make_hub_cache(hf_home / "hub", "org/tiny", tiny_checkpoint)
    env = dict(_env(), HF_HOME=str(hf_home))
    cmd = [
        sys.executable,
        "-m",
        "qconv",
        "convert",
        "org/tiny",
        "-t",
        "q8_0",
        "-o",
        str(tmp_path / "h.gguf"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    missing = subprocess.run(
        [*cmd[:4], "org/absent", *cmd[5:]], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 3 and "HF_HUB_OFFLINE" in missing.stderr
    assert missing.stderr.count("\n") == 1


def test_debug_env_shows_the_traceback(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "qconv", "convert", str(tmp_path / "missing")]
    done = subprocess.run(cmd, env=dict(_env(), QCONV_DEBUG="1"), capture_output=True, text=True)
    assert done.returncode == 3 and "Traceback" in done.stderr


def test_format_error_from_a_corrupt_gguf_has_exit_code_4(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (10**12).to_bytes(8, "little") + bytes(8))
    code, stdout, stderr = run("info", str(bad))
    assert code == EXIT_CODES[FormatError] and stdout == "" and "bad.gguf" in stderr


def test_ctrl_c_mid_conversion_exits_130_and_leaves_no_file(tmp_path: Path) -> None:
    import signal
    import time

    import numpy as np

    model = tmp_path / "slow.safetensors"
    rows = np.random.default_rng(0).standard_normal((2048, 4096)).astype(np.float32)
    write_safetensors(model, {f"w{i}.weight": ("F32", rows) for i in range(2)})
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cmd = [sys.executable, "-m", "qconv", "convert", str(model), "--arch", "generic"]
    cmd += ["-t", "q4_k", "--pure"]
    process = subprocess.Popen(
        [*cmd, "-o", str(out_dir / "m.gguf")],
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_a_terminal,
    )
    deadline = time.monotonic() + 60
    while not list(out_dir.glob(".m.gguf.*.partial")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the data section by now
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted; no output file was written"
    assert list(out_dir.iterdir()) == []


def test_a_type_llama_quantize_makes_only_with_an_imatrix_is_refused_naming_it(
    tiny_checkpoint: Path,
) -> None:
    code, _, err = run("convert", str(tiny_checkpoint), "-t", "iq2_xxs", "--dry-run")
    assert code == 2
    assert "importance matrix (--imatrix)" in err and "iq4_xs" in err


def test_names_from_a_hostile_checkpoint_are_escaped_in_plans_and_warnings(tmp_path: Path) -> None:
    import numpy as np

    model = tmp_path / "evil.safetensors"
    name = "evil\x1b]0;pwned\x07\x1b[2J.weight"
    write_safetensors(model, {name: ("F32", np.ones((2, 100), dtype=np.float32))})
    code, stdout, stderr = run("convert", str(model), "--arch", "generic", "--dry-run")
    assert code == 0
    assert "\x1b" not in stdout + stderr and "\x07" not in stdout + stderr
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J.weight" in stdout
    assert "warning: evil\\x1b]0;pwned\\x07\\x1b[2J.weight: " in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "k:f32=1e300"], "too large for f32"),
        (["-m", "k=\udcff"], "not valid UTF-8"),
        (["-j", str(2**62)], "--jobs 4611686018427387904: give 1 to"),
    ],
)
def test_hostile_option_values_are_one_line_usage_errors(
    mixed_checkpoint: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = str(tmp_path / "o.gguf")
    code, stdout, stderr = run(
        "convert", str(mixed_checkpoint), "--arch", "generic", "-q", "-o", out, *args
    )
    assert code == 2 and stdout == "", stderr
    assert len(stderr.splitlines()) == 1 and message in stderr
    assert not (tmp_path / "o.gguf").exists()


def test_help_says_how_many_jobs_are_allowed() -> None:
    _, stdout, _ = run("convert", "--help")
    # Words only: rich wraps the help in a box whose "│" borders land inside wrapped sentences.
    assert "at most 4 × cores" in " ".join(w for w in stdout.split() if w != "│")


def test_a_checkpoint_fault_exits_4_naming_the_file(tmp_path: Path) -> None:
    import numpy as np

    model = tmp_path / "five.safetensors"
    write_safetensors(model, {"w.weight": ("F32", np.ones((1, 1, 1, 2, 32), dtype=np.float32))})
    code, _, stderr = run("convert", str(model), "--arch", "generic", "--dry-run")
    assert code == 4 and stderr.startswith(f"error: {model}: tensor 'w.weight' has 5 dimensions")
