"""What the hosted FLUX providers (Replicate, fal.ai) promise alike behind ``/v1/images/*``,
each test run against both fakes: a failed job is the error envelope, a request the model cannot
serve is a 400 naming the field before any job starts, and a client that leaves mid-poll gets
the job canceled upstream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.images.conftest import ImageFakes
from tests.api.images.support import (
    abandoned_generation,
    assert_error,
    masked_edit,
    post_generation,
    refused_fields,
    sdk,
)
from tests.conftest import wait_until
from tests.fakes.server import UvicornServer


@dataclass(frozen=True)
class Hosted:
    """How a test drives one provider's fake and reads what it saw."""

    model: str  # a text-to-image model of the gateway's catalog
    edit_model: str  # a model that edits
    cancel_path: str  # the documented cancel call, ``{}`` for the job's id
    jobs: Callable[[ImageFakes], list[Any]]  # one entry per job started
    polls: Callable[[ImageFakes], list[str]]  # a job id per status poll
    cancels: Callable[[ImageFakes], list[str]]  # the job ids whose cancel arrived
    stall: Callable[[ImageFakes], None]  # jobs started from now on never finish
    fail: Callable[[ImageFakes, Any], None]  # the next job ends with this provider's failure


def _stall_replicate(fakes: ImageFakes) -> None:
    fakes.replicate.processing_polls = 1_000_000


def _stall_fal(fakes: ImageFakes) -> None:
    fakes.fal.polls_per_state = 1_000_000


def _fail_replicate(fakes: ImageFakes, error: Any) -> None:
    fakes.replicate.fail_with = error


def _fail_fal(fakes: ImageFakes, failure: Any) -> None:
    fakes.fal.fail_next = failure


REPLICATE = Hosted(
    model="flux-schnell",
    edit_model="flux-dev",
    cancel_path="/v1/predictions/{}/cancel",
    jobs=lambda fakes: fakes.replicate.created,
    polls=lambda fakes: fakes.replicate.polls,
    cancels=lambda fakes: fakes.replicate.cancels,
    stall=_stall_replicate,
    fail=_fail_replicate,
)
FAL = Hosted(
    model="fal-flux",
    edit_model="fal-flux-edit",
    cancel_path="/fal-ai/flux/requests/{}/cancel",
    jobs=lambda fakes: fakes.fal.submitted,
    polls=lambda fakes: fakes.fal.status_polls,
    cancels=lambda fakes: fakes.fal.cancelled,
    stall=_stall_fal,
    fail=_fail_fal,
)
BOTH = pytest.mark.parametrize("provider", [REPLICATE, FAL], ids=["replicate", "fal"])


@pytest.mark.parametrize(
    ("provider", "failure", "status", "code"),
    [
        (REPLICATE, "CUDA out of memory", 502, "upstream_error"),
        (
            REPLICATE,
            "Input validation failed: prompt must not be empty",
            400,
            "invalid_request",
        ),
        (
            FAL,
            (500, {"detail": "Runner crashed", "error_type": "runner_error"}),
            502,
            "upstream_error",
        ),
        (
            FAL,
            (422, {"detail": [{"loc": ["body", "prompt"], "msg": "flagged", "type": "policy"}]}),
            400,
            "invalid_request",
        ),
    ],
    ids=["replicate-crash", "replicate-input", "fal-crash", "fal-input"],
)
def test_a_failed_job_is_the_error_envelope(
    hosted: UvicornServer,
    fakes: ImageFakes,
    *,
    provider: Hosted,
    failure: Any,
    status: int,
    code: str,
) -> None:
    provider.fail(fakes, failure)
    assert_error(post_generation(hosted, {"model": provider.model, "prompt": "x"}), status, code)
    assert len(provider.jobs(fakes)) == 1


@BOTH
def test_an_unsupported_size_or_a_mask_is_a_400_naming_the_field(
    hosted: UvicornServer, fakes: ImageFakes, provider: Hosted
) -> None:
    client = sdk(hosted)
    size = {"model": provider.model, "prompt": "x", "size": "256x256"}
    assert refused_fields(client.images.generate, **size) == ["size"]
    assert refused_fields(client.images.edit, **masked_edit(provider.edit_model)) == ["mask"]
    assert provider.jobs(fakes) == []


@BOTH
def test_a_client_leaving_mid_poll_cancels_the_job(
    hosted: UvicornServer, fakes: ImageFakes, provider: Hosted
) -> None:
    provider.stall(fakes)
    with abandoned_generation(hosted, {"model": provider.model, "prompt": "an endless render"}):
        wait_until(lambda: len(provider.polls(fakes)) >= 3)  # well into the job
    wait_until(lambda: len(provider.cancels(fakes)) == 1)
    (job_id,) = set(provider.polls(fakes))
    assert provider.cancels(fakes) == [job_id]
    requests = fakes.replicate.requests + fakes.fal.requests
    assert provider.cancel_path.format(job_id) in [r.path for r in requests]
