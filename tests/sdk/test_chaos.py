"""Under seeded faults, every message is accepted, refused, or reported unknown — and the
sandbox's ground truth agrees: nothing lost, nothing sent twice, every unknown reconcilable."""

from __future__ import annotations

from qontak import DeliveryUnknownError, QontakError, messages
from qontak.sandbox import FaultConfig, Sandbox
from qontak.testing import sandbox_client

FAULTS = FaultConfig(
    seed=7,
    error_before=0.1,
    error_after=0.1,
    rate_limit=0.1,
    drop_before=0.1,
    lost_response=0.1,
    scope="send",
)
NUMBERS = [f"62812000{n:05d}" for n in range(40)]


def run_campaign(seed: int) -> tuple[dict[str, str], dict[str, DeliveryUnknownError], Sandbox]:
    sandbox = Sandbox(faults=FaultConfig(**{**FAULTS.__dict__, "seed": seed}))
    outcomes: dict[str, str] = {}
    unknown: dict[str, DeliveryUnknownError] = {}
    with sandbox_client(sandbox) as (client, _):
        template = client.templates.find("order_update", language="id")
        channel = client.channels.list()[0]
        for number in NUMBERS:
            msg = messages.text(number, ["Budi", number], template=template, channel=channel)
            try:
                outcomes[number] = "accepted:" + client.broadcasts.send_direct(msg).id
            except DeliveryUnknownError as exc:
                outcomes[number] = "unknown"
                unknown[number] = exc
            except QontakError as exc:  # refused for sure (e.g. 429 after every retry)
                outcomes[number] = "refused:" + type(exc).__name__
    return outcomes, unknown, sandbox


def test_faults_never_lose_or_duplicate_a_message() -> None:
    outcomes, unknown, sandbox = run_campaign(seed=7)
    truth = sandbox.messages()
    sent_numbers = [m["to_number"] for m in truth]
    assert len(sent_numbers) == len(set(sent_numbers)), "a message was sent twice"
    for number, outcome in outcomes.items():
        if outcome.startswith("accepted:"):
            assert [m["broadcast_id"] for m in truth if m["to_number"] == number] == [
                outcome.split(":", 1)[1]
            ]
        elif outcome.startswith("refused:"):
            assert number not in sent_numbers, f"{number} was reported refused but was sent"
    # the faults really fired: some of each kind of ending
    kinds = {o.split(":")[0] for o in outcomes.values()}
    assert {"accepted", "unknown"} <= kinds
    assert any(n in sent_numbers for n in unknown) and any(n not in sent_numbers for n in unknown)

    # every unknown outcome can be settled from the API, and the answer is the truth
    sandbox.set_faults(FaultConfig())
    with sandbox_client(sandbox) as (client, _):
        for number, err in unknown.items():
            found = client.broadcasts.find_sent(
                number, message_template_id=err.message_template_id, since=err.sent_at
            )
            assert bool(found) == (number in sent_numbers), number
    sandbox.close()


def test_the_same_seed_gives_the_same_outcomes() -> None:
    first, _, box1 = run_campaign(seed=11)
    second, _, box2 = run_campaign(seed=11)
    strip = {n: o.split(":")[0] for n, o in first.items()}
    assert strip == {n: o.split(":")[0] for n, o in second.items()}
    box1.close()
    box2.close()
