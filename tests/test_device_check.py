"""bench/device_check.py's CPU parts (correctness vs float64 CPU, one CLI epoch per model, speed) run clean."""

import importlib.util
from pathlib import Path


def test_device_check_quick_cpu_parts(capsys):
    path = Path(__file__).resolve().parents[1] / "bench" / "device_check.py"
    spec = importlib.util.spec_from_file_location("device_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out and "2. CLI: ok" in out and "BAD" not in out
    assert "BT    fwd+bwd" in out
