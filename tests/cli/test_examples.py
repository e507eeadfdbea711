"""Every script in ``examples/`` runs as a subprocess against a real sandbox on loopback and
exits 0, so the documentation's examples cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    RateLimitConfig,
    Sandbox,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
#: Runs with a fault switched on get a sandbox of their own.
FAULTED = {"flow_delivery_unknown.py": FaultConfig(lost_response=1.0, scope="send")}

#: The template each per-kind example must have sent (checked against the sandbox).
KIND_TEMPLATES = {
    "otp": "login_otp",
    "text": "order_update",
    "image": "promo_image",
    "document": "invoice_document",
    "video": "product_video",
    "cta_url": "cta_url",
    "cta_phone": "cta_phone",
}


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QONTAK_")}
    env.update(
        QONTAK_BASE_URL=url,
        QONTAK_CLIENT_ID=SANDBOX_CLIENT_ID,
        QONTAK_CLIENT_SECRET=SANDBOX_CLIENT_SECRET,
    )
    return env


def _run(script: Path, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=_env(url),
        cwd=cwd,
        timeout=60,
    )


#: The slowest scripts (a campaign with a settle wait; a lost answer then a search) start
#: first, so the pool does not end waiting on one of them.
SLOW_FIRST = ("campaign.py", "flow_delivery_unknown.py")


@pytest.fixture(scope="module")
def results(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[Sandbox, subprocess.CompletedProcess[str]]]]:
    """Run every example once (in parallel; rate limits off so they do not throttle each
    other), each faulted one on its own sandbox."""
    cwd = tmp_path_factory.mktemp("examples")
    shared = Sandbox(
        delivery_delays=(0.02, 0.04, 0.06),
        faults=FaultConfig(),
        rate_limits=RateLimitConfig(enabled=False),
    )
    own = {
        name: Sandbox(delivery_delays=(0.02, 0.04, 0.06), faults=faults)
        for name, faults in FAULTED.items()
    }
    order = sorted(SCRIPTS, key=lambda s: (s.name not in SLOW_FIRST, s.name))
    with ExitStack() as stack:
        urls = {name: stack.enter_context(box.run_in_thread()) for name, box in own.items()}
        url = stack.enter_context(shared.run_in_thread())
        with ThreadPoolExecutor(max_workers=8) as pool:
            procs = pool.map(lambda s: _run(s, urls.get(s.name, url), cwd), order)
            out = {
                s.name: (own.get(s.name, shared), proc)
                for s, proc in zip(order, procs, strict=True)
            }
        yield out
    shared.close()
    for box in own.values():
        box.close()


def test_there_is_an_example_per_kind_sync_and_async() -> None:
    names = {p.name for p in SCRIPTS}
    for kind in KIND_TEMPLATES:
        assert f"send_{kind}.py" in names and f"async_send_{kind}.py" in names


@pytest.mark.parametrize("script", [p.name for p in SCRIPTS])
def test_example_runs_against_the_sandbox(
    script: str, results: dict[str, tuple[Sandbox, subprocess.CompletedProcess[str]]]
) -> None:
    sandbox, proc = results[script]
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    kind = script.removeprefix("async_").removeprefix("send_").removesuffix(".py")
    if script.removeprefix("async_").startswith("send_"):
        sent = {m["template"]["name"] for m in sandbox.messages()}
        assert KIND_TEMPLATES[kind] in sent


def test_delivery_unknown_example_reconciles_instead_of_resending(
    results: dict[str, tuple[Sandbox, subprocess.CompletedProcess[str]]],
) -> None:
    sandbox, proc = results["flow_delivery_unknown.py"]
    assert "reconciling" in proc.stdout and "accepted after all" in proc.stdout
    assert len(sandbox.messages()) == 1


def test_campaign_example_sends_each_valid_customer_once(
    results: dict[str, tuple[Sandbox, subprocess.CompletedProcess[str]]],
) -> None:
    sandbox, proc = results["campaign.py"]
    assert "campaign c-" in proc.stdout and "'0812' is too short" in proc.stdout
    sent = [m["to_number"] for m in sandbox.messages() if m["to_number"].startswith("6281255500")]
    assert sorted(sent) == [f"628125550{i:04d}" for i in range(10) if i != 7]
